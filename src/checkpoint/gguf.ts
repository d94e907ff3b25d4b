// GGUF (llama.cpp's model file), versions 2 and 3: [magic "GGUF"][u32 version][u64 tensor count][u64 metadata count]
// [metadata key/value pairs][tensor infos: name, dims (innermost first), ggml type, offset][padding][tensor data].
// The header is read through a small positioned-read window; every length, count, offset, type and shape is checked
// against the file size before anything is allocated for it. Tensor data is read one tensor at a time.
import * as fs from 'node:fs';
import { UserError } from '../errors.js';
import { QTYPE_LAYOUT, type QType } from '../tensor/qmatrix.js';
import { openForRead, readAt, show } from './io.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const MAX_DIMS = 4; // GGML_MAX_DIMS
const MAX_STRING = 1 << 24; // no key or value of a real model file comes near 16 MiB
const MAX_NESTING = 4; // arrays of arrays: allowed by the format, never used deeply
const MAX_STRINGS = 1 << 24; // vocabularies have up to ~10^6 tokens
const MAX_KEPT = 1 << 20; // numeric array elements held in memory (a tokenizer's scores have ~10^5)

/** ggml type ids (ggml.h enum ggml_type): the ones we load, and names for the rest so errors can name them. */
const GGML_TYPES: Record<number, string> = {
	0: 'F32', 1: 'F16', 2: 'Q4_0', 3: 'Q4_1', 6: 'Q5_0', 7: 'Q5_1', 8: 'Q8_0', 9: 'Q8_1', 10: 'Q2_K', 11: 'Q3_K',
	12: 'Q4_K', 13: 'Q5_K', 14: 'Q6_K', 15: 'Q8_K', 16: 'IQ2_XXS', 17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S',
	20: 'IQ4_NL', 21: 'IQ3_S', 22: 'IQ2_S', 23: 'IQ4_XS', 24: 'I8', 25: 'I16', 26: 'I32', 27: 'I64', 28: 'F64',
	29: 'IQ1_M', 30: 'BF16', 34: 'TQ1_0', 35: 'TQ2_0',
};
const SUPPORTED: Record<number, QType> = {
	0: 'f32', 1: 'f16', 30: 'bf16', 8: 'q8_0', 2: 'q4_0', 3: 'q4_1', 6: 'q5_0', 7: 'q5_1', 12: 'q4_k', 13: 'q5_k', 14: 'q6_k',
};
export const GGML_TYPE_ID: Record<QType, number> = Object.fromEntries(Object.entries(SUPPORTED).map(([id, q]) => [q, Number(id)])) as Record<QType, number>;
export const typeName = (id: number): string => GGML_TYPES[id] ?? `type ${id}`;

/** Metadata value types (gguf.h enum gguf_type). */
export const enum GT { U8 = 0, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 }
const SCALAR_SIZE: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

type GgufValue = number | bigint | boolean | string | GgufValue[];
/** count: an array's length (its value is left empty for numeric arrays over MAX_KEPT elements). */
export interface GgufKV { type: GT; value: GgufValue; elemType?: GT; count?: number }

export interface GgufTensor {
	name: string;
	typeId: number;
	qtype?: QType; // undefined for types we cannot read (named in errors)
	dims: number[]; // GGUF order: dims[0] is the innermost (contiguous) one
	offset: number; // absolute file offset of the data
	bytes: number;
}

export interface GgufFile {
	readonly path: string;
	readonly size: number;
	readonly version: number;
	readonly alignment: number;
	readonly metadata: ReadonlyMap<string, GgufKV>;
	readonly tensors: ReadonlyMap<string, GgufTensor>;
	/** The raw bytes of a tensor (its stored blocks). */
	readBytes(t: GgufTensor): Uint8Array;
	close(): void;
}

/** Window over the file for the header: refills with positioned reads; reading past the end is a UserError. */
class Cursor {
	private buf = new Uint8Array(1 << 16);
	private start = 0; // file offset of buf[0]
	private len = 0;
	pos = 0;
	constructor(private readonly fd: number, readonly path: string, readonly size: number) {}

