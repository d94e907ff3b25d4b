// Test helpers for the quantized kernels: ggml's dequantize_row_* formulas in plain TypeScript (float64), random
// blocks of every type, and just enough of a GGUF reader to pull one tensor's stored bytes out of a fixture.
import { readFileSync } from 'node:fs';
import { QTYPE_LAYOUT, rowBytes, type QMatrix, type QType } from '../../src/tensor/qmatrix.js';
import { fromHalf, toHalf } from '../../src/cli/bench-quant.js';

const half = (b: Uint8Array, at: number) => fromHalf(b[at] | (b[at + 1] << 8));

function scaleMinK4(j: number, q: Uint8Array, at: number): [number, number] {
	if (j < 4) return [q[at + j] & 63, q[at + j + 4] & 63];
	return [(q[at + j + 4] & 0xf) | ((q[at + j - 4] >> 6) << 4), (q[at + j + 4] >> 4) | ((q[at + j] >> 6) << 4)];
}

/** One block (at byte `at`) as its values. */
function dequantizeBlock(t: QType, b: Uint8Array, at: number): number[] {
	const y: number[] = [];
	switch (t) {
		case 'f32': return [new DataView(b.buffer, b.byteOffset + at, 4).getFloat32(0, true)];
		case 'f16': return [half(b, at)];
		case 'bf16': { const f = new Float32Array(new Uint32Array([(b[at] | (b[at + 1] << 8)) << 16]).buffer); return [f[0]]; }
		case 'q8_0': { const d = half(b, at); for (let j = 0; j < 32; j++) y.push(d * ((b[at + 2 + j] << 24) >> 24)); return y; }
		case 'q4_0': case 'q4_1': {
			const one = t === 'q4_1', d = half(b, at), m = one ? half(b, at + 2) : 0, qs = at + (one ? 4 : 2), off = one ? 0 : 8;
			for (let j = 0; j < 16; j++) y[j] = ((b[qs + j] & 0xf) - off) * d + m;
			for (let j = 0; j < 16; j++) y[j + 16] = ((b[qs + j] >> 4) - off) * d + m;
			return y;
		}
		case 'q5_0': case 'q5_1': {
			const one = t === 'q5_1', d = half(b, at), m = one ? half(b, at + 2) : 0, h = at + (one ? 4 : 2), qs = h + 4, off = one ? 0 : 16;
			const qh = (b[h] | (b[h + 1] << 8) | (b[h + 2] << 16) | (b[h + 3] << 24)) >>> 0;
			for (let j = 0; j < 16; j++) {
				y[j] = (((b[qs + j] & 0xf) | (((qh >>> j) << 4) & 0x10)) - off) * d + m;
				y[j + 16] = (((b[qs + j] >> 4) | ((qh >>> (j + 12)) & 0x10)) - off) * d + m;
			}
			return y;
		}
		case 'q4_k': case 'q5_k': {
			const five = t === 'q5_k', d = half(b, at), dmin = half(b, at + 2), qh = at + 16, ql = at + (five ? 48 : 16);
			for (let j = 0; j < 4; j++) {
				const [s1, m1] = scaleMinK4(2 * j, b, at + 4), [s2, m2] = scaleMinK4(2 * j + 1, b, at + 4);
				for (let l = 0; l < 32; l++) y.push(d * s1 * ((b[ql + 32 * j + l] & 0xf) + (five && b[qh + l] & (1 << (2 * j)) ? 16 : 0)) - dmin * m1);
				for (let l = 0; l < 32; l++) y.push(d * s2 * ((b[ql + 32 * j + l] >> 4) + (five && b[qh + l] & (2 << (2 * j)) ? 16 : 0)) - dmin * m2);
			}
			return y;
		}
		case 'q6_k': {
			const d = half(b, at + 208);
			for (let n = 0; n < 2; n++) {
				const ql = at + 64 * n, qh = at + 128 + 32 * n, sc = at + 192 + 8 * n;
				const s = (i: number) => (b[sc + i] << 24) >> 24;
				for (let l = 0; l < 32; l++) {
					const is = l >> 4;
					y[128 * n + l] = d * s(is) * (((b[ql + l] & 0xf) | (((b[qh + l] >> 0) & 3) << 4)) - 32);
					y[128 * n + l + 32] = d * s(is + 2) * (((b[ql + l + 32] & 0xf) | (((b[qh + l] >> 2) & 3) << 4)) - 32);
					y[128 * n + l + 64] = d * s(is + 4) * (((b[ql + l] >> 4) | (((b[qh + l] >> 4) & 3) << 4)) - 32);
					y[128 * n + l + 96] = d * s(is + 6) * (((b[ql + l + 32] >> 4) | (((b[qh + l] >> 6) & 3) << 4)) - 32);
				}
			}
			return y;
		}
	}
}

