// File access shared by the weight readers: positioned reads that never hold a whole file, and fs errors turned
// into one-line UserErrors.
import * as fs from 'node:fs';
import { UserError } from '../errors.js';
import { fileError } from '../util/read-bounded.js';
import { bf16ToF32, f16ToF32, isFloatDType, type FloatDType, ITEM_SIZE } from '../tensor/dtypes.js';

/** One tensor as a weights file declares it (before any data is read). */
export interface TensorEntry {
	dtype: string; // safetensors spelling: F32, F16, BF16, I64, ...
	shape: number[];
}

/** A weights file opened for tensor-by-tensor reading. */
export interface TensorSource {
	readonly path: string;
	readonly entries: ReadonlyMap<string, TensorEntry>;
	/** A new float32 copy of one tensor; UserError for an unsupported dtype or a short file. */
	read(name: string): Float32Array;
	close(): void;
}

export function fsError(path: string, err: unknown): UserError {
	return fileError(path, err); // errno in words; never the raw message (it can carry paths or data)
}

export function openForRead(path: string): { fd: number; size: number } {
	let fd: number;
	try {
		fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK); // a FIFO must not block open()
	} catch (err) {
		throw fsError(path, err);
	}
	try {
		const st = fs.fstatSync(fd);
		if (!st.isFile()) throw new UserError(`${path}: not a regular file`);
		return { fd, size: st.size };
	} catch (err) {
		fs.closeSync(fd);
		throw err instanceof UserError ? err : fsError(path, err);
	}
}

const CHUNK = 1 << 30; // readSync takes at most 2 GiB per call

/** Fill `target` from `position`; a short read means the file is shorter than its own header says. */
export function readAt(fd: number, path: string, target: Uint8Array, position: number, what: string): void {
	let done = 0;
	while (done < target.byteLength) {
		let n: number;
		try {
			n = fs.readSync(fd, target, done, Math.min(CHUNK, target.byteLength - done), position + done);
		} catch (err) {
			throw fsError(path, err);
		}
		if (n === 0) throw new UserError(`${path}: file is truncated (ends inside ${what})`);
		done += n;
	}
}

/** Read `count` elements of a float dtype at `position` straight into a new Float32Array (one buffer for F32). */
export function readFloatsAt(fd: number, path: string, position: number, count: number, dtype: string, what: string): Float32Array {
	if (!isFloatDType(dtype)) {
		throw new UserError(`${path}: ${what} has dtype ${dtype} (expected F32, F16 or BF16)`);
	}
	const out = new Float32Array(count);
	if (dtype === 'F32') {
		readAt(fd, path, new Uint8Array(out.buffer), position, what);
		return out;
	}
	const half = new Uint16Array(count);
	readAt(fd, path, new Uint8Array(half.buffer), position, what);
	convertHalf(half, out, dtype);
	return out;
}

function convertHalf(src: Uint16Array, dst: Float32Array, dtype: Exclude<FloatDType, 'F32'>): void {
	if (dtype === 'F16') f16ToF32(src, dst);
	else bf16ToF32(src, dst);
}

export function itemSize(dtype: string): number | undefined {
	return Object.prototype.hasOwnProperty.call(ITEM_SIZE, dtype) ? ITEM_SIZE[dtype] : undefined;
}

export function product(shape: readonly number[]): number {
	let n = 1;
	for (const s of shape) n *= s;
	return n;
}

export function fmtShape(shape: readonly number[]): string {
	return `[${shape.join(', ')}]`;
}

/** A name read from a file, made safe for a one-line message (control characters escaped, length capped). */
export function show(name: string): string {
	const s = /[\x00-\x1f\x7f]/.test(name) ? JSON.stringify(name) : name;
	return s.length > 120 ? `${s.slice(0, 120)}…` : s;
}