	remaining(): number {
		return this.size - this.pos;
	}
	private need(n: number, what: string): number {
		if (n > this.remaining()) throw new UserError(`${this.path}: file is truncated (ends inside ${what} at offset ${this.pos})`);
		if (this.pos < this.start || this.pos + n > this.start + this.len) {
			if (n > this.buf.length) this.buf = new Uint8Array(n);
			this.start = this.pos;
			this.len = Math.min(this.buf.length, this.size - this.pos);
			readAt(this.fd, this.path, this.buf.subarray(0, this.len), this.start, what);
		}
		const at = this.pos - this.start;
		this.pos += n;
		return at;
	}
	skip(n: number, what: string): void {
		if (n > this.remaining()) throw new UserError(`${this.path}: file is truncated (ends inside ${what} at offset ${this.pos})`);
		this.pos += n;
	}
	bytes(n: number, what: string): Uint8Array {
		const at = this.need(n, what);
		return this.buf.slice(at, at + n);
	}
	u32(what: string): number {
		const at = this.need(4, what);
		const b = this.buf;
		return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
	}
	u64(what: string): bigint {
		const at = this.need(8, what);
		return new DataView(this.buf.buffer, at, 8).getBigUint64(0, true);
	}
	scalar(type: GT, what: string): number | bigint | boolean {
		const at = this.need(SCALAR_SIZE[type], what);
		const dv = new DataView(this.buf.buffer, at, SCALAR_SIZE[type]);
		switch (type) {
			case GT.U8: return dv.getUint8(0);
			case GT.I8: return dv.getInt8(0);
			case GT.U16: return dv.getUint16(0, true);
			case GT.I16: return dv.getInt16(0, true);
			case GT.U32: return dv.getUint32(0, true);
			case GT.I32: return dv.getInt32(0, true);
			case GT.F32: return dv.getFloat32(0, true);
			case GT.BOOL: {
				const v = dv.getUint8(0);
				if (v > 1) throw new UserError(`${this.path}: ${what} is a bool holding ${v} (expected 0 or 1)`);
				return v === 1;
			}
			case GT.U64: return dv.getBigUint64(0, true);
			case GT.I64: return dv.getBigInt64(0, true);
			default: return dv.getFloat64(0, true); // GT.F64
		}
	}
	/** A count or length: a u64 that must fit in what is left of the file at `minBytes` bytes per item. */
	count(minBytes: number, what: string): number {
		const n = this.u64(what);
		const fits = BigInt(Math.floor(this.remaining() / Math.max(1, minBytes)));
		if (n > fits) throw new UserError(`${this.path}: ${what} is ${n}, more than the ${this.remaining()} bytes left in the file can hold (corrupt or truncated)`);
		return Number(n);
	}
	string(what: string): string {
		const n = this.count(1, `the length of ${what}`);
		if (n > MAX_STRING) throw new UserError(`${this.path}: ${what} is ${n} bytes long (absurd; at most ${MAX_STRING})`);
		const raw = this.bytes(n, what);
		try {
			return new TextDecoder('utf-8', { fatal: true }).decode(raw);
		} catch {
			throw new UserError(`${this.path}: ${what} is not valid UTF-8`);
		}
	}
}

function readValue(c: Cursor, type: number, what: string, depth: number): GgufKV {
	if (type === GT.STRING) return { type, value: c.string(what) };
	if (type === GT.ARRAY) {
		if (depth >= MAX_NESTING) throw new UserError(`${c.path}: ${what} nests arrays ${depth + 1} deep (at most ${MAX_NESTING})`);
		const elemType = c.u32(`the element type of ${what}`);
		if (!(elemType in SCALAR_SIZE) && elemType !== GT.STRING && elemType !== GT.ARRAY) {
			throw new UserError(`${c.path}: ${what} is an array of unknown value type ${elemType} (expected 0..12)`);
		}
		// Smallest encoding of one element: a scalar's size, 8 bytes of string length, 12 bytes of an array header.
		const min = elemType === GT.STRING ? 8 : elemType === GT.ARRAY ? 12 : SCALAR_SIZE[elemType];
		const n = c.count(min, `the element count of ${what}`);
		if (n > MAX_STRINGS && (elemType === GT.STRING || elemType === GT.ARRAY)) {
			throw new UserError(`${c.path}: ${what} has ${n} elements (absurd for a list of strings or arrays; at most ${MAX_STRINGS})`);
		}
		if (n > MAX_KEPT && elemType !== GT.STRING && elemType !== GT.ARRAY) {
			// A long numeric array (no mamba key has one): checked to fit, stepped over, not held as JS numbers.
			c.skip(n * min, what);
			return { type, value: [], elemType, count: n };
		}
		const value: GgufValue[] = new Array(n);
		for (let i = 0; i < n; i++) value[i] = readValue(c, elemType, `${what}[${i}]`, depth + 1).value;
		return { type, value, elemType, count: n };
	}
	if (!(type in SCALAR_SIZE)) throw new UserError(`${c.path}: ${what} has unknown value type ${type} (expected 0..12)`);
	return { type, value: c.scalar(type, what) };
}

export function openGguf(path: string): GgufFile {
	const { fd, size } = openForRead(path);
	try {
		const header = parse(new Cursor(fd, path, size), path, size);
		let open = true;
		return {
			...header,
			path,
			size,
			readBytes(t: GgufTensor): Uint8Array {
				if (!open) throw new Error(`${path}: read after close`);
				const out = new Uint8Array(t.bytes);
				readAt(fd, path, out, t.offset, `tensor ${show(t.name)}`);
				return out;
			},
			close(): void {
				if (open) fs.closeSync(fd);
				open = false;
			},
		};
	} catch (err) {
		fs.closeSync(fd);
		throw err;
	}
}

