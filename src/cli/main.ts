// The `mambabyte` command (DESIGN.md §9). Parses and validates flags with meow, then hands over to one command
// module. Errors a user can act on are one line on stderr with exit code 1 (runtime) or 2 (usage); nothing else
// prints a stack trace unless --verbose.
import meow from 'meow';
import { UserError, UsageError } from '../errors.js';
import { generationOptions, modelDir, perplexityOptions, type RawFlags } from './options.js';
import { isStdoutWriteError, stdoutFailed } from './stdout.js';

const help = `
  Usage
    $ mambabyte [PROMPT]                 chat in a terminal when no PROMPT and stdin is a terminal; otherwise complete
    $ mambabyte chat                     the interactive REPL
    $ mambabyte complete [PROMPT]        continue PROMPT (or all of stdin); only the continuation goes to stdout
    $ mambabyte perplexity FILE...       bits per byte of each file ('-' = stdin)
    $ mambabyte bench                    throughput: prefill, decode, speculative
    $ mambabyte convert IN OUT           any supported checkpoint to HF safetensors or GGUF

  Common options
    -m, --model DIR          checkpoint folder (default: the shipped byte model)
    --backend B              auto|native|cpu|webasm|webgpu|headlessgl (default auto)
    --json                   one JSON object per result on stdout
    --verbose                say which backend was chosen and why others were skipped

  Generation
    -n, --max-bytes N        bytes to generate (default 256)
    -t, --temperature T      0 = greedy (default 0.8)
    --top-k K  --top-p P     sampling filters (default off)
    --seed S                 same seed, same backend: same bytes
    --stop STR               stop after STR (repeatable)
    --draft DIR | --no-draft subword drafter for speculative decoding (default: the shipped one)
    --draft-subwords M       subwords drafted per round (default 3)
    --accept exact|top:K     exact keeps plain decoding's output; top:3 is the paper's rule (default exact)
    --no-utf8                allow bytes that make the output invalid UTF-8

  Perplexity
    --curve                  bits per byte by position bucket
    --bucket N               bucket size in bytes (default: the model's training context length)
    --window W               sliding window: each byte sees at most W bytes of context
    --kl-divergence BASE     KL(BASE ‖ --model) per byte, its percentiles and top-1 agreement (what a quantization costs)

  Bench
    --shape DxL              random weights of that shape (e.g. 1024x53) instead of --model
    --dtype q8_0|q4_0|q4_k|f16  with --shape: projections stored in that block type (native backend)
    --profile                where a speculative round's time goes (drafter, verify, rollback, ...)

  Convert
    --dtype TYPE             f16|bf16|f32 (HF safetensors; GGUF when OUT ends in .gguf) or q8_0|q4_0|q4_k|q6_k
                             (a GGUF file OUT); default f16

  Exit codes: 0 success, 1 runtime failure (bad file, bad checkpoint), 2 usage error

  Examples
    $ mambabyte "It was a dark and stormy night"
    $ echo "It was a dark and stormy night" | mambabyte -n 200
    $ mambabyte perplexity book.txt --json
`;

const flagSpec = {
	model: { type: 'string', shortFlag: 'm' },
	backend: { type: 'string' },
	json: { type: 'boolean' },
	verbose: { type: 'boolean' },
	maxBytes: { type: 'string', shortFlag: 'n' },
	temperature: { type: 'string', shortFlag: 't' },
	topK: { type: 'string' },
	topP: { type: 'string' },
	seed: { type: 'string' },
	stop: { type: 'string', isMultiple: true },
	draft: { type: 'string' },
	draftSubwords: { type: 'string' },
	accept: { type: 'string' },
	utf8: { type: 'boolean' },
	curve: { type: 'boolean' },
	bucket: { type: 'string' },
	window: { type: 'string' },
	klDivergence: { type: 'string' },
	shape: { type: 'string' },
	profile: { type: 'boolean' },
	dtype: { type: 'string' },
} as const;

const SHORT_FLAGS: string[] = Object.values(flagSpec).flatMap((f) => ('shortFlag' in f ? [f.shortFlag] : []));
const camel = (k: string) => k.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

const COMMANDS = ['chat', 'complete', 'perplexity', 'bench', 'convert'] as const;

async function main(argv: string[]): Promise<void> {
	const cli = meow(help, {
		importMeta: import.meta,
		argv,
		flags: flagSpec,
		allowUnknownFlags: true, // checked below, so the message is one line naming the flag
		booleanDefault: undefined,
	});
	const flags = cli.flags as RawFlags;
	const unknown = Object.keys(cli.unnormalizedFlags).find((k) => !(k in flagSpec) && !SHORT_FLAGS.includes(k) && !(camel(k) in flagSpec));
	if (unknown !== undefined) throw new UsageError(`unknown flag ${unknown.length === 1 ? '-' : '--'}${unknown} (see mambabyte --help)`);
	let [command, ...rest] = cli.input;
	if (!(COMMANDS as readonly string[]).includes(command)) {
		rest = cli.input;
		command = rest.length === 0 && process.stdin.isTTY && process.stdout.isTTY ? 'chat' : 'complete';
	}
	switch (command) {
		case 'perplexity': {
			if (rest.length === 0) throw new UsageError('perplexity: expected at least one FILE (or - for stdin)');
			if (flags.klDivergence !== undefined) {
				const { runKlDivergence } = await import('./kl.js');
				return runKlDivergence(rest, perplexityOptions(flags), modelDir(flags.klDivergence, '--kl-divergence', ''));
			}
			const { runPerplexity } = await import('./perplexity.js');
			return runPerplexity(rest, perplexityOptions(flags));
		}
		case 'complete': {
			const { runComplete } = await import('./complete.js');
			return runComplete(rest.length > 0 ? rest.join(' ') : null, generationOptions(flags));
		}
		case 'chat': {
			if (rest.length > 0) throw new UsageError(`chat: unexpected argument ${rest[0]}`);
			const { runChat } = await import('../ui/chat.js');
			return runChat(generationOptions(flags));
		}
		case 'bench': {
			const { runBench } = await import('./bench.js');
			return runBench(flags, rest);
		}
		case 'convert': {
			if (rest.length !== 2) throw new UsageError('convert: expected IN and OUT (a folder, or a .gguf file)');
			const { runConvert } = await import('./convert.js');
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
