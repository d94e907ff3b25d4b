// safetensors: [u64 LE header length][JSON header][tensor bytes]. The header is validated completely before any
// tensor is read; tensors are then read one at a time with positioned reads (never the whole file).
import * as fs from 'node:fs';
import { UserError } from '../errors.js';
import { encodeFloats, type FloatDType } from '../tensor/dtypes.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { fmtShape, itemSize, openForRead, product, readAt, readFloatsAt, show, type TensorEntry, type TensorSource } from './io.js';

/** Headers of real checkpoints are a few KB to a few MB; anything bigger is corrupt or hostile. */
export const MAX_HEADER_BYTES = 100_000_000;

interface SafeEntry extends TensorEntry {
	begin: number; // absolute file offset
	end: number;
}

interface SafetensorsFile extends TensorSource {
	readonly entries: ReadonlyMap<string, SafeEntry>;
	readonly metadata: Record<string, string>;
}

export function openSafetensors(path: string): SafetensorsFile {
	const { fd, size } = openForRead(path);
	try {
		const { entries, metadata } = parseHeader(fd, path, size);
		let open = true;
		return {
			path,
			entries,
			metadata,
			read(name: string): Float32Array {
				const e = entries.get(name);
				if (!e) throw new UserError(`${path}: no tensor ${show(name)}`);
				if (!open) throw new Error(`${path}: read after close`);
				return readFloatsAt(fd, path, e.begin, product(e.shape), e.dtype, `tensor ${show(name)}`);
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

function parseHeader(fd: number, path: string, size: number): { entries: Map<string, SafeEntry>; metadata: Record<string, string> } {
	if (size < 8) throw new UserError(`${path}: not a safetensors file (only ${size} bytes, expected an 8-byte header length)`);
	const lenBuf = new Uint8Array(8);
	readAt(fd, path, lenBuf, 0, 'the header length');
	const len = new DataView(lenBuf.buffer).getBigUint64(0, true);
	if (len > BigInt(MAX_HEADER_BYTES)) {
		// The value itself is not shown: it is the file's first 8 bytes, which may be a secret's (a planted symlink).
		throw new UserError(`${path}: not a safetensors file (its header length field is over ${MAX_HEADER_BYTES} bytes)`);
	}
	const headerLen = Number(len);
	if (8 + headerLen > size) {
		throw new UserError(`${path}: safetensors header length exceeds the file size ${size} (truncated or not a safetensors file)`);
	}
	const raw = new Uint8Array(headerLen);
	readAt(fd, path, raw, 8, 'the header');
	let header: unknown;
	try {
		header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
	} catch {
		throw new UserError(`${path}: safetensors header is not valid JSON`);
	}
	if (typeof header !== 'object' || header === null || Array.isArray(header)) {
		throw new UserError(`${path}: safetensors header is not a JSON object`);
	}
	const dataStart = 8 + headerLen;
	const dataLen = size - dataStart;
	const entries = new Map<string, SafeEntry>();
	let metadata: Record<string, string> = {};
	for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
		if (name === '__metadata__') {
			// Free-form strings; ignored by the loader but kept for display.
			if (typeof value === 'object' && value !== null) metadata = value as Record<string, string>;
			continue;
		}
		const e = parseEntry(path, name, value, dataLen);
		entries.set(name, { ...e, begin: dataStart + e.begin, end: dataStart + e.end });
	}
	// Tensors must not share bytes: sort by start and compare each with the furthest end seen so far.
	const sorted = [...entries.entries()].filter(([, e]) => e.end > e.begin).sort((a, b) => a[1].begin - b[1].begin);
	let last: [string, SafeEntry] | undefined;
	for (const cur of sorted) {
		if (last && cur[1].begin < last[1].end) {
			throw new UserError(`${path}: tensor ${show(cur[0])} overlaps tensor ${show(last[0])} (data_offsets collide)`);
		}
		if (!last || cur[1].end > last[1].end) last = cur;
	}
	return { entries, metadata };
}

function parseEntry(path: string, name: string, value: unknown, dataLen: number): SafeEntry {
	const where = `${path}: tensor ${show(name)}`;
	if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new UserError(`${where}: header entry is not an object`);
	const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
	if (typeof dtype !== 'string') throw new UserError(`${where}: missing dtype`);
	const size = itemSize(dtype);
	if (size === undefined) throw new UserError(`${where}: unknown dtype ${JSON.stringify(dtype).slice(0, 40)} (expected F32, F16 or BF16)`);
	if (!Array.isArray(shape) || !shape.every((s) => Number.isSafeInteger(s) && s >= 0)) {
		throw new UserError(`${where}: shape must be a list of non-negative integers`);
	}
	if (
		!Array.isArray(offsets) || offsets.length !== 2 ||
		!offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[0] > offsets[1]
	) {
		throw new UserError(`${where}: data_offsets must be [begin, end] with 0 <= begin <= end`);
	}
	const [begin, end] = offsets as [number, number];
	if (end > dataLen) {
		throw new UserError(`${where}: data_offsets [${begin}, ${end}] run past the end of the data (${dataLen} bytes; truncated file?)`);
	}
	const expected = product(shape) * size;
	if (end - begin !== expected) {
		throw new UserError(`${where}: shape ${fmtShape(shape)} ${dtype} needs ${expected} bytes but data_offsets hold ${end - begin}`);
	}
	return { dtype, shape: shape as number[], begin, end };
}

/** One tensor for writeSafetensors: float32 data stored as `dtype`. */
export interface TensorToWrite {
	name: string;
	dtype: FloatDType;
	shape: number[];
	data: Float32Array;
}

/**
 * Write a safetensors file tensor by tensor (only one tensor's encoded bytes in memory at a time), atomically
 * (util/atomic-write.ts): an existing file at `path` stays whole until the new one is complete.
 * No value checks: callers that need finite or in-range values check first (tests write NaN on purpose).
 */
export function writeSafetensors(path: string, tensors: TensorToWrite[], metadata?: Record<string, string>): void {
	writeFileAtomic(path, safetensorsChunks(tensors, metadata));
}

/** The bytes of a safetensors file as chunks: the header, then one chunk per tensor, encoded as they are asked for. */
export function* safetensorsChunks(tensors: TensorToWrite[], metadata?: Record<string, string>): Generator<Uint8Array> {
	const header: Record<string, unknown> = {};
	if (metadata) header.__metadata__ = metadata;
	let offset = 0;
	for (const t of tensors) {
		const n = product(t.shape);
		if (n !== t.data.length) throw new Error(`writeSafetensors: ${t.name} has ${t.data.length} values for shape ${fmtShape(t.shape)}`);
		const bytes = n * (itemSize(t.dtype) as number);
		header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
		offset += bytes;
	}
	let json = JSON.stringify(header);
	json += ' '.repeat((8 - ((Buffer.byteLength(json) + 8) % 8)) % 8); // align the data to 8 bytes, as the reference writer does
	const head = Buffer.alloc(8 + Buffer.byteLength(json));
	head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)), 0);
	head.write(json, 8, 'utf8');
	yield head;
	for (const t of tensors) yield encodeFloats(t.data, t.dtype);
}
