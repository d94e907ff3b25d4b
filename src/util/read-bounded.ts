// The one way small files (config.json, tokenizer.json, tokenizer_config.json, chat saves) are read: regular files
// only, checked with fstat on the descriptor that was opened (no race between a check and the open), opened with
// O_NONBLOCK so a FIFO cannot block open(), never more than a per-kind cap, and every failure one line that names
// the file and the errno — never the file's contents (a symlink may point at a secret).
import * as fs from 'node:fs';
import { UserError } from '../errors.js';

/** Caps per kind of file: far above any real one, far below what would hurt. */
export const READ_CAPS = {
	config: 1_000_000, // config.json, tokenizer_config.json: a few KB
	tokenizer: 64_000_000, // tokenizer.json: ~2 MB for a 50k BPE vocabulary
	chatSave: 1_000_000_000, // header + recurrent state of the largest allowed model
	stdin: 64_000_000, // a prompt for `complete`
} as const;

/** Why an fs call failed, in words, from its errno code (never its message, which may carry paths or data). */
export function errnoWords(err: unknown): string {
	const code = (err as NodeJS.ErrnoException)?.code;
	switch (code) {
		case 'ENOENT': return 'file not found';
		case 'EISDIR': return 'is a directory, expected a file';
		case 'ENOTDIR': return 'a component of the path is not a directory';
		case 'EACCES':
		case 'EPERM': return 'permission denied';
		case 'EIO': return 'I/O error while reading (EIO)';
		case 'ELOOP': return 'too many levels of symbolic links';
		case 'ENAMETOOLONG': return 'path too long';
		case 'EMFILE':
		case 'ENFILE': return 'too many open files';
		case 'ENXIO': return 'no such device (ENXIO)';
		case 'EROFS': return 'read-only file system (EROFS)';
		case 'ENOSPC': return 'no space left on device (ENOSPC)';
		case 'EDQUOT': return 'disk quota exceeded (EDQUOT)';
		case 'EEXIST': return 'already exists';
		case 'EXDEV': return 'cross-device rename (EXDEV)';
		case 'ENOMEM': return 'out of memory (ENOMEM)';
		case 'EAGAIN': return 'would block (EAGAIN)';
		default: return code ? `cannot access (${code})` : 'cannot access';
	}
}

/** A one-line UserError for an fs failure on `path`. */
export function fileError(path: string, err: unknown): UserError {
	if (err instanceof UserError) return err;
	return new UserError(`${path}: ${errnoWords(err)}`);
}

function kindOf(st: fs.Stats): string {
	if (st.isDirectory()) return 'a directory';
	if (st.isFIFO()) return 'a FIFO (named pipe)';
	if (st.isCharacterDevice()) return 'a character device';
	if (st.isBlockDevice()) return 'a block device';
	if (st.isSocket()) return 'a socket';
	return 'not a regular file';
}

/**
 * The bytes of a small regular file, at most `maxBytes`. `what` names the kind in messages ("config.json").
 * Refuses directories, FIFOs, devices and sockets before reading a byte, and a file over the cap (checked both
 * from fstat and while reading, so a file that grows meanwhile is still bounded).
 */
export function readBoundedFile(path: string, what: string, maxBytes: number): Buffer {
	let fd: number;
	try {
		fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
	} catch (err) {
		throw fileError(path, err);
	}
	try {
		const st = fs.fstatSync(fd);
		if (!st.isFile()) throw new UserError(`${path}: ${kindOf(st)}, expected a regular file (${what})`);
		if (st.size > maxBytes) throw tooBig(path, what, maxBytes);
		// One byte more than the cap is requested, so growth after fstat is caught rather than read without end.
		const buf = Buffer.allocUnsafe(Math.min(maxBytes, st.size) + 1);
		let got = 0;
		for (;;) {
			const n = fs.readSync(fd, buf, got, buf.length - got, got);
			if (n === 0) break;
			got += n;
			if (got > maxBytes) throw tooBig(path, what, maxBytes);
			if (got === buf.length) break; // grew past fstat's size but within the cap: what fstat promised is read
		}
		return buf.subarray(0, Math.min(got, st.size));
	} catch (err) {
		throw fileError(path, err);
	} finally {
		fs.closeSync(fd);
	}
}

function tooBig(path: string, what: string, maxBytes: number): UserError {
	return new UserError(`${path}: over ${formatCap(maxBytes)}, too big for ${what}`);
}

function formatCap(n: number): string {
	return n >= 1e9 ? `${n / 1e9} GB` : n >= 1e6 ? `${n / 1e6} MB` : n >= 1e3 ? `${n / 1e3} KB` : `${n} bytes`;
}

/** A small UTF-8 text file (BOM-less); invalid UTF-8 is an error, not silently replaced. */
function readBoundedText(path: string, what: string, maxBytes: number): string {
	const buf = readBoundedFile(path, what, maxBytes);
	try {
		return new TextDecoder('utf-8', { fatal: true }).decode(buf);
	} catch {
		throw new UserError(`${path}: not UTF-8 text (${what})`);
	}
}

/**
 * A small JSON file parsed. The message on bad JSON gives at most the byte position, never a quote of the text
 * (V8's own message quotes it). Objects come back as JSON.parse builds them: callers copy known fields only.
 */
export function readBoundedJson(path: string, what: string, maxBytes: number): unknown {
	return parseJsonQuietly(readBoundedText(path, what, maxBytes), path);
}

/** JSON.parse with a one-line error, "WHERE: not valid JSON …", that never quotes the input. */
export function parseJsonQuietly(text: string, where: string): unknown {
	try {
		return JSON.parse(text);
	} catch (err) {
		if (err instanceof RangeError) throw new UserError(`${where}: JSON nested too deeply to parse`);
		const at = /position (\d+)/.exec(err instanceof Error ? err.message : '');
		throw new UserError(`${where}: not valid JSON${at ? ` (error at character ${at[1]})` : ''}`);
	}
}

/** All of a stream, refusing more than `maxBytes` as soon as it arrives (the rest is not read). */
export async function readStreamBounded(stream: AsyncIterable<unknown>, what: string, maxBytes: number): Promise<Uint8Array> {
	const chunks: Buffer[] = [];
	let total = 0;
	for await (const chunk of stream) {
		const b = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
		total += b.length;
		if (total > maxBytes) throw new UserError(`${what}: over ${formatCap(maxBytes)} (pass a shorter prompt)`);
		chunks.push(b);
	}
	return new Uint8Array(Buffer.concat(chunks, total));
}
