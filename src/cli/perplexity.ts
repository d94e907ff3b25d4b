// `mambabyte perplexity FILE...`: score each file (or stdin for '-') and print bits per byte and word perplexity.
// Plain lines on stdout (or one JSON object per file with --json); a live progress view on stderr when it is a TTY.
import { createReadStream, statSync } from 'node:fs';
import { UserError } from '../errors.js';
import { openModel } from '../model/open.js';
import { scoreStream } from '../engine/perplexity.js';
import type { PerplexityEvent, PerplexityResult } from '../engine/events.js';
import type { PerplexityOptions } from './options.js';

/** Bucket size for --curve when the checkpoint does not record its training context length. */
export const DEFAULT_BUCKET = 2048;

interface Source {
	name: string;
	size: number | null;
	open: () => AsyncIterable<Uint8Array>;
}

function sourceOf(file: string): Source {
	if (file === '-') return { name: '-', size: null, open: () => process.stdin };
	let size: number;
	try {
		const st = statSync(file);
		if (st.isDirectory()) throw new UserError(`${file}: is a folder (expected a file to score)`);
		size = st.size;
	} catch (e) {
		if (e instanceof UserError) throw e;
		const code = (e as NodeJS.ErrnoException).code;
		throw new UserError(`${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : String(code)}`);
	}
	return { name: file, size, open: () => createReadStream(file, { highWaterMark: 1 << 16 }) };
}

export const formatResult = (r: PerplexityResult): string =>
	`${r.file}  ${r.bits_per_byte.toFixed(4)} bits/byte  word perplexity ${r.word_perplexity.toFixed(2)}  ` +
	`${r.bytes} bytes  ${r.bytes_per_second.toFixed(1)} bytes/s`;

export async function runPerplexity(files: string[], o: PerplexityOptions): Promise<void> {
	const sources = files.map(sourceOf); // every path checked before the model loads
	if (files.filter((f) => f === '-').length > 1) throw new UserError("'-' (stdin) can be given only once");
	const { model, kernels, notes } = await openModel(o.model, o.backend);
	if (o.verbose) for (const n of [...notes, `backend ${kernels.name} chosen`]) process.stderr.write(`mambabyte: ${n}\n`);
	const bucket = o.bucket ?? model.config.contextLength ?? DEFAULT_BUCKET;
	const live = process.stderr.isTTY && !o.json;
	let nothingScored = 0;
	for (const src of sources) {
		const events = scoreStream(model, src.name, src.size, src.open(), {
			curve: o.curve, bucket, window: o.window, backend: kernels.name, model: model.checkpoint.name,
		});
		const result = live ? await showLive(events) : await lastResult(events);
		if (result.scored === 0) {
			process.stderr.write(`mambabyte: ${src.name}: ${result.bytes} byte${result.bytes === 1 ? '' : 's'}, nothing to score (the first byte is only context)\n`);
			nothingScored++;
			continue;
		}
		process.stdout.write((o.json ? JSON.stringify(result) : formatResult(result) + curveLines(result)) + '\n');
	}
	if (nothingScored > 0) process.exitCode = 1;
}

async function lastResult(events: AsyncGenerator<PerplexityEvent, PerplexityResult>): Promise<PerplexityResult> {
	for (;;) {
		const n = await events.next();
		if (n.done) return n.value;
	}
}

/** A one-line progress display on stderr (the Ink view replaces this when present). */
async function showLive(events: AsyncGenerator<PerplexityEvent, PerplexityResult>): Promise<PerplexityResult> {
	for (;;) {
		const n = await events.next();
		if (n.done) {
			process.stderr.write('\r\x1b[K');
			return n.value;
		}
		const e = n.value;
		if (e.type === 'progress') {
			const pct = e.total ? ` ${((100 * e.done) / e.total).toFixed(1)}%` : '';
			process.stderr.write(`\r\x1b[K${e.file}${pct}  ${e.done} bytes  ${e.bitsPerByte.toFixed(4)} bits/byte  ${e.bytesPerSecond.toFixed(0)} bytes/s`);
		}
	}
}

const curveLines = (r: PerplexityResult): string =>
	(r.curve ?? []).map((c) => `\n  bytes ${c.start}-${c.end}  ${c.bits_per_byte.toFixed(4)} bits/byte`).join('');
