// Plain reference quantizers for `bench --shape DxL --dtype …` (random weights in a quantized type) and for tests:
// ggml's block layouts (src/tensor/qmatrix.ts), simple round-to-nearest scales (not llama-quantize's searched ones;
// speed does not depend on the values).
import { rowBytes, type QMatrix } from '../tensor/qmatrix.js';

export const BENCH_DTYPES = ['f32', 'f16', 'q8_0', 'q4_0', 'q4_k'] as const;
export type BenchDtype = (typeof BENCH_DTYPES)[number];

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float → IEEE half bits, round to nearest even (subnormals included, overflow to infinity). */
export function toHalf(v: number): number {
	f32[0] = v;
	const x = u32[0], sign = (x >>> 16) & 0x8000, exp = (x >>> 23) & 0xff, man = x & 0x7fffff;
	if (exp === 0xff) return sign | 0x7c00 | (man ? 0x200 : 0);
	const e = exp - 127 + 15;
	if (e >= 31) return sign | 0x7c00;
	if (e <= 0) {
		if (e < -10) return sign;
		const m = man | 0x800000, shift = 14 - e;
		let h = m >>> shift;
		const rest = m & ((1 << shift) - 1), halfway = 1 << (shift - 1);
		if (rest > halfway || (rest === halfway && h & 1)) h++;
		return sign | h;
	}
	let h = (e << 10) | (man >>> 13);
	const rest = man & 0x1fff;
	if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++;
	return sign | h;
}

/** IEEE half bits → float. */
export function fromHalf(h: number): number {
	const s = h & 0x8000 ? -1 : 1, e = (h >>> 10) & 0x1f, m = h & 0x3ff;
	if (e === 0) return s * m * 2 ** -24;
	if (e === 31) return m ? NaN : s * Infinity;
	return s * (1024 + m) * 2 ** (e - 25);
}

function putHalf(out: Uint8Array, at: number, v: number): number {
	const h = toHalf(v);
	out[at] = h & 0xff;
	out[at + 1] = h >>> 8;
	return fromHalf(h);
}

function q8_0Block(x: Float32Array, out: Uint8Array, at: number): void {
	let amax = 0;
	for (const v of x) amax = Math.max(amax, Math.abs(v));
	const d = putHalf(out, at, amax / 127);
	for (let i = 0; i < 32; i++) out[at + 2 + i] = (d ? Math.max(-127, Math.min(127, Math.round(x[i] / d))) : 0) & 0xff;
}

function q4_0Block(x: Float32Array, out: Uint8Array, at: number): void {
	let m = 0; // ggml: the value of largest magnitude maps to −8
	for (const v of x) if (Math.abs(v) > Math.abs(m)) m = v;
	const d = putHalf(out, at, m / -8);
	const q = (v: number) => (d ? Math.max(0, Math.min(15, Math.round(v / d) + 8)) : 8);
	for (let i = 0; i < 16; i++) out[at + 2 + i] = q(x[i]) | (q(x[i + 16]) << 4);
}

