// Command-line flags → validated options. Every value is checked here, once, so a bad value is one line and exit 2
// before any model is loaded. Numbers are read as strings and parsed here to name the flag in the message.
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError, UserError } from '../errors.js';
import { MAX_REPEAT_LAST_N } from '../engine/sampling.js';
import { parseBackend } from '../backend/select.js';
import type { BackendChoice } from '../backend/types.js';

/** The package root (bin/, dist/, checkpoints/ live under it). */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const DEFAULT_MODEL = path.join(PACKAGE_ROOT, 'checkpoints', 'byte-model');
export const DEFAULT_DRAFT = path.join(PACKAGE_ROOT, 'checkpoints', 'subword-drafter');

export type Accept = { kind: 'exact' } | { kind: 'top'; k: number };

export interface CommonOptions {
	model: string; // checkpoint folder or file; a hub name until resolveModels() has downloaded it
	modelFile?: string; // --model-file: which file of a hub repo
	threads: number | null; // native backend threads (null = MAMBABYTE_THREADS or every CPU)
	backend: BackendChoice;
	json: boolean;
	verbose: boolean;
}

export interface GenerationOptions extends CommonOptions {
	maxBytes: number; // Infinity with -n -1
	temperature: number; // 0 = greedy
	topK: number; // 0 = off
	topP: number; // 1 = off
	minP: number; // 0 = off
	repeatPenalty: number; // 1 = off
	repeatLastN: number; // bytes of context the penalty looks at (-1 = the whole kept window, sampling.ts)
	seed: number;
	stop: string[];
	draft: string | null; // drafter folder, or null for plain decoding
	draftSubwords: number;
	accept: Accept;
	utf8: boolean; // mask bytes that would make the output invalid UTF-8
}

export interface PerplexityOptions extends CommonOptions {
	curve: boolean;
	bucket: number | null; // null = the model's training context length
	window: number | null; // null = full context, one recurrent pass
}

export type RawFlags = Record<string, unknown>;

function number(flags: RawFlags, name: string, flag: string, check: (v: number) => boolean, expected: string): number | undefined {
	const raw = flags[name];
	if (raw === undefined || raw === null) return undefined;
	const v = typeof raw === 'number' ? raw : Number(String(raw).trim() === '' ? NaN : raw);
	if (!Number.isFinite(v) || !check(v)) throw new UsageError(`${flag} ${String(raw)}: expected ${expected}`);
	return v;
}
const isInt = (v: number) => Number.isInteger(v);

/** A local checkpoint: a folder, or a single-file checkpoint (.gguf). A missing one is a file failure: exit 1. */
export function modelDir(value: unknown, flag: string, fallback: string): string {
	const dir = value === undefined ? fallback : String(value);
	if (!existsSync(dir)) throw new UserError(`${flag} ${dir}: no such folder${isHubName(dir) ? '' : ' (expected a checkpoint folder, a .gguf file or a hub repo ORG/NAME)'}`);
	if (!statSync(dir).isDirectory() && !dir.toLowerCase().endsWith('.gguf')) {
		throw new UserError(`${flag} ${dir}: not a folder (expected a checkpoint folder with config.json, or a .gguf file)`);
	}
	return dir;
}

/** ORG/NAME[/FILE.gguf][@REVISION] that is not a local path: a Hugging Face Hub repo (src/hub). */
export function isHubName(value: string): boolean {
	return !existsSync(value) && !path.isAbsolute(value) && !value.startsWith('.') &&
		/^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*(\/[^@]+\.gguf)?(@[\w./-]+)?$/.test(value);
}

/** Hub names in --model / --draft replaced by their local snapshot (downloaded when missing), local ones checked. */
export async function resolveModels<T extends { model: string; modelFile?: string; threads: number | null; draft?: string | null; verbose?: boolean }>(o: T): Promise<T> {
	// The native addon reads its thread count when it loads (after this); the variable is also the fallback.
	if (o.threads !== null) process.env.MAMBABYTE_THREADS = String(o.threads);
	const resolve = async (value: string, flag: string, file?: string): Promise<string> => {
		if (!isHubName(value)) return modelDir(value, flag, value);
		const { resolveHubModel } = await import('../hub/index.js');
		return resolveHubModel(value, { file, progress: Boolean(process.stderr.isTTY), log: o.verbose ? (m: string) => process.stderr.write(`mambabyte: ${m}\n`) : undefined });
	};
	const model = await resolve(o.model, '--model', o.modelFile);
	const draft = typeof o.draft === 'string' && o.draft !== DEFAULT_DRAFT ? await resolve(o.draft, '--draft') : o.draft;
	return { ...o, model, draft };
}

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

