// Writing a GGUF v3 file: header, metadata, tensor infos, then each tensor's bytes at a multiple of the alignment
// (32), as gguf-py and llama-quantize write them. Atomic: a temporary file in the target folder, fsync, rename, so
// an interrupted write never leaves a half-written model under the final name.
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { UserError } from '../errors.js';
import { GGUF_MAGIC, GT } from './gguf.js';
import { fsError } from './io.js';

export interface GgufKVToWrite {
	key: string;
	type: GT;
	elemType?: GT; // for arrays
	value: number | bigint | boolean | string | (number | string)[];
}
export interface GgufTensorToWrite {
	name: string;
	dims: number[]; // innermost first
	typeId: number;
	data: Uint8Array;
}

const ALIGN = 32;

class Bytes {
	private parts: Buffer[] = [];
	length = 0;
	push(b: Buffer): void {
		this.parts.push(b);
		this.length += b.length;
	}
	u32(v: number): void {
		const b = Buffer.alloc(4);
		b.writeUInt32LE(v);
		this.push(b);
	}
	u64(v: number | bigint): void {
		const b = Buffer.alloc(8);
		b.writeBigUInt64LE(BigInt(v));
		this.push(b);
	}
	str(s: string): void {
		const b = Buffer.from(s, 'utf8');
		this.u64(b.length);
		this.push(b);
	}
	scalar(type: GT, v: number | bigint | boolean | string): void {
		const b = Buffer.alloc(8);
		switch (type) {
			case GT.U8: case GT.BOOL: b.writeUInt8(Number(v)); return this.push(b.subarray(0, 1));
			case GT.I8: b.writeInt8(Number(v)); return this.push(b.subarray(0, 1));
			case GT.U16: b.writeUInt16LE(Number(v)); return this.push(b.subarray(0, 2));
			case GT.I16: b.writeInt16LE(Number(v)); return this.push(b.subarray(0, 2));
			case GT.U32: return this.u32(Number(v));
			case GT.I32: b.writeInt32LE(Number(v)); return this.push(b.subarray(0, 4));
			case GT.F32: b.writeFloatLE(Number(v)); return this.push(b.subarray(0, 4));
			case GT.U64: return this.u64(v as number | bigint);
			case GT.I64: b.writeBigInt64LE(BigInt(v as number)); return this.push(b);
			case GT.F64: b.writeDoubleLE(Number(v)); return this.push(b);
			case GT.STRING: return this.str(String(v));
			default: throw new Error(`gguf write: value type ${type} is not a scalar`);
		}
	}
	concat(): Buffer {
		return Buffer.concat(this.parts);
	}
}

/** The header bytes (through the padding before the data) for these tensors; offsets as writeGguf lays them out. */
export function ggufHeader(metadata: GgufKVToWrite[], tensors: GgufTensorToWrite[]): Buffer {
	const h = new Bytes();
	h.u32(GGUF_MAGIC);
	h.u32(3);
	h.u64(tensors.length);
	h.u64(metadata.length);
	for (const kv of metadata) {
		h.str(kv.key);
		h.u32(kv.type);
		if (kv.type === GT.ARRAY) {
			const arr = kv.value as (number | string)[];
			h.u32(kv.elemType as GT);
			h.u64(arr.length);
			for (const v of arr) h.scalar(kv.elemType as GT, v);
		} else h.scalar(kv.type, kv.value as number);
	}
	let offset = 0;
	for (const t of tensors) {
		h.str(t.name);
		h.u32(t.dims.length);
		for (const d of t.dims) h.u64(d);
		h.u32(t.typeId);
		h.u64(offset);
		offset += Math.ceil(t.data.byteLength / ALIGN) * ALIGN;
	}
	h.push(Buffer.alloc((ALIGN - (h.length % ALIGN)) % ALIGN));
	return h.concat();
}

export function writeGguf(path: string, metadata: GgufKVToWrite[], tensors: GgufTensorToWrite[]): void {
	const head = ggufHeader(metadata, tensors);
	const tmp = nodePath.join(nodePath.dirname(path), `.${nodePath.basename(path)}.${process.pid}.tmp`);
	let fd: number;
	try {
		fd = fs.openSync(tmp, 'w');
	} catch (err) {
		throw fsError(path, err);
	}
	try {
		writeAll(fd, tmp, head);
		const pad = Buffer.alloc(ALIGN);
		for (const t of tensors) {
			writeAll(fd, tmp, t.data);
			const p = (ALIGN - (t.data.byteLength % ALIGN)) % ALIGN;
			if (p) writeAll(fd, tmp, pad.subarray(0, p));
		}
		fs.fsyncSync(fd);
		fs.closeSync(fd);
		fs.renameSync(tmp, path);
	} catch (err) {
		try {
			fs.closeSync(fd);
		} catch {
			// already closed
		}
		fs.rmSync(tmp, { force: true });
		throw err instanceof UserError ? err : fsError(path, err);
	}
}

function writeAll(fd: number, path: string, bytes: Uint8Array): void {
	let done = 0;
	while (done < bytes.byteLength) {
		try {
			done += fs.writeSync(fd, bytes, done, Math.min(1 << 30, bytes.byteLength - done));
		} catch (err) {
			throw fsError(path, err);
		}
	}
}