function parse(c: Cursor, path: string, size: number) {
	if (size < 24) throw new UserError(`${path}: not a GGUF file (only ${size} bytes; a GGUF header is at least 24)`);
	const magic = c.u32('the magic');
	if (magic !== GGUF_MAGIC) throw new UserError(`${path}: not a GGUF file (does not start with "GGUF")`);
	const version = c.u32('the version');
	if (version !== 2 && version !== 3) throw new UserError(`${path}: GGUF version ${version} is not supported (expected 2 or 3)`);
	// A tensor info is at least 8 (name length) + 4 (n_dims) + 8 (one dim) + 4 (type) + 8 (offset) bytes; a
	// metadata pair at least 8 (key length) + 4 (type) + 1 (a u8 value).
	const nTensors = c.count(32, 'the tensor count');
	const nKV = c.count(13, 'the metadata count');
	const metadata = new Map<string, GgufKV>();
	for (let i = 0; i < nKV; i++) {
		const key = c.string(`metadata key ${i}`);
		if (metadata.has(key)) throw new UserError(`${path}: metadata key ${show(key)} appears twice`);
		const type = c.u32(`the value type of ${show(key)}`);
		metadata.set(key, readValue(c, type, `metadata ${show(key)}`, 0));
	}
	let alignment = 32;
	const al = metadata.get('general.alignment');
	if (al) {
		if (al.type !== GT.U32) throw new UserError(`${path}: metadata general.alignment must be a u32`);
		alignment = al.value as number;
		if (alignment === 0 || (alignment & (alignment - 1)) !== 0 || alignment > 1 << 20) {
			throw new UserError(`${path}: general.alignment is ${alignment} (expected a power of two, at most 1 MiB)`);
		}
	}
	const infos: Omit<GgufTensor, 'offset'>[] = [];
	const rel: bigint[] = [];
	const names = new Set<string>();
	for (let i = 0; i < nTensors; i++) {
		const name = c.string(`the name of tensor ${i}`);
		const where = `tensor ${show(name)}`;
		if (names.has(name)) throw new UserError(`${path}: ${where} appears twice`);
		names.add(name);
		const nDims = c.u32(`the dimension count of ${where}`);
		if (nDims < 1 || nDims > MAX_DIMS) throw new UserError(`${path}: ${where} has ${nDims} dimensions (expected 1..${MAX_DIMS})`);
		const dims: number[] = [];
		let elements = 1n;
		for (let d = 0; d < nDims; d++) {
			const v = c.u64(`the shape of ${where}`);
			if (v < 1n) throw new UserError(`${path}: ${where} has a dimension of 0`);
			elements *= v;
			if (elements > BigInt(size)) throw new UserError(`${path}: ${where} has shape [${[...dims, v].join(', ')}${d + 1 < nDims ? ', …' : ''}], more elements than the file has bytes`);
			dims.push(Number(v));
		}
		const typeId = c.u32(`the type of ${where}`);
		const qtype = SUPPORTED[typeId];
		let bytes = 0;
		if (qtype) {
			const { blockSize, blockBytes } = QTYPE_LAYOUT[qtype];
			if (dims[0] % blockSize !== 0) throw new UserError(`${path}: ${where} is ${typeName(typeId)} with ${dims[0]} columns, not a multiple of its block size ${blockSize}`);
			bytes = (Number(elements) / blockSize) * blockBytes;
		} else if (!(typeId in GGML_TYPES)) {
			throw new UserError(`${path}: ${where} has unknown ggml type ${typeId}`);
		}
		const offset = c.u64(`the data offset of ${where}`);
		if (offset % BigInt(alignment) !== 0n) throw new UserError(`${path}: ${where} has data offset ${offset}, not a multiple of the alignment ${alignment}`);
		infos.push({ name, typeId, ...(qtype ? { qtype } : {}), dims, bytes });
		rel.push(offset);
	}
	const dataStart = Math.ceil(c.pos / alignment) * alignment;
	const tensors = new Map<string, GgufTensor>();
	infos.forEach((t, i) => {
		const end = BigInt(dataStart) + rel[i] + BigInt(t.bytes);
		if (end > BigInt(size)) {
			throw new UserError(`${path}: tensor ${show(t.name)} (${t.bytes} bytes at data offset ${rel[i]}) runs past the end of the file (${size} bytes; truncated?)`);
		}
		tensors.set(t.name, { ...t, offset: dataStart + Number(rel[i]) });
	});
	// Tensors must not share bytes (llama.cpp writes them back to back; overlaps mean a corrupt file).
	const sorted = [...tensors.values()].filter((t) => t.bytes > 0).sort((a, b) => a.offset - b.offset);
	let last: GgufTensor | undefined; // the tensor reaching furthest so far
	for (const t of sorted) {
		if (last && t.offset < last.offset + last.bytes) throw new UserError(`${path}: tensor ${show(t.name)} overlaps tensor ${show(last.name)}`);
		if (!last || t.offset + t.bytes > last.offset + last.bytes) last = t;
	}
	return { version, alignment, metadata, tensors };
}