/** q4_K: 8 sub-blocks of 32, value = d·sc·q − dmin·m with 6-bit sc and m (ggml's packing). */
function q4_kBlock(x: Float32Array, out: Uint8Array, at: number): void {
	const scale = new Float64Array(8), min = new Float64Array(8);
	for (let j = 0; j < 8; j++) {
		let lo = Infinity, hi = -Infinity;
		for (let i = 0; i < 32; i++) { lo = Math.min(lo, x[32 * j + i]); hi = Math.max(hi, x[32 * j + i]); }
		lo = Math.min(lo, 0);
		scale[j] = (hi - lo) / 15;
		min[j] = -lo;
	}
	const d = putHalf(out, at, Math.max(...scale) / 63), dmin = putHalf(out, at + 2, Math.max(...min) / 63);
	const sc = Array.from(scale, (s) => (d ? Math.min(63, Math.round(s / d)) : 0));
	const mn = Array.from(min, (m) => (dmin ? Math.min(63, Math.round(m / dmin)) : 0));
	const s = at + 4;
	for (let j = 0; j < 4; j++) {
		out[s + j] = sc[j] | ((sc[j + 4] >> 4) << 6);
		out[s + j + 4] = mn[j] | ((mn[j + 4] >> 4) << 6);
		out[s + j + 8] = (sc[j + 4] & 0xf) | ((mn[j + 4] & 0xf) << 4);
	}
	for (let j = 0; j < 8; j++) {
		const a = d * sc[j], b = dmin * mn[j];
		for (let i = 0; i < 32; i++) {
			const q = a ? Math.max(0, Math.min(15, Math.round((x[32 * j + i] + b) / a))) : 0;
			const byte = at + 16 + 32 * (j >> 1) + i;
			out[byte] = j & 1 ? (out[byte] & 0xf) | (q << 4) : (out[byte] & 0xf0) | q;
		}
	}
}

/** A (rows, cols) float32 matrix in a block type (cols a multiple of the block size). */
export function quantizeMatrix(data: Float32Array, rows: number, cols: number, qtype: 'f16' | 'q8_0' | 'q4_0' | 'q4_k'): QMatrix {
	const rb = rowBytes(qtype, cols), out = new Uint8Array(rows * rb);
	const [size, bytes, block] =
		qtype === 'q8_0' ? [32, 34, q8_0Block] : qtype === 'q4_0' ? [32, 18, q4_0Block] : qtype === 'q4_k' ? [256, 144, q4_kBlock] : [1, 2, null];
	for (let r = 0; r < rows; r++) {
		for (let b = 0; b < cols / size; b++) {
			const at = r * rb + b * bytes, x = data.subarray(r * cols + b * size, r * cols + (b + 1) * size);
			if (block) block(x, out, at);
			else putHalf(out, at, x[0]);
		}
	}
	return { qtype, rows, cols, data: out };
}

/** Whether a (rows, cols) matrix can be stored in qtype (cols a whole number of blocks). */
export function quantizable(qtype: BenchDtype, cols: number): boolean {
	return qtype === 'f32' || qtype === 'f16' || cols % (qtype === 'q4_k' ? 256 : 32) === 0;
}

interface Projections { layers: Record<string, unknown>[]; head: unknown }
type Dense = { data: Float32Array; rows: number; cols: number };
const PROJECTIONS = ['inProj', 'xProj', 'dtProj', 'outProj'];

/**
 * Replace a host model's projections (and head) by their blocks in `dtype`, those whose width takes the type's
 * blocks (dt_proj's R columns often do not: it stays f32, as llama-quantize leaves it). For the bench's random
 * weights until checkpoints carry QMatrix weights; only the native kernels compute on blocks.
 */
export function quantizeProjections(model: object, dtype: Exclude<BenchDtype, 'f32'>): void {
	const m = model as unknown as Projections;
	if (!Array.isArray(m.layers) || !m.head) throw new Error('--dtype: this model does not run on host kernels');
	const q = (w: unknown) => {
		const d = w as Dense;
		return quantizable(dtype, d.cols) ? quantizeMatrix(d.data, d.rows, d.cols, dtype) : w;
	};
	for (const l of m.layers) for (const k of PROJECTIONS) l[k] = q(l[k]);
	m.head = q(m.head);
}

/** Bytes of weights a decode step reads: every projection and the head as stored, plus the per-layer vectors. */
export function stepWeightBytes(model: object): number {
	const m = model as unknown as Projections;
	const bytes = (w: unknown) => ((w as { data: { byteLength: number } }).data.byteLength);
	let n = bytes(m.head);
	for (const l of m.layers) {
		for (const [k, v] of Object.entries(l)) n += PROJECTIONS.includes(k) ? bytes(v) : v instanceof Float32Array ? v.byteLength : 0;
	}
	return n;
}
