// Scoring with the app's defaults: bits per byte of a byte stream (engine/perplexity.ts), the --curve bucket
// defaulting to the model's training context.
import { scoreStream } from '../engine/perplexity.js';
import type { PerplexityEvent, PerplexityResult } from '../engine/events.js';
import type { LanguageModel } from '../model/types.js';

/** Bucket size for curves when the checkpoint does not record its training context length. */
export const DEFAULT_BUCKET = 2048;

export interface ScoringSettings {
	curve: boolean; // bits per byte by position as well
	bucket: number | null; // curve bucket in bytes; null = the model's training context length
	window: number | null; // each byte sees at most window − 1 bytes of context; null = everything before it
}

export const DEFAULT_SCORING: Readonly<ScoringSettings> = { curve: false, bucket: null, window: null };

export const bucketFor = (model: LanguageModel, bucket: number | null): number => bucket ?? model.config.contextLength ?? DEFAULT_BUCKET;

/** The scoring events of one input (`size` null when unknown, e.g. stdin); the last event holds the result. */
export function scoreSource(
	model: LanguageModel, name: string, size: number | null, source: AsyncIterable<Uint8Array>, s: ScoringSettings,
): AsyncGenerator<PerplexityEvent, PerplexityResult> {
	return scoreStream(model, name, size, source, {
		curve: s.curve, bucket: bucketFor(model, s.bucket), window: s.window, backend: model.kernels.name, model: model.checkpoint.name,
	});
}