export function parseAccept(value: string): Accept {
	if (value === 'exact') return { kind: 'exact' };
	const m = /^top:(\d+)$/.exec(value);
	if (m && Number(m[1]) >= 1 && Number(m[1]) <= 256) return { kind: 'top', k: Number(m[1]) };
	throw new UsageError(`--accept ${value}: expected exact or top:K with K from 1 to 256`);
}

/** A folder that holds a checkpoint: config.json with HF/mamba_ssm weights, or a model.gguf (the shipped layout). */
export const isCheckpointDir = (dir: string) => existsSync(path.join(dir, 'config.json')) || existsSync(path.join(dir, 'model.gguf'));

export function generationOptions(flags: RawFlags): GenerationOptions {
	const common = commonOptions(flags);
	let draft: string | null = null;
	if (flags.draft === false) draft = null; // --no-draft
	else if (flags.draft !== undefined) draft = String(flags.draft); // checked (or downloaded) by resolveModels
	else if (isCheckpointDir(DEFAULT_DRAFT)) draft = DEFAULT_DRAFT;
	const stop = (flags.stop as string[] | undefined) ?? [];
	if (stop.some((s) => s.length === 0)) throw new UsageError('--stop: expected a non-empty string');
	const maxBytes = number(flags, 'maxBytes', '--max-bytes', (v) => isInt(v) && v >= -1, 'a whole number >= 0, or -1 for no limit') ?? 256;
	return {
		...common,
		maxBytes: maxBytes === -1 ? Infinity : maxBytes,
		temperature: number(flags, 'temperature', '--temperature', (v) => v >= 0 && v <= 100, 'a number from 0 (greedy) to 100') ?? 0.8,
		topK: number(flags, 'topK', '--top-k', (v) => isInt(v) && v >= 0 && v <= 65536, 'a whole number >= 0 (0 = off)') ?? 0,
		topP: number(flags, 'topP', '--top-p', (v) => v > 0 && v <= 1, 'a number in (0, 1]') ?? 1,
		minP: number(flags, 'minP', '--min-p', (v) => v >= 0 && v <= 1, 'a number from 0 (off) to 1') ?? 0,
		repeatPenalty: number(flags, 'repeatPenalty', '--repeat-penalty', (v) => v > 0 && v <= 100, 'a number > 0 (1 = off)') ?? 1,
		repeatLastN: number(flags, 'repeatLastN', '--repeat-last-n', (v) => isInt(v) && v >= -1 && v <= MAX_REPEAT_LAST_N, `a whole number from 0 to ${MAX_REPEAT_LAST_N}, or -1 for all of them`) ?? 64,
		seed: number(flags, 'seed', '--seed', (v) => isInt(v) && v >= 0 && v < 2 ** 32, 'a whole number from 0 to 2^32-1') ?? (Date.now() >>> 0),
		stop,
		draft,
		draftSubwords: number(flags, 'draftSubwords', '--draft-subwords', (v) => isInt(v) && v >= 1 && v <= 64, 'a whole number from 1 to 64') ?? 3,
		accept: parseAccept(String(flags.accept ?? 'exact')),
		utf8: flags.utf8 === undefined ? true : Boolean(flags.utf8),
	};
}

export function perplexityOptions(flags: RawFlags): PerplexityOptions {
	return {
		...commonOptions(flags),
		curve: Boolean(flags.curve),
		bucket: number(flags, 'bucket', '--bucket', (v) => isInt(v) && v >= 1, 'a whole number of bytes >= 1') ?? null,
		// W = 1 would score every byte with no context at all (and the stride ⌈W/2⌉ leaves nothing to score).
		window: number(flags, 'window', '--window', (v) => isInt(v) && v >= 2, 'a whole number of bytes >= 2 (each byte sees up to W - 1 bytes before it)') ?? null,
	};
}