/** Row r of a QMatrix, in float64. */
export function dequantizeRow(w: QMatrix, r: number): Float64Array {
	const { blockSize, blockBytes } = QTYPE_LAYOUT[w.qtype];
	const out = new Float64Array(w.cols), base = r * rowBytes(w.qtype, w.cols);
	for (let b = 0; b < w.cols / blockSize; b++) out.set(dequantizeBlock(w.qtype, w.data, base + b * blockBytes), b * blockSize);
	return out;
}

/** Where each type keeps its f16 scales (random bytes there would be NaN or huge). */
const HALF_FIELDS: Partial<Record<QType, number[]>> = {
	q8_0: [0], q4_0: [0], q4_1: [0, 2], q5_0: [0], q5_1: [0, 2], q4_k: [0, 2], q5_k: [0, 2], q6_k: [208],
};

/** A (rows, cols) matrix of random blocks: random codes, scales in ±0.01..0.05 (f16 / bf16: values in ±1). */
export function randomQMatrix(qtype: QType, rows: number, cols: number, rand: () => number): QMatrix {
	const { blockSize, blockBytes } = QTYPE_LAYOUT[qtype];
	const data = new Uint8Array(rows * rowBytes(qtype, cols));
	for (let i = 0; i < data.length; i++) data[i] = Math.floor(rand() * 256);
	const put = (at: number, h: number) => { data[at] = h & 0xff; data[at + 1] = h >>> 8; };
	const blocks = (rows * cols) / blockSize;
	for (let b = 0; b < blocks; b++) {
		const at = b * blockBytes;
		if (qtype === 'f16') put(at, toHalf(2 * rand() - 1));
		else if (qtype === 'bf16') put(at, new Uint32Array(new Float32Array([2 * rand() - 1]).buffer)[0] >>> 16);
		for (const f of HALF_FIELDS[qtype] ?? []) put(at + f, toHalf((rand() < 0.5 ? -1 : 1) * (0.01 + 0.04 * rand())));
	}
	return { qtype, rows, cols, data };
}

const GGML_TYPES: Record<number, QType> = { 0: 'f32', 1: 'f16', 2: 'q4_0', 3: 'q4_1', 6: 'q5_0', 7: 'q5_1', 8: 'q8_0', 12: 'q4_k', 13: 'q5_k', 14: 'q6_k', 30: 'bf16' };

/** One tensor of a GGUF file as a QMatrix (rows = the outer dimension). A test helper: trusts the file. */
export function ggufTensor(path: string, name: string): QMatrix {
	const buf = readFileSync(path), v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
	let p = 0;
	const u32 = () => { p += 4; return v.getUint32(p - 4, true); };
	const u64 = () => { p += 8; return Number(v.getBigUint64(p - 8, true)); };
	const str = () => { const n = u64(); p += n; return buf.toString('utf8', p - n, p); };
	const SIZES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
	const skip = (t: number): void => {
		if (t === 8) str();
		else if (t === 9) { const et = u32(), n = u64(); for (let i = 0; i < n; i++) skip(et); }
		else p += SIZES[t];
	};
	if (buf.toString('latin1', 0, 4) !== 'GGUF') throw new Error(`${path}: not a GGUF file`);
	p = 4;
	u32();
	const nTensors = u64(), nKv = u64();
	let alignment = 32;
	for (let i = 0; i < nKv; i++) {
		const key = str(), t = u32();
		if (key === 'general.alignment' && t === 4) alignment = u32();
		else skip(t);
	}
	const infos: { name: string; dims: number[]; type: number; offset: number }[] = [];
	for (let i = 0; i < nTensors; i++) {
		const n = str(), nd = u32(), dims = Array.from({ length: nd }, u64);
		infos.push({ name: n, dims, type: u32(), offset: u64() });
	}
	const base = Math.ceil(p / alignment) * alignment;
	const info = infos.find((t) => t.name === name);
	if (!info) throw new Error(`${path}: no tensor ${name}`);
	const qtype = GGML_TYPES[info.type];
	if (!qtype) throw new Error(`${path}: ${name} has ggml type ${info.type}, not one this helper knows`);
	const cols = info.dims[0], rows = info.dims.slice(1).reduce((a, b) => a * b, 1);
	const start = base + info.offset;
	return { qtype, rows, cols, data: new Uint8Array(buf.buffer, buf.byteOffset + start, rows * rowBytes(qtype, cols)) };
}
