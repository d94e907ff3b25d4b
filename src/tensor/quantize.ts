// Reference quantizers that reproduce llama.cpp's bytes: ggml-quants.c quantize_row_{q8_0,q4_0,q4_K,q6_K}_ref, which
// llama-quantize uses when it is given no importance matrix. Everything is float32 arithmetic in C's order, so every
// operation is wrapped in Math.fround (for + − × ÷ and sqrt, rounding a float64 result to float32 gives exactly the
// float32 result). Two roundings differ: roundf (half away from zero) for q8_0, and ggml's nearest_int (the
// 1.5·2^23 trick: round half to even) for the K-quants.
import { floatToHalf } from './dtypes.js';
import { QTYPE_LAYOUT, rowBytes, type QMatrix, type QType } from './qmatrix.js';
import { half, scaleMinK4 } from './dequant.js';

const f = Math.fround;
const GROUP_MAX_EPS = f(1e-15);

/** C roundf: nearest integer, halves away from zero. */
const roundf = (v: number) => (v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5));
/** ggml nearest_int: adding 1.5·2^23 in float32 rounds to an integer, ties to even (valid for |v| ≤ 2^22). */
const nearestInt = (v: number) => f(v + 12582912) - 12582912;
const clamp = (v: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, v));

function putHalf(b: Uint8Array, o: number, v: number): void {
	const h = floatToHalf(v);
	b[o] = h & 0xff;
	b[o + 1] = h >> 8;
}

/** q8_0: per 32 values d = amax/127 (stored as f16), q = roundf(x · (1/d)) with 1/d taken from the float32 d. */
function q8_0Block(x: Float32Array, xo: number, b: Uint8Array, o: number): void {
	let amax = 0;
	for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[xo + j]));
	const d = f(amax / 127);
	const id = d ? f(1 / d) : 0;
	putHalf(b, o, d);
	for (let j = 0; j < 32; j++) b[o + 2 + j] = roundf(f(x[xo + j] * id)) & 0xff;
}

/** The value of largest magnitude in a block of 32, sign kept (the first one on ties, as ggml's loop). */
function signedMax(x: Float32Array, xo: number): number {
	let amax = 0, max = 0;
	for (let j = 0; j < 32; j++) {
		const v = x[xo + j];
		if (amax < Math.abs(v)) {
			amax = Math.abs(v);
			max = v;
		}
	}
	return max;
}

/** q4_0: d = (the value of largest magnitude) / −8, q = min(15, trunc(x/d + 8.5)), two values per byte. */
function q4_0Block(x: Float32Array, xo: number, b: Uint8Array, o: number): void {
	const max = signedMax(x, xo);
	const d = f(max / -8);
	const id = d ? f(1 / d) : 0;
	putHalf(b, o, d);
	for (let j = 0; j < 16; j++) {
		const q0 = Math.min(15, Math.trunc(f(f(x[xo + j] * id) + 8.5)));
		const q1 = Math.min(15, Math.trunc(f(f(x[xo + 16 + j] * id) + 8.5)));
		b[o + 2 + j] = q0 | (q1 << 4);
	}
}

/** q5_0 (llama-quantize's fallback for Q4_K rows that are not whole 256-blocks): as q4_0 with 32 levels, d = max/−16. */
function q5_0Block(x: Float32Array, xo: number, b: Uint8Array, o: number): void {
	const max = signedMax(x, xo);
	const d = f(max / -16);
	const id = d ? f(1 / d) : 0;
	putHalf(b, o, d);
	let qh = 0;
	for (let j = 0; j < 16; j++) {
		const q0 = Math.min(31, Math.trunc(f(f(x[xo + j] * id) + 16.5)));
		const q1 = Math.min(31, Math.trunc(f(f(x[xo + 16 + j] * id) + 16.5)));
		b[o + 6 + j] = (q0 & 0xf) | ((q1 & 0xf) << 4);
		qh |= ((q0 & 0x10) >> 4) << j;
		qh |= ((q1 & 0x10) >> 4) << (j + 16);
	}
	for (let k = 0; k < 4; k++) b[o + 2 + k] = (qh >>> (8 * k)) & 0xff;
}

