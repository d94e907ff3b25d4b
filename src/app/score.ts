// Scoring with the app's defaults: bits per byte of a byte stream (engine/perplexity.ts), the --curve bucket
// defaulting to the model's training context; --limit reads only a prefix of the input and --noise scores a noised
// copy of what was read (engine/noise.ts), both streamed, so memory stays flat either way.
import { scoreStream } from '../engine/perplexity.js';
import { checkNoise, DEFAULT_NOISE_SEED, noisy, type NoiseSpec } from '../engine/noise.js';
import type { PerplexityEvent, PerplexityResult } from '../engine/events.js';
import type { LanguageModel } from '../model/types.js';
import { UsageError } from '../errors.js';

/** Bucket size for curves when the checkpoint does not record its training context length. */
export const DEFAULT_BUCKET = 2048;

export interface ScoringSettings {
	curve: boolean; // bits per byte by position as well
	bucket: number | null; // curve bucket in bytes; null = the model's training context length
	window: number | null; // each byte sees at most window − 1 bytes of context; null = everything before it
	limit: number | null; // read at most this many bytes of the input; null = all of it
	noise: NoiseSpec[]; // applied in this order to the bytes read, before scoring; [] = none
	noiseSeed: number; // the noise's random draws: the same seed, the same noised text
}

export const DEFAULT_SCORING: Readonly<ScoringSettings> = { curve: false, bucket: null, window: null, limit: null, noise: [], noiseSeed: DEFAULT_NOISE_SEED };

export const bucketFor = (model: LanguageModel, bucket: number | null): number => bucket ?? model.config.contextLength ?? DEFAULT_BUCKET;

/** The first `limit` bytes of a stream; the source is closed once they have been read (null: all of it). */
export async function* firstBytes(source: AsyncIterable<Uint8Array>, limit: number | null): AsyncGenerator<Uint8Array> {
	if (limit === null) {
		yield* source;
		return;
	}
	let left = limit;
	if (left <= 0) return;
	for await (const piece of source) {
		if (piece.length >= left) {
			yield piece.subarray(0, left);
			return;
		}
		left -= piece.length;
		yield piece;
	}
}

async function* counted(source: AsyncIterable<Uint8Array>, count: { bytes: number }): AsyncGenerator<Uint8Array> {
	for await (const piece of source) {
		count.bytes += piece.length;
		yield piece;
	}
}

/** The events with `fields()` added to the result; closing this closes the scoring (its state is freed). */
async function* withFields(
	events: AsyncGenerator<PerplexityEvent, PerplexityResult>, fields: () => Partial<PerplexityResult>,
): AsyncGenerator<PerplexityEvent, PerplexityResult> {
	try {
		for (;;) {
			const n = await events.next();
			if (n.done) return { ...n.value, ...fields() };
			const e = n.value;
			yield e.type === 'result' ? { type: 'result', result: { ...e.result, ...fields() } } : e;
		}
	} finally {
		await events.return(undefined as never);
	}
}

/** The scoring events of one input (`size` null when unknown, e.g. stdin); the last event holds the result. */
export function scoreSource(
	model: LanguageModel, name: string, size: number | null, source: AsyncIterable<Uint8Array>, s: ScoringSettings,
): AsyncGenerator<PerplexityEvent, PerplexityResult> {
	const limit = s.limit ?? null;
	const noise = s.noise ?? [];
	const seed = s.noiseSeed ?? DEFAULT_NOISE_SEED;
	if (limit !== null && !(Number.isInteger(limit) && limit >= 0)) throw new UsageError(`limit ${limit}: expected a whole number of bytes`);
	checkNoise(noise, seed);
	const read = size === null || limit === null ? size : Math.min(size, limit);
	const input = { bytes: 0 };
	const bytes = noise.length > 0 ? noisy(counted(firstBytes(source, limit), input), noise, seed) : firstBytes(source, limit);
	const events = scoreStream(model, name, noise.length > 0 ? null : read, bytes, { // noise changes the length
		curve: s.curve, bucket: bucketFor(model, s.bucket), window: s.window, backend: model.kernels.name, model: model.checkpoint.name,
	});
	if (limit === null && noise.length === 0) return events;
	return withFields(events, () => inputFields(limit, noise, seed, input.bytes));
}

/** What a result says of --limit and --noise (inputBytes null: not known, as in a partial result). */
export function inputFields(limit: number | null, noise: readonly NoiseSpec[], seed: number, inputBytes: number | null): Partial<PerplexityResult> {
	return {
		...(limit !== null ? { limit } : {}),
		...(noise.length > 0 ? { noise: noise.map((n) => ({ type: n.type, p: n.p })), noise_seed: seed, ...(inputBytes !== null ? { input_bytes: inputBytes } : {}) } : {}),
	};
}

/** What was scored when it is not simply the file (`first 65536 bytes, noise drop:0.05 seed 0`), else ''. */
export function inputNote(r: Pick<PerplexityResult, 'limit' | 'noise' | 'noise_seed'>): string {
	const parts: string[] = [];
	if (r.limit !== undefined) parts.push(`first ${r.limit} bytes`);
	if (r.noise && r.noise.length > 0) parts.push(`noise ${r.noise.map((n) => `${n.type}:${n.p}`).join(' ')} seed ${r.noise_seed}`);
	return parts.join(', ');
}
