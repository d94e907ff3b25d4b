// `mambabyte perplexity FILE...`: score each file (or stdin for '-') and print bits per byte and word perplexity.
// Plain lines on stdout (or one JSON object per file with --json), each as soon as its file is scored; the Ink
// progress view on stderr when it is a TTY.
// A reader that leaves (`| head -c 20`) ends the run quietly: noticed within about half a second while scoring
// (reader-gone.ts, Linux pipes), else at the next write (main.ts exits on EPIPE) — which is why the start of each
// file's line (its name, known before scoring) is written when the file starts. Ctrl-C prints the part of the current file scored so far, then exits 130.
// A file that does not look like text gets a one-line note on stderr (it is scored all the same).
// --limit N scores the first N bytes of each input (the rest is not read); --noise TYPE:P scores a noised copy of
// the bytes read (app/score.ts, engine/noise.ts); the line and the JSON object say which.
import { createReadStream, statSync } from 'node:fs';
import { UserError } from '../errors.js';
import { openModel } from '../app/open.js';
import { firstBytes, inputFields, inputNote, scoreSource } from '../app/score.js';
import type { PerplexityEvent, PerplexityResult } from '../engine/events.js';
import type { PerplexityOptions } from './options.js';
import { readerGone } from './reader-gone.js';

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
	`${r.bytes} bytes  ${r.bytes_per_second.toFixed(1)} bytes/s${noteOf(r)}`;

const noteOf = (r: Parameters<typeof inputNote>[0]) => (inputNote(r) ? `  (${inputNote(r)})` : '');

/** The share of non-text bytes in `head`: control bytes other than whitespace/ESC, and bytes of invalid UTF-8. */
export function nonTextShare(head: Uint8Array): number {
	if (head.length === 0) return 0;
	const text = new TextDecoder().decode(head);
	let bad = 0;
	for (const ch of text) {
		const c = ch.codePointAt(0)!;
		if (c === 0xfffd) bad += 1; // one per invalid byte (or truncated sequence)
		else if ((c < 0x20 && !'\t\n\r\f\v\x1b\b'.includes(ch)) || c === 0x7f) bad++;
	}
	return bad / head.length;
}

export const BINARY_HINT_BYTES = 64 * 1024;
export const BINARY_HINT_SHARE = 0.3;

/** Passes `source` through, and calls `hint` once if the first 64 KB look binary. */
async function* watchBinary(source: AsyncIterable<Uint8Array>, hint: (share: number) => void): AsyncGenerator<Uint8Array> {
	const head = new Uint8Array(BINARY_HINT_BYTES);
	let filled = 0;
	let checked = false;
	const check = () => {
		checked = true;
		const share = nonTextShare(head.subarray(0, filled));
		if (share > BINARY_HINT_SHARE) hint(share);
	};
	for await (const chunk of source) {
		if (!checked) {
			const n = Math.min(chunk.length, BINARY_HINT_BYTES - filled);
			head.set(chunk.subarray(0, n), filled);
			filled += n;
			if (filled === BINARY_HINT_BYTES) check();
		}
		yield chunk;
	}
	if (!checked) check();
}

/** The live view of scoring on a terminal (ui/perplexity.tsx; main.ts passes it in, so cli/ does not import ui/). */
export type PerplexityView = (events: AsyncIterable<PerplexityEvent>, o: { curve: boolean }) => Promise<unknown>;

