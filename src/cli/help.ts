// Help text: `mambabyte --help` / `mambabyte help` (overview) and `mambabyte help CMD` / `CMD --help` (one command).
import type { Command } from './flags.js';

const COMMON = `
  Model and backend
    -m, --model M            checkpoint folder, a .gguf file, or a Hugging Face repo ORG/NAME[@REVISION]
                             (downloaded once into $HF_HOME/hub, then used offline); default: the shipped byte model
    --model-file F           the file to take from a hub repo that holds several .gguf files
    --backend B              auto|native|cpu|webasm|webgpu|headlessgl (default auto)
    --threads N              threads of the native backend (default: every CPU; env MAMBABYTE_THREADS)
    --verbose                say which backend was chosen and why others were skipped`;

const GENERATION = `
  Generation
    -n, --max-bytes N        bytes to generate (default 256; -1 = until a stop string or Ctrl-C)
    -t, --temperature T      0 = greedy (default 0.8); also --temp. -t takes a temperature, not threads:
                             -t 8 is refused with a hint (use --threads 8, or --temperature 8 if meant)
    --top-k K  --top-p P     sampling filters (default off)
    --min-p P                keep bytes with p >= P * p(most likely byte) (default 0 = off)
    --repeat-penalty R       divide positive / multiply negative logits of bytes seen in the last
                             --repeat-last-n N bytes (default R = 1 = off, N = 64; N = -1: the whole context kept)
    --seed S                 same seed, same backend: same bytes
    --stop STR               stop after STR (repeatable)
    --draft M | --no-draft   subword drafter for speculative decoding (default: the shipped one)
    --draft-subwords K       subwords drafted per round (default 3)
    --accept exact|top:K     exact keeps plain decoding's output; top:3 is the paper's rule (default exact)
    --no-utf8                allow bytes that make the output invalid UTF-8`;

const PER_COMMAND: Record<Exclude<Command, 'help'>, string> = {
	chat: `
  Usage
    $ mambabyte chat [options]       the interactive REPL (/help inside it lists its commands)
    $ mambabyte                      the same, when stdin and stdout are a terminal
${COMMON}
${GENERATION}
`,
	complete: `
  Usage
    $ mambabyte complete [PROMPT...]     continue PROMPT (or all of stdin); only the continuation goes to stdout
    $ mambabyte [PROMPT...]              the same, when the first word is not a command
    $ mambabyte -- WORD...               a prompt that starts with a command's name (or a flag)

  Prompt
    -p, --prompt TEXT        the prompt, as one argument
    -f, --file FILE          read the prompt from FILE
    --json                   one JSON object (text, prompt_bytes, generated_bytes, seconds, ...) instead of the text
  A first word close to a command's name (e.g. 'perplexty') is refused as a likely typo; give such a one-word
  prompt as 'mambabyte complete WORD', 'mambabyte -- WORD' or '-p WORD'.
${COMMON}
${GENERATION}
`,
	perplexity: `
  Usage
    $ mambabyte perplexity FILE...   bits per byte and word perplexity of each file ('-' = stdin)

  Perplexity
    --json                   one JSON object per file
    --curve                  bits per byte by position bucket
    --bucket N               bucket size in bytes (default: the model's training context length)
    --window W               sliding window: each byte sees at most W - 1 bytes of context (W >= 2)
    --kl-divergence BASE     KL(BASE || --model) per byte, its percentiles and top-1 agreement (what a quantization costs)
    --limit BYTES            score only the first BYTES bytes of each file (BYTES >= 2)
    --noise TYPE:P           score the text with synthetic noise, TYPE drop|repeat|antspeak|uppercase|random-case|swap
                             at probability P in [0, 1] (the MambaByte paper's robustness test); repeatable, applied
                             in the order given
    --seed S                 the noise's seed (default 0: the same command, the same noised text)
  Ctrl-C prints the result of the part scored so far, then exits 130.
${COMMON}
`,
	bench: `
  Usage
    $ mambabyte bench [options]      throughput: prefill, decode (bytes per second)

  Bench
    --shape DxL              random weights of that shape (e.g. 1024x53 = MambaByte-353M) instead of --model
    --dtype q8_0|q4_0|q4_k|f16  with --shape: projections stored in that block type (native backend)
    --profile                where a speculative round's time goes (drafter, verify, rollback, ...)
    --json                   one JSON object per row
${COMMON}
`,
	convert: `
  Usage
    $ mambabyte convert IN OUT [--dtype TYPE]    any supported checkpoint to HF safetensors or GGUF

  Convert
    --dtype TYPE             f16|bf16|f32 (HF safetensors; GGUF when OUT ends in .gguf) or q8_0|q4_0|q4_k|q6_k
                             (a GGUF file OUT); default f16
    --verbose                more detail on failure
`,
};

export const OVERVIEW = `
  Usage
    $ mambabyte [PROMPT...]              chat in a terminal when no PROMPT and stdin is a terminal; otherwise complete
    $ mambabyte chat                     the interactive REPL
    $ mambabyte complete [PROMPT...]     continue PROMPT (or all of stdin); only the continuation goes to stdout
    $ mambabyte perplexity FILE...       bits per byte of each file ('-' = stdin)
    $ mambabyte bench                    throughput: prefill, decode, speculative
    $ mambabyte convert IN OUT           any supported checkpoint to HF safetensors
    $ mambabyte help [COMMAND]           this text, or one command's options (also COMMAND --help, -h)
    $ mambabyte --version                the version (also -v)
${COMMON}
${GENERATION}

  Perplexity: --curve --bucket N --window W --limit BYTES --noise TYPE:P [--seed S]
  Bench: --shape DxL    Convert: --dtype f16|bf16|f32|q8_0|q4_0|q4_k|q6_k
  (mambabyte help COMMAND for each command's options)

  Exit codes: 0 success, 1 runtime failure (bad or missing file, folder, checkpoint, download),
  2 usage error (bad command, flag or value), 130 interrupted (Ctrl-C)

  Examples
    $ mambabyte "It was a dark and stormy night"
    $ echo "It was a dark and stormy night" | mambabyte -n 200
    $ mambabyte perplexity book.txt --json
    $ mambabyte -m JunxiongWang/MambaByte_PG19_353M "It was"
`;

export function helpText(command: Command | null): string {
	return command === null || command === 'help' ? OVERVIEW : PER_COMMAND[command];
}
