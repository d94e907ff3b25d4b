// `mambabyte complete [PROMPT]` (README, "Command line"): continue PROMPT, or all of stdin, and write ONLY the continuation's
// bytes to stdout, exactly as the model committed them (drafted bytes never reach stdout before the verifier
// accepts them). `--json` prints one object instead. Ctrl-C stops generation cleanly (what was generated stays
// written) and exits 130; a closed stdout (`| head -c 10`) ends quietly (main.ts exits 0 on EPIPE).
// An empty prompt generates from "\n" as context (generate.ts): the model needs a byte to predict from.
// The drafter (default: the shipped one) is used wherever it is given: the engine drafts only as much as measurably
// pays on this backend and model pair (engine/adaptive.ts), down to not at all. --no-draft decodes plain bytes.
import { concatBytes } from '../util/bytes.js';
import { READ_CAPS, readStreamBounded } from '../util/read-bounded.js';
import { stdoutFailed } from './stdout.js';
import { openModels } from '../app/open.js';
import { acceptName, engineOptions, type GenerationOptions } from '../app/options.js';
import type { LanguageModel } from '../model/types.js';
import { generate, Session } from '../engine/generate.js';
import type { GenerateOptions } from '../engine/options.js';
import type { Drafter } from '../engine/drafter.js';
import { decodeUtf8 } from '../engine/utf8.js';
import type { GenerationEvent, GenerationStats } from '../engine/events.js';

/** All of stdin, refused as soon as it passes the cap (stdin may be /dev/zero or an endless pipe). */
function readStdin(): Promise<Uint8Array> {
	return readStreamBounded(process.stdin, 'stdin', READ_CAPS.stdin);
}

/** Write to stdout without throwing; waits for the pipe to drain so memory stays flat on slow readers. */
function writeOut(bytes: Uint8Array): Promise<void> {
	return new Promise((resolve) => {
		try {
			if (process.stdout.write(bytes)) resolve();
			else process.stdout.once('drain', resolve);
		} catch (e) {
			// stdout on a file is written synchronously: ENOSPC (/dev/full) throws here rather than emitting 'error'
			stdoutFailed(e);
		}
	});
}

export function speculativeJson(stats: GenerationStats) {
	const s = stats.speculative;
	return s
		? {
			drafted: s.drafted, tested: s.tested, accepted: s.accepted, acceptance_rate: s.acceptanceRate,
			mean_accepted_run: s.meanAcceptedRun, verify_passes: s.verifyPasses,
		}
		: null;
}

export async function runComplete(prompt: string | Uint8Array | null, opts: GenerationOptions): Promise<void> {
	const promptBytes = prompt === null ? await readStdin() : typeof prompt === 'string' ? new TextEncoder().encode(prompt) : prompt;
	const opened = await openModels(opts);
	if (opts.verbose) for (const note of opened.notes) process.stderr.write(`mambabyte: ${note}\n`);
	const drafter = opened.drafter;
	if (opts.verbose) {
		const c = opened.model.config;
		process.stderr.write(
			`mambabyte: model ${opened.model.checkpoint.name} (d ${c.dModel}, ${c.nLayer} layers) on ${opened.kernels.name}` +
			(drafter ? `, drafter ${drafter.name} (${drafter.tokenizer.size} tokens, m=${opts.draftSubwords}, accept ${acceptName(opts.accept)})` : ', no drafter') +
			`, seed ${opts.seed}\n`,
		);
	}

	const controller = new AbortController();
	const onSigint = () => controller.abort();
	process.once('SIGINT', onSigint); // a second Ctrl-C gets Node's default: exit at once
	const out: Uint8Array[] = [];
	let finalStats: GenerationStats | null = null;
	let aborted = false;
	try {
		const options = engineOptions(opts, controller.signal);
		const events = promptBytes.length >= PROGRESS_FROM && process.stderr.isTTY
			? generateWithProgress(opened.model, promptBytes, options, drafter)
			: generate(opened.model, promptBytes, options, drafter);
		for await (const ev of events) {
			if (ev.type === 'commit') {
				if (opts.json) out.push(ev.bytes);
				else await writeOut(ev.bytes);
			} else if (ev.type === 'done') {
				finalStats = ev.stats;
				aborted = ev.reason === 'aborted';
			}
		}
	} finally {
		process.removeListener('SIGINT', onSigint);
	}
	const stats = finalStats!;
	if (opts.json) {
		const text = decodeUtf8(concatBytes(out));
		const obj = {
			text,
			prompt_bytes: promptBytes.length,
			generated_bytes: stats.generatedBytes,
			seconds: round(stats.seconds, 4),
			bytes_per_second: round(stats.bytesPerSecond, 2),
			speculative: speculativeJson(stats),
		};
		await writeOut(new TextEncoder().encode(JSON.stringify(obj) + '\n'));
	}
	if (opts.verbose) {
		const s = stats.speculative;
		process.stderr.write(
			`\nmambabyte: ${stats.generatedBytes} bytes in ${stats.seconds.toFixed(2)} s (${stats.bytesPerSecond.toFixed(1)} bytes/s)` +
			(s ? `; drafted ${s.drafted}, accepted ${s.accepted}/${s.tested} tested (${(100 * s.acceptanceRate).toFixed(1)}%), ` +
				`mean accepted run ${s.meanAcceptedRun.toFixed(2)}, ${s.verifyPasses} verify passes` : '') + '\n',
		);
	}
	if (aborted) process.exitCode = 130;
}


/** Prompts from this size on show how much of them has been read (on a terminal's stderr). */
export const PROGRESS_FROM = 16 * 1024;
const PIECE = 4096;

/**
 * generate() for a long prompt, with a progress line on stderr while the prompt is read in: the same bytes (a
 * session fed in pieces continues exactly like one prompt), but the wait before the first byte is not silent.
 */
export async function* generateWithProgress(
	model: LanguageModel, prompt: Uint8Array, opts: GenerateOptions, drafter: Drafter | null,
	write: (text: string) => void = (text) => process.stderr.write(text),
): AsyncGenerator<GenerationEvent> {
	const session = new Session(model, drafter);
	const t0 = performance.now();
	try {
		for (let at = 0; at < prompt.length; at += PIECE) {
			const seconds = (performance.now() - t0) / 1000;
			const rate = at / Math.max(seconds, 1e-3);
			write(`\r\x1b[2Kreading the prompt: ${at} of ${prompt.length} bytes (${((100 * at) / prompt.length).toFixed(0)}%)` +
				(at > 0 ? `, ${Math.round(rate)} bytes/s, ${Math.ceil((prompt.length - at) / rate)} s left` : ''));
			await session.append(prompt.subarray(at, at + PIECE), opts.signal);
		}
	} catch (e) {
		if (!(e instanceof Error && e.name === 'AbortError')) throw e;
	} finally {
		write('\r\x1b[2K');
	}
	if (opts.signal?.aborted) {
		const stats = { promptBytes: prompt.length, generatedBytes: 0, seconds: 0, bytesPerSecond: 0, speculative: null };
		yield { type: 'done', reason: 'aborted', stats };
		return;
	}
	yield* session.generate(opts);
}

const round = (v: number, digits: number) => Number(v.toFixed(digits));

