// `mambabyte perplexity FILE...`: score each file (or stdin for '-') and print bits per byte and word perplexity.
// Plain lines on stdout (or one JSON object per file with --json); the Ink progress view on stderr when it is a TTY.
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
	const empty: PerplexityResult[] = [];
	const results: PerplexityResult[] = [];
	// Every file's events in order; files with nothing to score are set aside instead of shown as NaN.
	async function* events(): AsyncGenerator<PerplexityEvent> {
		for (const src of sources) {
			const scoring = scoreStream(model, src.name, src.size, src.open(), {
				curve: o.curve, bucket, window: o.window, backend: kernels.name, model: model.checkpoint.name,
			});
			for await (const e of scoring) {
				if (e.type === 'result' && e.result.scored === 0) empty.push(e.result);
				else yield e;
				if (e.type === 'result' && e.result.scored > 0) results.push(e.result);
			}
		}
	}
	// A live view on stderr when it is a terminal; stdout gets the plain lines unless it is that terminal too.
	const live = Boolean(process.stderr.isTTY) && !o.json;
	if (live) {
		const { renderPerplexity } = await import('../ui/perplexity.js');
		await renderPerplexity(events(), { curve: o.curve });
		if (!process.stdout.isTTY) for (const r of results) process.stdout.write(formatResult(r) + curveLines(r) + '\n');
	} else {
		for await (const e of events()) {
			if (e.type === 'result') process.stdout.write((o.json ? JSON.stringify(e.result) : formatResult(e.result) + curveLines(e.result)) + '\n');
		}
	}
	for (const r of empty) {
		process.stderr.write(`mambabyte: ${r.file}: ${r.bytes} byte${r.bytes === 1 ? '' : 's'}, nothing to score (the first byte is only context)\n`);
	}
	if (empty.length > 0) process.exitCode = 1;
}

const curveLines = (r: PerplexityResult): string =>
	(r.curve ?? []).map((c) => `\n  bytes ${c.start}-${c.end}  ${c.bits_per_byte.toFixed(4)} bits/byte`).join('');
