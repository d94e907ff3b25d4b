// Command-line flags → validated options. Every value is checked here, once, so a bad value is one line and exit 2
// before any model is loaded. Numbers are read as strings and parsed here to name the flag in the message.
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../errors.js';
import { parseBackend } from '../backend/select.js';
import type { BackendChoice } from '../backend/types.js';

/** The package root (bin/, dist/, checkpoints/ live under it). */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const DEFAULT_MODEL = path.join(PACKAGE_ROOT, 'checkpoints', 'byte-model');
export const DEFAULT_DRAFT = path.join(PACKAGE_ROOT, 'checkpoints', 'subword-drafter');

export type Accept = { kind: 'exact' } | { kind: 'top'; k: number };

export interface CommonOptions {
	model: string; // checkpoint folder
	backend: BackendChoice;
	json: boolean;
	verbose: boolean;
}

export interface GenerationOptions extends CommonOptions {
	maxBytes: number;
	temperature: number; // 0 = greedy
	topK: number; // 0 = off
	topP: number; // 1 = off
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

export function modelDir(value: unknown, flag: string, fallback: string): string {
	const dir = value === undefined ? fallback : String(value);
	if (!existsSync(dir)) throw new UsageError(`${flag} ${dir}: no such folder`);
	if (statSync(dir).isFile() && /\.gguf$/i.test(dir)) return dir; // a llama.cpp model file
	if (!statSync(dir).isDirectory()) throw new UsageError(`${flag} ${dir}: not a folder or a .gguf file (expected a checkpoint folder with config.json, or a .gguf file)`);
	return dir;
}

export function commonOptions(flags: RawFlags): CommonOptions {
	return {
		model: modelDir(flags.model, '--model', DEFAULT_MODEL),
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

export function generationOptions(flags: RawFlags): GenerationOptions {
	const common = commonOptions(flags);
	let draft: string | null = null;
	if (flags.draft === false) draft = null; // --no-draft
	else if (flags.draft !== undefined) draft = modelDir(flags.draft, '--draft', DEFAULT_DRAFT);
	else if (existsSync(path.join(DEFAULT_DRAFT, 'config.json'))) draft = DEFAULT_DRAFT;
	const stop = (flags.stop as string[] | undefined) ?? [];
	if (stop.some((s) => s.length === 0)) throw new UsageError('--stop: expected a non-empty string');
	return {
		...common,
		maxBytes: number(flags, 'maxBytes', '--max-bytes', (v) => isInt(v) && v >= 0, 'a whole number >= 0') ?? 256,
		temperature: number(flags, 'temperature', '--temperature', (v) => v >= 0 && v <= 100, 'a number from 0 (greedy) to 100') ?? 0.8,
		topK: number(flags, 'topK', '--top-k', (v) => isInt(v) && v >= 0 && v <= 65536, 'a whole number >= 0 (0 = off)') ?? 0,
		topP: number(flags, 'topP', '--top-p', (v) => v > 0 && v <= 1, 'a number in (0, 1]') ?? 1,
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
		window: number(flags, 'window', '--window', (v) => isInt(v) && v >= 1, 'a whole number of bytes >= 1') ?? null,
	};
}