/**
 * ggml make_qkx2_quants: the scale and min of n values at levels 0..nmax that minimise the weighted error, trying
 * nstep+1 scales around nmax/(max−min). Writes the levels into L[lo ..]; returns [scale, −min].
 */
function makeQkx2(n: number, nmax: number, x: Float32Array, xo: number, w: Float32Array, L: Uint8Array, lo: number, rmin: number, rdelta: number, nstep: number): [number, number] {
	let min = x[xo], max = x[xo];
	let sumW = w[0];
	let sumX = f(sumW * x[xo]);
	for (let i = 1; i < n; i++) {
		const v = x[xo + i];
		if (v < min) min = v;
		if (v > max) max = v;
		sumW = f(sumW + w[i]);
		sumX = f(sumX + f(w[i] * v));
	}
	if (min > 0) min = 0;
	if (max === min) {
		L.fill(0, lo, lo + n);
		return [0, -min];
	}
	let iscale = f(nmax / f(max - min));
	let scale = f(1 / iscale);
	let bestError = 0;
	for (let i = 0; i < n; i++) {
		const l = clamp(nearestInt(f(iscale * f(x[xo + i] - min))), 0, nmax);
		L[lo + i] = l;
		const diff = f(f(f(scale * l) + min) - x[xo + i]);
		bestError = f(bestError + f(w[i] * f(diff * diff))); // q4_K passes use_mad = false: squared error
	}
	const aux = new Uint8Array(n);
	for (let is = 0; is <= nstep; is++) {
		iscale = f(f(f(rmin + f(rdelta * is)) + nmax) / f(max - min));
		let sumL = 0, sumL2 = 0, sumXL = 0;
		for (let i = 0; i < n; i++) {
			const l = clamp(nearestInt(f(iscale * f(x[xo + i] - min))), 0, nmax);
			aux[i] = l;
			sumL = f(sumL + f(w[i] * l));
			sumL2 = f(sumL2 + f(f(w[i] * l) * l));
			sumXL = f(sumXL + f(f(w[i] * l) * x[xo + i]));
		}
		const D = f(f(sumW * sumL2) - f(sumL * sumL));
		if (D > 0) {
			let thisScale = f(f(f(sumW * sumXL) - f(sumX * sumL)) / D);
			let thisMin = f(f(f(sumL2 * sumX) - f(sumL * sumXL)) / D);
			if (thisMin > 0) {
				thisMin = 0;
				thisScale = f(sumXL / sumL2);
			}
			let err = 0;
			for (let i = 0; i < n; i++) {
				const diff = f(f(f(thisScale * aux[i]) + thisMin) - x[xo + i]);
				err = f(err + f(w[i] * f(diff * diff)));
			}
			if (err < bestError) {
				L.set(aux, lo);
				bestError = err;
				scale = thisScale;
				min = thisMin;
			}
		}
	}
	return [scale, -min];
}

