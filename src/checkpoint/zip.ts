// A minimal, defensive zip reader for torch archives: it reads the central directory (zip64 too), never extracts
// to disk, refuses path traversal and sizes the file cannot hold, and reads entries by positioned reads.
// torch.save writes entries stored (method 0), 64-byte aligned; deflate (method 8) is accepted for other writers.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as zlib from 'node:zlib';
import { UserError } from '../errors.js';
import { openForRead, readAt, show } from './io.js';

export interface ZipEntry {
	name: string;
	method: number; // 0 stored, 8 deflate
	crc: number;
	compressedSize: number;
	size: number; // uncompressed
	localOffset: number;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const MAX_CENTRAL_DIR = 100_000_000;
// deflate can expand data up to 1032x, but tensor data (floats) barely compresses: a storage that claims more than
// this ratio over its stored bytes (plus a little slack for small all-zero biases) is refused before inflating.
export const MAX_INFLATE_RATIO = 64;
const INFLATE_SLACK = 1 << 20;

// zlib.crc32 is native but only exists from Node 20.15; older Node 20 releases get the table version.
let crcTable: Uint32Array | undefined;
function jsCrc32(b: Uint8Array): number {
	if (!crcTable) {
		crcTable = new Uint32Array(256);
		for (let n = 0; n < 256; n++) {
			let c = n;
			for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
			crcTable[n] = c >>> 0;
		}
	}
	let c = 0xffffffff;
	for (let i = 0; i < b.length; i++) c = crcTable[(c ^ b[i]) & 0xff] ^ (c >>> 8);
	return (c ^ 0xffffffff) >>> 0;
}
export const crc32: (b: Uint8Array) => number =
	typeof (zlib as { crc32?: unknown }).crc32 === 'function' ? (b) => zlib.crc32(b) >>> 0 : jsCrc32;
export { jsCrc32 as crc32Portable };

export class ZipReader {
	readonly entries = new Map<string, ZipEntry>();
	private readonly fd: number;
	readonly size: number;
	private open = true;
	private readonly shared = new Map<string, { left: number; data?: Buffer }>();

	constructor(readonly path: string) {
		const f = openForRead(path);
		this.fd = f.fd;
		this.size = f.size;
		try {
			this.readCentralDirectory();
		} catch (err) {
			this.close();
			throw err;
		}
	}

	/** Say that `uses` reads of a deflated entry will come, so it is inflated once rather than once per read. */
	shareEntry(e: ZipEntry, uses: number): void {
		if (e.method !== 0 && uses > 1) this.shared.set(e.name, { left: uses });
	}

	close(): void {
		this.shared.clear();
		if (this.open) fs.closeSync(this.fd);
		this.open = false;
	}

	private fail(why: string): never {
		throw new UserError(`${this.path}: ${why}`);
	}

	private bytes(position: number, length: number, what: string): Buffer {
		if (position < 0 || position + length > this.size) this.fail(`${what} lies outside the file (corrupt zip)`);
		const b = Buffer.alloc(length);
		readAt(this.fd, this.path, b, position, what);
		return b;
	}

