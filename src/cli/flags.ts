// The command line's grammar: which flags exist, which commands each applies to, and a small parser that keeps
// every flag as the user typed it (so errors echo `--repeat-penalty`, never a camelCased key).
//
// Rules (README "Command line"):
//   --name VALUE, --name=VALUE, -x VALUE, -xVALUE; boolean flags take no value; --no-NAME for negatable ones;
//   `--` ends the flags (everything after it is the prompt or file list, even words starting with '-');
//   a value flag always takes the next word as its value, so `-t -1` is temperature -1 (then rejected by range);
//   a flag that does not apply to the command is a usage error naming it (`perplexity -n 5`).
import { UsageError } from '../errors.js';

export const COMMANDS = ['chat', 'complete', 'perplexity', 'bench', 'convert', 'help'] as const;
export type Command = (typeof COMMANDS)[number];

interface FlagSpec {
	key: string; // the options key (camelCase)
	short?: string;
	alias?: string[];
	value: boolean; // takes a value
	multiple?: boolean;
	negatable?: boolean; // --no-NAME sets it to false
	commands: readonly Command[];
}

const GEN: Command[] = ['chat', 'complete'];
const MODEL: Command[] = ['chat', 'complete', 'perplexity', 'bench'];
const OUT_JSON: Command[] = ['complete', 'perplexity', 'bench'];

/** Long name (as typed, kebab-case) → spec. */
export const FLAGS: Record<string, FlagSpec> = {
	model: { key: 'model', short: 'm', value: true, commands: MODEL },
	'model-file': { key: 'modelFile', value: true, commands: MODEL },
	backend: { key: 'backend', value: true, commands: MODEL },
	threads: { key: 'threads', value: true, commands: MODEL },
	json: { key: 'json', value: false, commands: OUT_JSON },
	verbose: { key: 'verbose', value: false, commands: [...MODEL, 'convert'] },
	'max-bytes': { key: 'maxBytes', short: 'n', value: true, commands: GEN },
	temperature: { key: 'temperature', short: 't', alias: ['temp'], value: true, commands: GEN },
	'top-k': { key: 'topK', value: true, commands: GEN },
	'top-p': { key: 'topP', value: true, commands: GEN },
	'min-p': { key: 'minP', value: true, commands: GEN },
	'repeat-penalty': { key: 'repeatPenalty', value: true, commands: GEN },
	'repeat-last-n': { key: 'repeatLastN', value: true, commands: GEN },
	seed: { key: 'seed', value: true, commands: [...GEN, 'perplexity'] }, // perplexity: of --noise
	stop: { key: 'stop', value: true, multiple: true, commands: GEN },
	draft: { key: 'draft', value: true, negatable: true, commands: GEN },
	'draft-subwords': { key: 'draftSubwords', value: true, commands: GEN },
	accept: { key: 'accept', value: true, commands: GEN },
	utf8: { key: 'utf8', value: false, negatable: true, commands: GEN },
	prompt: { key: 'prompt', short: 'p', value: true, commands: ['complete'] },
	file: { key: 'file', short: 'f', value: true, commands: ['complete'] },
	curve: { key: 'curve', value: false, commands: ['perplexity'] },
	bucket: { key: 'bucket', value: true, commands: ['perplexity'] },
	window: { key: 'window', value: true, commands: ['perplexity'] },
	limit: { key: 'limit', value: true, commands: ['perplexity'] },
	noise: { key: 'noise', value: true, multiple: true, commands: ['perplexity'] },
	'kl-divergence': { key: 'klDivergence', value: true, commands: ['perplexity'] },
	profile: { key: 'profile', value: false, commands: ['bench'] },
	shape: { key: 'shape', value: true, commands: ['bench'] },
	dtype: { key: 'dtype', value: true, commands: ['convert', 'bench'] },
	help: { key: 'help', short: 'h', value: false, commands: COMMANDS },
	version: { key: 'version', short: 'v', value: false, commands: COMMANDS },
};

const BY_SHORT = new Map(Object.entries(FLAGS).flatMap(([name, f]) => (f.short ? [[f.short, name] as const] : [])));
const BY_ALIAS = new Map(Object.entries(FLAGS).flatMap(([name, f]) => (f.alias ?? []).map((a) => [a, name] as const)));

export interface Parsed {
	flags: Record<string, unknown>; // by options key; string values, booleans, string[] for multiple
	typed: Map<string, string>; // options key → the flag as typed ('-t', '--temp'), for messages
	positional: string[];
	afterDashDash: number; // index into positional where the words after `--` start (positional.length if none)
}

