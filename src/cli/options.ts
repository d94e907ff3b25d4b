// Command-line flags → validated options. Every value is checked here, once, so a bad value is one line and exit 2
// before any model is loaded. Numbers are read as strings and parsed here to name the flag in the message.
// The option types and defaults are the app's (app/options.ts): the chat and the library use the same ones.
import { UsageError } from '../errors.js';
import { MAX_REPEAT_LAST_N } from '../engine/sampling.js';
import { parseBackend } from '../backend/select.js';
import { DEFAULT_SETTINGS, parseAccept, randomSeed, type GenerationOptions, type ModelSources, type Reporting } from '../app/options.js';
import type { ScoringSettings } from '../app/score.js';
import { DEFAULT_MODEL, defaultDrafter } from '../app/sources.js';
import { DEFAULT_NOISE_SEED, parseNoise } from '../engine/noise.js';

export type { GenerationOptions } from '../app/options.js';

/** What every model command takes: the byte model, the backend, and what to print. */
export type CommonOptions = Omit<ModelSources, 'drafter'> & Reporting;

export type PerplexityOptions = CommonOptions & ScoringSettings;

export type RawFlags = Record<string, unknown>;

function number(flags: RawFlags, name: string, flag: string, check: (v: number) => boolean, expected: string): number | undefined {
	const raw = flags[name];
	if (raw === undefined || raw === null) return undefined;
	const v = typeof raw === 'number' ? raw : Number(String(raw).trim() === '' ? NaN : raw);
	if (!Number.isFinite(v) || !check(v)) throw new UsageError(`${flag} ${String(raw)}: expected ${expected}`);
	return v;
}
const isInt = (v: number) => Number.isInteger(v);

export function commonOptions(flags: RawFlags): CommonOptions {
	return {
		model: flags.model === undefined ? DEFAULT_MODEL : String(flags.model),
		modelFile: flags.modelFile === undefined ? undefined : String(flags.modelFile),
		threads: number(flags, 'threads', '--threads', (v) => isInt(v) && v >= 1 && v <= 1024, 'a whole number from 1 to 1024') ?? null,
		backend: parseBackend(String(flags.backend ?? 'auto')),
		json: Boolean(flags.json),
		verbose: Boolean(flags.verbose),
	};
}

/** --draft DIR, the shipped drafter when none is named, or none with --no-draft (app/sources.ts: the policy). */
export function drafterOf(flags: RawFlags): string | null {
	if (flags.draft === false) return null; // --no-draft
	if (flags.draft !== undefined) return String(flags.draft); // checked (or downloaded) by resolveSources
	return defaultDrafter();
}

export function generationOptions(flags: RawFlags): GenerationOptions {
	const d = DEFAULT_SETTINGS;
	const stop = (flags.stop as string[] | undefined) ?? [];
	if (stop.some((s) => s.length === 0)) throw new UsageError('--stop: expected a non-empty string');
	const maxBytes = number(flags, 'maxBytes', '--max-bytes', (v) => isInt(v) && v >= -1, 'a whole number >= 0, or -1 for no limit') ?? d.maxBytes;
	return {
		...commonOptions(flags),
		drafter: drafterOf(flags),
		maxBytes: maxBytes === -1 ? Infinity : maxBytes,
		temperature: number(flags, 'temperature', '--temperature', (v) => v >= 0 && v <= 100, 'a number from 0 (greedy) to 100') ?? d.temperature,
		topK: number(flags, 'topK', '--top-k', (v) => isInt(v) && v >= 0 && v <= 65536, 'a whole number >= 0 (0 = off)') ?? d.topK,
		topP: number(flags, 'topP', '--top-p', (v) => v > 0 && v <= 1, 'a number in (0, 1]') ?? d.topP,
		minP: number(flags, 'minP', '--min-p', (v) => v >= 0 && v <= 1, 'a number from 0 (off) to 1') ?? d.minP,
		repeatPenalty: number(flags, 'repeatPenalty', '--repeat-penalty', (v) => v > 0 && v <= 100, 'a number > 0 (1 = off)') ?? d.repeatPenalty,
		repeatLastN: number(flags, 'repeatLastN', '--repeat-last-n', (v) => isInt(v) && v >= -1 && v <= MAX_REPEAT_LAST_N, `a whole number from 0 to ${MAX_REPEAT_LAST_N}, or -1 for all of them`) ?? d.repeatLastN,
		seed: number(flags, 'seed', '--seed', (v) => isInt(v) && v >= 0 && v < 2 ** 32, 'a whole number from 0 to 2^32-1') ?? randomSeed(),
		stop,
		draft: d.draft,
		draftSubwords: number(flags, 'draftSubwords', '--draft-subwords', (v) => isInt(v) && v >= 1 && v <= 64, 'a whole number from 1 to 64') ?? d.draftSubwords,
		accept: flags.accept === undefined ? d.accept : parseAccept(String(flags.accept)),
		utf8: flags.utf8 === undefined ? d.utf8 : Boolean(flags.utf8),
	};
}

export function perplexityOptions(flags: RawFlags): PerplexityOptions {
	const noise = ((flags.noise as string[] | undefined) ?? []).map(parseNoise);
	// The seed only draws the noise: without --noise it would change nothing, so it is a mistake like -n is.
	if (flags.seed !== undefined && noise.length === 0) throw new UsageError('perplexity: --seed applies only with --noise (it seeds the noise)');
	return {
		...commonOptions(flags),
		curve: Boolean(flags.curve),
		bucket: number(flags, 'bucket', '--bucket', (v) => isInt(v) && v >= 1, 'a whole number of bytes >= 1') ?? null,
		// W = 1 would score every byte with no context at all (and the stride ⌈W/2⌉ leaves nothing to score).
		window: number(flags, 'window', '--window', (v) => isInt(v) && v >= 2, 'a whole number of bytes >= 2 (each byte sees up to W - 1 bytes before it)') ?? null,
		// 2: one byte alone has nothing to score (it is only context).
		limit: number(flags, 'limit', '--limit', (v) => isInt(v) && v >= 2 && v <= Number.MAX_SAFE_INTEGER, 'a whole number of bytes >= 2 (the first byte is only context)') ?? null,
		noise,
		noiseSeed: number(flags, 'seed', '--seed', (v) => isInt(v) && v >= 0 && v < 2 ** 32, 'a whole number from 0 to 2^32-1') ?? DEFAULT_NOISE_SEED,
	};
}