export async function runPerplexity(files: string[], o: PerplexityOptions, view?: PerplexityView): Promise<void> {
	const sources = files.map(sourceOf); // every path checked before the model loads
	if (files.filter((f) => f === '-').length > 1) throw new UserError("'-' (stdin) can be given only once");
	const { model, kernels, notes } = await openModel(o.model, o.backend);
	if (o.verbose) for (const n of [...notes, `backend ${kernels.name} chosen`]) process.stderr.write(`mambabyte: ${n}\n`);
	const empty: PerplexityResult[] = [];
	const hints: string[] = [];
	// A live view on stderr when it is a terminal; stdout gets the lines unless it is that terminal too.
	const live = view !== undefined && Boolean(process.stderr.isTTY) && !o.json;
	const lines = !live || !process.stdout.isTTY;
	const line = (r: PerplexityResult) => (o.json ? JSON.stringify(r) : formatResult(r) + curveLines(r)) + '\n';
	let current: { file: string; done: number; bitsPerByte: number } | null = null;
	let started = ''; // the part of the current file's line already written
	const onSigint = () => {
		if (current && current.done > 1) {
			const partial = {
				file: current.file, bytes: current.done, scored: current.done - 1, bits_per_byte: current.bitsPerByte, partial: true,
				backend: kernels.name, model: model.checkpoint.name, ...inputFields(o.limit, o.noise, o.noiseSeed, null),
			};
			const text = o.json ? JSON.stringify(partial) : `${current.file}  ${current.bitsPerByte.toFixed(4)} bits/byte  (interrupted: the first ${current.done} bytes)${noteOf(partial)}`;
			process.stdout.write(text.startsWith(started) ? text.slice(started.length) + '\n' : '\n' + text + '\n');
		} else if (started) process.stdout.write('\n');
		process.exit(130);
	};
	process.once('SIGINT', onSigint);
	const gone = lines ? readerGone() : () => false;
	// Every file's events in order; files with nothing to score are set aside instead of shown as NaN.
	async function* events(): AsyncGenerator<PerplexityEvent> {
		for (const src of sources) {
			current = { file: src.name, done: 0, bitsPerByte: NaN };
			// The start of the line, when the file surely has something to score (a closed pipe shows here); noise
			// may leave nothing (drop), so with noise the line is written whole at the end, as for stdin.
			const size = src.size === null || o.limit === null ? src.size : Math.min(src.size, o.limit);
			if (lines && size !== null && size > 1 && o.noise.length === 0) {
				started = o.json ? `{"file":${JSON.stringify(src.name)},` : `${src.name}  `;
				process.stdout.write(started);
			}
			// --limit before the binary check, so the note speaks of the bytes scored; scoreSource cuts at the same place.
			const source = watchBinary(firstBytes(src.open(), o.limit), (share) => hints.push(`${src.name}: looks binary (${(100 * share).toFixed(0)}% of the first 64 KB is not text); scored as bytes all the same`));
			const scoring = scoreSource(model, src.name, src.size, source, o);
			for await (const e of scoring) {
				if (e.type === 'progress') {
					current = { file: src.name, done: e.done, bitsPerByte: e.bitsPerByte };
					if (gone()) process.exit(0); // like EPIPE: the reader left, stop quietly
					await new Promise((resolve) => setImmediate(resolve)); // let a Ctrl-C in (signals are macrotasks)
				}
				if (e.type === 'result') {
					current = null;
					if (e.result.scored === 0) empty.push(e.result);
					else if (lines) process.stdout.write(line(e.result).slice(started.length));
					started = '';
				}
				if (!(e.type === 'result' && e.result.scored === 0)) yield e;
				while (hints.length > 0 && !live) process.stderr.write(`mambabyte: ${hints.shift()}\n`);
			}
		}
	}
	try {
		if (live && view) {
			await view(events(), { curve: o.curve });
		} else {
			for await (const _ of events());
		}
	} finally {
		process.removeListener('SIGINT', onSigint);
	}
	for (const h of hints) process.stderr.write(`mambabyte: ${h}\n`);
	for (const r of empty) {
		const after = r.noise ? ` after noise (${r.input_bytes} read)` : '';
		process.stderr.write(`mambabyte: ${r.file}: ${r.bytes} byte${r.bytes === 1 ? '' : 's'}${after}, nothing to score (the first byte is only context)\n`);
	}
	if (empty.length > 0) process.exitCode = 1;
}

const curveLines = (r: PerplexityResult): string =>
	(r.curve ?? []).map((c) => `\n  bytes ${c.start}-${c.end}  ${c.bits_per_byte.toFixed(4)} bits/byte`).join('');