/** Split argv into flags and positional words. Unknown flags and missing values are usage errors. */
export function parseArgv(argv: readonly string[]): Parsed {
	const flags: Record<string, unknown> = {};
	const typed = new Map<string, string>();
	const positional: string[] = [];
	let afterDashDash = -1;
	for (let i = 0; i < argv.length; i++) {
		const arg = argv[i];
		if (afterDashDash >= 0 || arg === '-' || !arg.startsWith('-')) {
			positional.push(arg);
			continue;
		}
		if (arg === '--') {
			afterDashDash = positional.length;
			continue;
		}
		let name: string;
		let asTyped: string;
		let inline: string | undefined;
		let negated = false;
		if (arg.startsWith('--')) {
			const eq = arg.indexOf('=');
			asTyped = eq >= 0 ? arg.slice(0, eq) : arg;
			inline = eq >= 0 ? arg.slice(eq + 1) : undefined;
			name = asTyped.slice(2);
			if (BY_ALIAS.has(name)) name = BY_ALIAS.get(name)!;
			if (!(name in FLAGS) && name.startsWith('no-') && FLAGS[name.slice(3)]?.negatable) {
				name = name.slice(3);
				negated = true;
			}
		} else {
			asTyped = arg.slice(0, 2);
			inline = arg.length > 2 ? arg.slice(2) : undefined;
			const long = BY_SHORT.get(arg[1]);
			if (long === undefined) throw new UsageError(`unknown flag ${asTyped} (see mambabyte --help)`);
			name = long;
		}
		const spec = FLAGS[name];
		if (spec === undefined) throw new UsageError(`unknown flag ${asTyped} (see mambabyte --help)`);
		let value: unknown;
		if (negated) {
			if (inline !== undefined) throw new UsageError(`${asTyped}: takes no value`);
			value = false;
		} else if (spec.value) {
			if (inline !== undefined) value = inline;
			else if (i + 1 < argv.length) value = argv[++i];
			else throw new UsageError(`${asTyped}: expected a value`);
		} else {
			if (inline !== undefined) throw new UsageError(`${asTyped}: takes no value`);
			value = true;
		}
		if (spec.multiple) flags[spec.key] = [...((flags[spec.key] as string[] | undefined) ?? []), value];
		else flags[spec.key] = value;
		typed.set(spec.key, negated ? `--no-${name}` : asTyped);
	}
	return { flags, typed, positional, afterDashDash: afterDashDash >= 0 ? afterDashDash : positional.length };
}

/** Usage error naming every given flag that the command does not use. */
export function checkApplies(parsed: Parsed, command: Command): void {
	const wrong: string[] = [];
	for (const spec of Object.values(FLAGS)) {
		if (parsed.typed.has(spec.key) && !spec.commands.includes(command)) wrong.push(parsed.typed.get(spec.key)!);
	}
	if (wrong.length > 0) {
		throw new UsageError(`${command}: ${wrong.join(', ')} ${wrong.length === 1 ? 'does' : 'do'} not apply (see mambabyte help ${command})`);
	}
}

/** Optimal string alignment distance (Levenshtein plus adjacent transpositions). */
export function editDistance(a: string, b: string): number {
	const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
	for (let i = 1; i <= a.length; i++) {
		for (let j = 1; j <= b.length; j++) {
			const cost = a[i - 1] === b[j - 1] ? 0 : 1;
			d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
			if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
		}
	}
	return d[a.length][b.length];
}

/**
 * The command a first word was probably meant to be, or null when it reads as a prompt. A word counts as a typo when
 * it is lower-case letters only and close to a command: within 2 edits of a long command (complete, convert,
 * perplexity), or one dropped, added or swapped letter from a short one (chat, help, bench) — a replaced letter is
 * not counted for those, so everyday words like "what", "that" or "hello" stay prompts.
 */
export function mistypedCommand(word: string): Command | null {
	if (!/^[a-z]{3,}$/.test(word)) return null;
	let best: Command | null = null;
	let bestD = Infinity;
	for (const c of COMMANDS) {
		const d = editDistance(word, c);
		const close = c.length >= 7 ? d <= 2 : d === 1 && word.length !== c.length ? true : d === 1 && sameLetters(word, c);
		if (close && d < bestD) {
			best = c;
			bestD = d;
		}
	}
	return best;
}

const sameLetters = (a: string, b: string) => [...a].sort().join('') === [...b].sort().join('');