	private readCentralDirectory(): void {
		if (this.size < 22) this.fail('not a zip archive (too short)');
		// The end record sits in the last 22 + 65535 (max comment) bytes; scan backwards for its signature.
		const tailLen = Math.min(this.size, 22 + 65535);
		const tail = this.bytes(this.size - tailLen, tailLen, 'the end of the archive');
		let at = -1;
		for (let i = tailLen - 22; i >= 0; i--) {
			if (tail.readUInt32LE(i) === EOCD && i + 22 + tail.readUInt16LE(i + 20) <= tailLen) {
				at = i;
				break;
			}
		}
		if (at < 0) this.fail('not a zip archive (no end-of-central-directory record; the legacy torch.save format is not supported, re-save with torch >= 1.6)');
		const eocdPos = this.size - tailLen + at;
		let count = tail.readUInt16LE(at + 10);
		let cdSize = tail.readUInt32LE(at + 12);
		let cdOffset = tail.readUInt32LE(at + 16);
		if (tail.readUInt16LE(at + 4) !== 0 || tail.readUInt16LE(at + 6) !== 0) this.fail('multi-disk zip archives are not supported');
		if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
			if (eocdPos < 20) this.fail('zip64 locator missing (corrupt zip)');
			const loc = this.bytes(eocdPos - 20, 20, 'the zip64 locator');
			if (loc.readUInt32LE(0) !== ZIP64_LOCATOR) this.fail('zip64 locator missing (corrupt zip)');
			const z = this.bytes(this.u64(loc, 8, 'zip64 record offset'), 56, 'the zip64 end record');
			if (z.readUInt32LE(0) !== ZIP64_EOCD) this.fail('zip64 end record missing (corrupt zip)');
			count = this.u64(z, 32, 'entry count');
			cdSize = this.u64(z, 40, 'central directory size');
			cdOffset = this.u64(z, 48, 'central directory offset');
		}
		if (cdSize > MAX_CENTRAL_DIR || cdOffset + cdSize > this.size) this.fail(`central directory (${cdSize} bytes at ${cdOffset}) lies outside the file (corrupt zip)`);
		if (count * 46 > cdSize) this.fail(`central directory declares ${count} entries but holds only ${cdSize} bytes (corrupt zip)`);
		const cd = this.bytes(cdOffset, cdSize, 'the central directory');
		let p = 0;
		for (let i = 0; i < count; i++) {
			if (p + 46 > cd.length || cd.readUInt32LE(p) !== CENTRAL) this.fail(`central directory entry ${i} is corrupt`);
			const flags = cd.readUInt16LE(p + 8);
			const method = cd.readUInt16LE(p + 10);
			const crc = cd.readUInt32LE(p + 16);
			let compressedSize = cd.readUInt32LE(p + 20);
			let size = cd.readUInt32LE(p + 24);
			const nameLen = cd.readUInt16LE(p + 28);
			const extraLen = cd.readUInt16LE(p + 30);
			const commentLen = cd.readUInt16LE(p + 32);
			let localOffset = cd.readUInt32LE(p + 42);
			if (p + 46 + nameLen + extraLen + commentLen > cd.length) this.fail(`central directory entry ${i} is corrupt`);
			const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
			// zip64 extra field: 64-bit values replace, in this order, whichever 32-bit fields are 0xffffffff.
			let e = p + 46 + nameLen;
			const extraEnd = e + extraLen;
			while (e + 4 <= extraEnd) {
				const id = cd.readUInt16LE(e);
				const len = cd.readUInt16LE(e + 2);
				if (e + 4 + len > extraEnd) this.fail(`entry ${show(name)}: corrupt extra field`);
				if (id === 0x0001) {
					let q = e + 4;
					const next = (what: string): number => {
						if (q + 8 > e + 4 + len) this.fail(`entry ${show(name)}: short zip64 extra field`);
						const v = this.u64(cd, q, what);
						q += 8;
						return v;
					};
					if (size === 0xffffffff) size = next('size');
					if (compressedSize === 0xffffffff) compressedSize = next('compressed size');
					if (localOffset === 0xffffffff) localOffset = next('offset');
				}
				e += 4 + len;
			}
			p = extraEnd + commentLen;
			this.checkName(name);
			if (flags & 1) this.fail(`entry ${show(name)} is encrypted`);
			if (method !== 0 && method !== 8) this.fail(`entry ${show(name)} uses compression method ${method} (only stored and deflate are supported)`);
			if (localOffset + 30 + compressedSize > this.size) this.fail(`entry ${show(name)} declares ${compressedSize} bytes at offset ${localOffset}, beyond the file size ${this.size}`);
			if (method === 0 ? size !== compressedSize : size > compressedSize * MAX_INFLATE_RATIO + INFLATE_SLACK) {
				const why = method === 0 ? 'stored entries do not change size' : `over ${MAX_INFLATE_RATIO}x: a compression bomb or a corrupt zip`;
				this.fail(`entry ${show(name)} declares an impossible size ${size} for ${compressedSize} stored bytes (${why})`);
			}
			if (this.entries.has(name)) this.fail(`entry ${show(name)} appears twice`);
			this.entries.set(name, { name, method, crc, compressedSize, size, localOffset });
		}
	}

