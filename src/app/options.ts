// The options every front end shares: the CLI builds them from flags (cli/options.ts), the chat starts from them and
// changes them with /commands (ui/), the library takes them as arguments (src/index.ts). The engine's own
// GenerateOptions (engine/options.ts) stays free of this layer; GenerationSettings is built from it, so a knob
// exists once and keeps the engine's name and meaning.
import type { BackendChoice } from '../backend/types.js';
import { DRAFT_SUBWORDS } from '../engine/generate.js';
import type { AcceptRule, GenerateOptions } from '../engine/options.js';
import { UsageError } from '../errors.js';

export type { AcceptRule } from '../engine/options.js';
export type { BackendChoice } from '../backend/types.js';

/** Where the models come from and what runs them. */
export interface ModelSources {
	model: string; // checkpoint folder, .gguf file, or hub repo ORG/NAME[@REV] until resolveSources() has fetched it
	modelFile?: string; // which .gguf of a hub repo that holds several
	drafter: string | null; // the subword drafter, the same kinds of source; null = plain decoding
	backend: BackendChoice;
	threads: number | null; // native backend threads (null = MAMBABYTE_THREADS or every CPU)
}

/** The engine options a user sets; the rest of GenerateOptions (schedule, signal, profile) belongs to the caller. */
const KNOBS = ['maxBytes', 'temperature', 'topK', 'topP', 'minP', 'repeatPenalty', 'repeatLastN', 'seed', 'stop', 'utf8', 'accept', 'draftSubwords'] as const satisfies readonly (keyof GenerateOptions)[];
type Knob = (typeof KNOBS)[number];

/**
 * One generation as a user asks for it, every knob given. `draft` turns speculative decoding on or off without
 * forgetting draftSubwords (the chat's /draft); without a loaded drafter it changes nothing.
 */
export type GenerationSettings = Required<Pick<GenerateOptions, Knob>> & { draft: boolean };

/** What the CLI prints besides the result. */
export interface Reporting {
	json: boolean; // one JSON object per result on stdout
	verbose: boolean; // notes on stderr: backend choice, models, figures
}

/** The options of `complete` and `chat`: what to open, how to generate, what to print. */
export type GenerationOptions = ModelSources & GenerationSettings & Reporting;

/** The defaults of every knob but the seed (a fresh one per run unless given). */
export const DEFAULT_SETTINGS: Readonly<Omit<GenerationSettings, 'seed'>> = {
	maxBytes: 256,
	temperature: 0.8,
	topK: 0,
	topP: 1,
	minP: 0,
	repeatPenalty: 1,
	repeatLastN: 64,
	stop: [],
	utf8: true,
	accept: { kind: 'exact' },
	draftSubwords: DRAFT_SUBWORDS,
	draft: true,
};

export const randomSeed = (): number => Date.now() >>> 0;

/** Settings with the given ones over the defaults. */
export function settingsWith(over: Partial<GenerationSettings> = {}): GenerationSettings {
	const given = Object.fromEntries(Object.entries(over).filter(([, v]) => v !== undefined)) as Partial<GenerationSettings>;
	return { ...DEFAULT_SETTINGS, seed: randomSeed(), ...given };
}

/** The generation settings inside wider options (GenerationOptions, a library call's options). */
export function settingsOf(o: GenerationSettings): GenerationSettings {
	const picked = Object.fromEntries(KNOBS.map((k) => [k, o[k]])) as Required<Pick<GenerateOptions, Knob>>;
	return { ...picked, draft: o.draft };
}

/** The engine's options for these settings (drafting off = zero subwords per draft). */
export function engineOptions(s: GenerationSettings, signal?: AbortSignal): GenerateOptions {
	const { draft, ...knobs } = settingsOf(s); // only the knobs: s may be wider options
	return { ...knobs, draftSubwords: draft ? knobs.draftSubwords : 0, ...(signal ? { signal } : {}) };
}

/** `exact` or `top:K` (--accept, /accept). */
export function parseAccept(value: string): AcceptRule {
	if (value === 'exact') return { kind: 'exact' };
	const m = /^top:(\d+)$/.exec(value);
	if (m && Number(m[1]) >= 1 && Number(m[1]) <= 256) return { kind: 'top', k: Number(m[1]) };
	throw new UsageError(`--accept ${value}: expected exact or top:K with K from 1 to 256`);
}

export const acceptName = (a: AcceptRule): string => (a.kind === 'exact' ? 'exact' : `top:${a.k}`);