/** q4_K: 8 sub-blocks of 32 with a 6-bit scale and min each (make_qkx2_quants), super-block d and dmin as f16. */
function q4_kBlock(x: Float32Array, xo: number, b: Uint8Array, o: number): void {
	const L = new Uint8Array(256);
	const w = new Float32Array(32);
	const scales = new Float32Array(8), mins = new Float32Array(8);
	let maxScale = 0, maxMin = 0;
	for (let j = 0; j < 8; j++) {
		let sumX2 = 0;
		for (let l = 0; l < 32; l++) sumX2 = f(sumX2 + f(x[xo + 32 * j + l] * x[xo + 32 * j + l]));
		const avX = f(Math.sqrt(f(sumX2 / 32)));
		for (let l = 0; l < 32; l++) w[l] = f(avX + Math.abs(x[xo + 32 * j + l]));
		const [s, m] = makeQkx2(32, 15, x, xo + 32 * j, w, L, 32 * j, -1, f(0.1), 20);
		scales[j] = s;
		mins[j] = m;
		if (scales[j] > maxScale) maxScale = scales[j];
		if (mins[j] > maxMin) maxMin = mins[j];
	}
	const invScale = maxScale > 0 ? f(63 / maxScale) : 0;
	const invMin = maxMin > 0 ? f(63 / maxMin) : 0;
	const sc = o + 4;
	b.fill(0, sc, sc + 12);
	for (let j = 0; j < 8; j++) {
		const ls = Math.min(63, nearestInt(f(invScale * scales[j])) & 0xff);
		const lm = Math.min(63, nearestInt(f(invMin * mins[j])) & 0xff);
		if (j < 4) {
			b[sc + j] = ls;
			b[sc + j + 4] = lm;
		} else {
			b[sc + j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
			b[sc + j - 4] |= (ls >> 4) << 6;
			b[sc + j] |= (lm >> 4) << 6;
		}
	}
	putHalf(b, o, f(maxScale / 63));
	putHalf(b, o + 2, f(maxMin / 63));
	const d0 = half(b[o] | (b[o + 1] << 8)), dmin0 = half(b[o + 2] | (b[o + 3] << 8));
	for (let j = 0; j < 8; j++) {
		const [s, m] = scaleMinK4(j, b, sc);
		const d = f(d0 * s);
		if (!d) continue;
		const dm = f(dmin0 * m);
		for (let ii = 0; ii < 32; ii++) L[32 * j + ii] = clamp(nearestInt(f(f(x[xo + 32 * j + ii] + dm) / d)), 0, 15);
	}
	for (let j = 0; j < 4; j++) for (let l = 0; l < 32; l++) b[o + 16 + 32 * j + l] = L[64 * j + l] | (L[64 * j + 32 + l] << 4);
}

/**
 * ggml make_qx_quants with rmse_type 1 (weights x²) and no importance weights: a symmetric scale for n values at
 * levels −nmax..nmax−1, refined over 18 nearby scales. Levels (offset by nmax) go to L[lo ..]; returns the scale.
 */
function makeQx(n: number, nmax: number, x: Float32Array, xo: number, L: Uint8Array, lo: number): number {
	let max = 0, amax = 0;
	for (let i = 0; i < n; i++) {
		const ax = Math.abs(x[xo + i]);
		if (ax > amax) {
			amax = ax;
			max = x[xo + i];
		}
	}
	if (amax < GROUP_MAX_EPS) {
		L.fill(0, lo, lo + n);
		return 0;
	}
	const sums = (iscale: number, store: boolean): [number, number] => {
		let sumlx = 0, suml2 = 0;
		for (let i = 0; i < n; i++) {
			const v = x[xo + i];
			const l = clamp(nearestInt(f(iscale * v)), -nmax, nmax - 1);
			if (store) L[lo + i] = l + nmax;
			const w = f(v * v);
			sumlx = f(sumlx + f(f(w * v) * l));
			suml2 = f(suml2 + f(f(w * l) * l));
		}
		return [sumlx, suml2];
	};
	let [sumlx, suml2] = sums(f(-nmax / max), true);
	let scale = suml2 ? f(sumlx / suml2) : 0;
	let best = f(scale * sumlx);
	for (let is = -9; is <= 9; is++) {
		if (is === 0) continue;
		const iscale = f(-f(nmax + f(f(0.1) * is)) / max);
		[sumlx, suml2] = sums(iscale, false);
		if (suml2 > 0 && f(sumlx * sumlx) > f(best * suml2)) {
			sums(iscale, true);
			scale = f(sumlx / suml2);
			best = f(scale * sumlx);
		}
	}
	return scale;
}

/** q6_K: 16 sub-blocks of 16 with an int8 scale each (make_qx_quants), 6-bit levels split into ql (4) and qh (2). */
function q6_kBlock(x: Float32Array, xo: number, b: Uint8Array, o: number): void {
	const L = new Uint8Array(256);
	const scales = new Float32Array(16);
	let maxScale = 0, maxAbsScale = 0;
	for (let ib = 0; ib < 16; ib++) {
		scales[ib] = makeQx(16, 32, x, xo + 16 * ib, L, 16 * ib);
		const a = Math.abs(scales[ib]);
		if (a > maxAbsScale) {
			maxAbsScale = a;
			maxScale = scales[ib];
		}
	}
	b.fill(0, o, o + 210);
	if (maxAbsScale < GROUP_MAX_EPS) return; // all zero, d = 0
	const iscale = f(-128 / maxScale);
	putHalf(b, o + 208, f(1 / iscale));
	for (let ib = 0; ib < 16; ib++) b[o + 192 + ib] = Math.min(127, nearestInt(f(iscale * scales[ib]))) & 0xff;
	const d0 = half(b[o + 208] | (b[o + 209] << 8));
	for (let j = 0; j < 16; j++) {
		const d = f(d0 * ((b[o + 192 + j] << 24) >> 24));
		if (!d) continue;
		for (let ii = 0; ii < 16; ii++) L[16 * j + ii] = clamp(nearestInt(f(x[xo + 16 * j + ii] / d)), -32, 31) + 32;
	}
	for (let n = 0; n < 2; n++) {
		const ql = o + 64 * n, qh = o + 128 + 32 * n, j = 128 * n;
		for (let l = 0; l < 32; l++) {
			b[ql + l] = (L[j + l] & 0xf) | ((L[j + l + 64] & 0xf) << 4);
			b[ql + l + 32] = (L[j + l + 32] & 0xf) | ((L[j + l + 96] & 0xf) << 4);
			b[qh + l] = (L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6);
		}
	}
}

/** The types `convert --dtype` offers, plus q5_0, which llama-quantize (and so convert) uses as Q4_K's fallback. */
export type QuantizeType = 'q8_0' | 'q4_0' | 'q5_0' | 'q4_k' | 'q6_k' | 'f16' | 'bf16' | 'f32';

const BLOCK: Partial<Record<QType, (x: Float32Array, xo: number, b: Uint8Array, o: number) => void>> = {
	q8_0: q8_0Block, q4_0: q4_0Block, q5_0: q5_0Block, q4_k: q4_kBlock, q6_k: q6_kBlock,
};

/** A (rows, cols) float32 matrix stored as `qtype`; cols must be a multiple of the type's block size. */
export function quantize(x: Float32Array, rows: number, cols: number, qtype: QuantizeType): QMatrix {
	const { blockSize, blockBytes } = QTYPE_LAYOUT[qtype];
	if (cols % blockSize !== 0) throw new Error(`quantize: ${cols} columns are not whole ${qtype} blocks of ${blockSize}`);
	if (x.length !== rows * cols) throw new Error(`quantize: ${x.length} values for (${rows}, ${cols})`);
	const data = new Uint8Array(rows * rowBytes(qtype, cols));
	if (qtype === 'f32') data.set(new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
	else if (qtype === 'f16' || qtype === 'bf16') {
		const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
		for (let i = 0; i < x.length; i++) {
			const h = qtype === 'f16' ? floatToHalf(x[i]) : bf16(bits[i]);
			data[2 * i] = h & 0xff;
			data[2 * i + 1] = h >> 8;
		}
	} else {
		const block = BLOCK[qtype] as NonNullable<(typeof BLOCK)[QType]>;
		for (let i = 0; i < x.length / blockSize; i++) block(x, i * blockSize, data, i * blockBytes);
	}
	return { qtype, rows, cols, data };
}

function bf16(x: number): number {
	if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return (x >>> 16) | 0x40;
	return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}
