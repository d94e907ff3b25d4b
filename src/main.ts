// The `mambabyte` program (README, "Command line"): argv to one command. Parses and validates flags (cli/flags.ts), then hands
// over to a command of cli/ (plain output, pipes) or to the terminal UI of ui/ (the chat, the live perplexity view):
// the one file that knows both, so cli/ and ui/ stay independent of each other. Errors a user can act on are one
// line on stderr with exit code 1 (runtime) or 2 (usage); nothing else prints a stack trace unless --verbose.
//
// Which command runs: the first word when it is a command's name; a first word within a typo's distance of one
// (flags.ts mistypedCommand: 'perplexty', 'hepl') is a usage error with a hint; any other first word starts a
// prompt (complete). Words after `--` are always a prompt. No words at all: chat on a terminal, else complete
// from stdin.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { UserError, UsageError } from './errors.js';
import { checkLocal, PACKAGE_ROOT, resolveSources, type ResolveOptions } from './app/sources.js';
import { checkApplies, COMMANDS, mistypedCommand, parseArgv, type Command, type Parsed } from './cli/flags.js';
import { helpText } from './cli/help.js';
import { commonOptions, generationOptions, perplexityOptions, type RawFlags } from './cli/options.js';
import { isStdoutWriteError, stdoutFailed } from './cli/stdout.js';

function version(): string {
	return (JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

/** Hub downloads show a progress bar on a terminal; --verbose says what was fetched. */
const resolving = (flags: RawFlags): ResolveOptions => ({
	progress: Boolean(process.stderr.isTTY),
	log: flags.verbose ? (m: string) => process.stderr.write(`mambabyte: ${m}\n`) : undefined,
});

const isCommand = (w: string | undefined): w is Command => w !== undefined && (COMMANDS as readonly string[]).includes(w);

/** The command and its positional words. */
function pickCommand(p: Parsed): { command: Command; rest: string[]; implicit: boolean } {
	const first = p.afterDashDash > 0 ? p.positional[0] : undefined;
	if (isCommand(first)) return { command: first, rest: p.positional.slice(1), implicit: false };
	if (first !== undefined) {
		const guess = mistypedCommand(first);
		if (guess) {
			throw new UsageError(`unknown command '${first}' (did you mean '${guess}'?); a prompt that starts with this word: mambabyte -- ${first} ...`);
		}
	}
	const hasPrompt = p.positional.length > 0 || p.flags.prompt !== undefined || p.flags.file !== undefined;
	const chat = !hasPrompt && Boolean(process.stdin.isTTY) && Boolean(process.stdout.isTTY);
	return { command: chat ? 'chat' : 'complete', rest: p.positional, implicit: true };
}

/** The prompt of `complete`: words, -p, -f or stdin (null) — one of them. */
function promptOf(flags: RawFlags, rest: string[]): string | Uint8Array | null {
	const given = [rest.length > 0 && 'PROMPT words', flags.prompt !== undefined && '--prompt', flags.file !== undefined && '--file'].filter(Boolean);
	if (given.length > 1) throw new UsageError(`complete: give the prompt one way, not ${given.join(' and ')}`);
	if (flags.prompt !== undefined) return String(flags.prompt);
	if (flags.file !== undefined) {
		const file = String(flags.file);
		try {
			return new Uint8Array(readFileSync(file));
		} catch (e) {
			const code = (e as NodeJS.ErrnoException).code;
			throw new UserError(`--file ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a folder (expected a prompt file)' : String(code)}`);
		}
	}
	return rest.length > 0 ? rest.join(' ') : null;
}

async function main(argv: string[]): Promise<void> {
	const parsed = parseArgv(argv);
	const flags = parsed.flags;
	if (flags.version) {
		process.stdout.write(`${version()}\n`);
		return;
	}
	const { command, rest, implicit } = pickCommand(parsed);
	if (command === 'help' || flags.help) {
		const about = command === 'help' ? rest[0] : command;
		if (command === 'help' && about !== undefined && !isCommand(about)) {
			const guess = mistypedCommand(about);
			throw new UsageError(`help: unknown command '${about}'${guess ? ` (did you mean '${guess}'?)` : ` (commands: ${COMMANDS.join(', ')})`}`);
		}
		process.stdout.write(helpText(command === 'help' ? (about as Command | undefined) ?? null : implicit ? null : command));
		return;
	}
	checkApplies(parsed, command);
	const temperatureAs = parsed.typed.get('temperature');
	if (temperatureAs === '-t' && /^\d+$/.test(String(flags.temperature)) && Number(flags.temperature) >= 2) {
		const n = String(flags.temperature);
		throw new UsageError(`-t ${n}: temperature ${n}? -t is the temperature; for threads use --threads ${n} (or --temperature ${n} if meant)`);
	}
	switch (command) {
		case 'perplexity': {
			if (rest.length === 0) throw new UsageError('perplexity: expected at least one FILE (or - for stdin)');
			if (flags.klDivergence !== undefined) {
				const { runKlDivergence } = await import('./cli/kl.js');
				return runKlDivergence(rest, perplexityOptions(flags), checkLocal(String(flags.klDivergence), '--kl-divergence'));
			}
			const opts = await resolveSources(perplexityOptions(flags), resolving(flags));
			const { runPerplexity } = await import('./cli/perplexity.js');
			return runPerplexity(rest, opts, async (events, o) => (await import('./ui/perplexity.js')).renderPerplexity(events, o));
		}
		case 'complete': {
			const prompt = promptOf(flags, rest);
			const opts = await resolveSources(generationOptions(flags), resolving(flags));
			const { runComplete } = await import('./cli/complete.js');
			return runComplete(prompt, opts);
		}
		case 'chat': {
			if (rest.length > 0) throw new UsageError(`chat: unexpected argument ${rest[0]}`);
			const opts = await resolveSources(generationOptions(flags), resolving(flags));
			const { runChat } = await import('./ui/chat.js');
			return runChat(opts);
		}
		case 'bench': {
			const { runBench } = await import('./cli/bench.js');
			const resolved = await resolveSources(commonOptions(flags), resolving(flags)); // also applies --threads
			if (flags.model !== undefined) flags.model = resolved.model;
			return runBench(flags, rest);
		}
		case 'convert': {
			if (rest.length !== 2) throw new UsageError('convert: expected IN and OUT (convert IN OUT [--dtype f16|bf16|f32|q8_0|q4_0|q4_k|q6_k])');
			const { runConvert } = await import('./cli/convert.js');
			return runConvert(rest[0], rest[1], String(flags.dtype ?? 'f16'));
		}
	}
}

export function run(argv = process.argv.slice(2)): void {
	const verbose = argv.includes('--verbose');
	// A closed pipe (`| head -c 10`) is not an error: stop quietly; ENOSPC and the like: one line, exit 1 (stdout.ts).
	process.stdout.on('error', stdoutFailed);
	main(argv).then(
		() => {},
		(e: unknown) => {
			if (isStdoutWriteError(e)) stdoutFailed(e);
			if (e instanceof UserError) {
				process.stderr.write(`mambabyte: ${e.message}\n`);
				process.exitCode = e.exitCode;
			} else {
				const err = e instanceof Error ? e : new Error(String(e));
				process.stderr.write(`mambabyte: internal error: ${err.message.split('\n')[0]}\n`);
				if (verbose && err.stack) process.stderr.write(err.stack + '\n');
				process.exitCode = 1;
			}
		},
	);
}