	private u64(b: Buffer, at: number, what: string): number {
		const v = b.readBigUInt64LE(at);
		if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`zip ${what} ${v} is absurd (corrupt zip)`);
		return Number(v);
	}

	private checkName(name: string): void {
		const parts = name.split(/[\\/]/);
		if (name.startsWith('/') || name.startsWith('\\') || /^[A-Za-z]:/.test(name) || name.includes('\0') || parts.includes('..')) {
			this.fail(`refusing zip entry with unsafe path ${show(JSON.stringify(name))}`);
		}
	}

	/** File offset where an entry's data starts (after its local header). */
	private dataOffset(e: ZipEntry): number {
		const h = this.bytes(e.localOffset, 30, `the local header of ${show(e.name)}`);
		if (h.readUInt32LE(0) !== LOCAL) this.fail(`entry ${show(e.name)}: bad local header (corrupt zip)`);
		const start = e.localOffset + 30 + h.readUInt16LE(26) + h.readUInt16LE(28);
		if (start + e.compressedSize > this.size) this.fail(`entry ${show(e.name)}: data runs past the end of the file (truncated?)`);
		return start;
	}

	/** An entry's uncompressed bytes `[offset, offset + length)` in a new Buffer. */
	read(e: ZipEntry, offset = 0, length = e.size): Buffer {
		const out = Buffer.alloc(length);
		this.readInto(e, offset, out);
		return out;
	}

	/** A deflated entry's bytes, once, with memory checked first and out-of-memory told apart from corrupt data. */
	inflate(e: ZipEntry): Buffer {
		const start = this.dataOffset(e);
		const gib = (b: number) => (b / 2 ** 30).toFixed(2);
		if (e.size > os.freemem()) this.fail(`entry ${show(e.name)} needs ${gib(e.size)} GiB to inflate but only ${gib(os.freemem())} GiB of memory is free`);
		let data: Buffer;
		try {
			data = zlib.inflateRawSync(this.bytes(start, e.compressedSize, `entry ${show(e.name)}`), { maxOutputLength: Math.max(1, e.size) });
		} catch (err) {
			if (err instanceof UserError) throw err;
			const code = (err as NodeJS.ErrnoException).code;
			if (code === 'ERR_BUFFER_TOO_LARGE') this.fail(`entry ${show(e.name)}: inflates to more than its declared ${e.size} bytes (corrupt zip)`);
			if (code === 'Z_MEM_ERROR' || err instanceof RangeError) this.fail(`entry ${show(e.name)}: out of memory while inflating ${gib(e.size)} GiB`);
			this.fail(`entry ${show(e.name)}: corrupt deflate data`);
		}
		if (data.length !== e.size) this.fail(`entry ${show(e.name)}: inflates to ${data.length} bytes, expected ${e.size}`);
		return data;
	}

	/**
	 * Fill `target` with an entry's uncompressed bytes from `offset` (stored entries are read straight into it).
	 * A read of the whole entry is checked against its CRC-32, so flipped bits in a storage are caught.
	 */
	readInto(e: ZipEntry, offset: number, target: Uint8Array): void {
		const length = target.byteLength;
		if (offset < 0 || offset + length > e.size) this.fail(`entry ${show(e.name)}: read of ${length} bytes at ${offset} is beyond its size ${e.size}`);
		const start = this.dataOffset(e);
		if (e.method === 0) {
			readAt(this.fd, this.path, target, start + offset, `entry ${show(e.name)}`);
			if (offset !== 0 || length !== e.size) return;
			if (crc32(target) !== e.crc) this.fail(`entry ${show(e.name)}: CRC-32 mismatch (corrupt file)`);
			return;
		} else {
			// A storage several tensors view is inflated (and CRC-checked) once and kept until its last reader.
			const shared = this.shared.get(e.name);
			let data = shared?.data;
			if (!data) {
				data = this.inflate(e);
				if (crc32(data) !== e.crc) this.fail(`entry ${show(e.name)}: CRC-32 mismatch (corrupt file)`);
				if (shared) shared.data = data;
			}
			target.set(data.subarray(offset, offset + length));
			if (shared && --shared.left <= 0) this.shared.delete(e.name);
			return;
		}
	}
}
