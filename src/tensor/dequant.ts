// Reference dequantizers for every stored type: plain loops over ggml's block layouts (ggml-quants.c
// dequantize_row_*), computed in float32 in ggml's order (Math.fround after each operation) so the values are the
// ones llama.cpp itself gets. Not fast: backends that cannot compute on blocks call these once, at upload.
import { f16ToF32 } from './dtypes.js';
import { QTYPE_LAYOUT, rowBytes, type QMatrix, type QType } from './qmatrix.js';

const f = Math.fround;
const h16 = new Uint16Array(1);
const h32 = new Float32Array(1);
/** float16 bits -> float32 value. */
export function half(bits: number): number {
	h16[0] = bits;
	f16ToF32(h16, h32);
	return h32[0];
}
const u16 = (b: Uint8Array, o: number) => b[o] | (b[o + 1] << 8);
const i8 = (v: number) => (v << 24) >> 24;

/** 6-bit scale and min j (0..7) of a Q4_K/Q5_K block from its 12 packed bytes at `s` (ggml get_scale_min_k4). */
export function scaleMinK4(j: number, b: Uint8Array, s: number): [number, number] {
	if (j < 4) return [b[s + j] & 63, b[s + j + 4] & 63];
	return [(b[s + j + 4] & 0xf) | ((b[s + j - 4] >> 6) << 4), (b[s + j + 4] >> 4) | ((b[s + j] >> 6) << 4)];
}

/** Dequantize `cols` values (a whole number of blocks) starting at byte `src` of `b` into out[o ..]. */
export function dequantizeRow(qtype: QType, b: Uint8Array, src: number, cols: number, out: Float32Array, o: number): void {
	const { blockSize, blockBytes } = QTYPE_LAYOUT[qtype];
	if (cols % blockSize !== 0) throw new Error(`dequantizeRow: ${cols} values are not whole ${qtype} blocks`);
	const nb = cols / blockSize;
	switch (qtype) {
		case 'f32': {
			const dv = new DataView(b.buffer, b.byteOffset + src, cols * 4);
			for (let i = 0; i < cols; i++) out[o + i] = dv.getFloat32(i * 4, true);
			return;
		}
		case 'f16':
			for (let i = 0; i < cols; i++) out[o + i] = half(u16(b, src + 2 * i));
			return;
		case 'bf16': {
			const dv = new DataView(new ArrayBuffer(4));
			for (let i = 0; i < cols; i++) {
				dv.setUint32(0, u16(b, src + 2 * i) << 16);
				out[o + i] = dv.getFloat32(0);
			}
			return;
		}
	}
	for (let i = 0; i < nb; i++) {
		const p = src + i * blockBytes; // this block's bytes
		const y = o + i * blockSize; // its first output
		switch (qtype) {
			case 'q8_0': { // d, qs[32]: y = q·d
				const d = half(u16(b, p));
				for (let j = 0; j < 32; j++) out[y + j] = f(i8(b[p + 2 + j]) * d);
				break;
			}
			case 'q4_0': { // d, qs[16]: low nibbles are values 0..15, high nibbles 16..31, both offset by 8
				const d = half(u16(b, p));
				for (let j = 0; j < 16; j++) {
					out[y + j] = f(((b[p + 2 + j] & 0xf) - 8) * d);
					out[y + j + 16] = f(((b[p + 2 + j] >> 4) - 8) * d);
				}
				break;
			}
			case 'q4_1': { // d, m, qs[16]: y = q·d + m
				const d = half(u16(b, p)), m = half(u16(b, p + 2));
				for (let j = 0; j < 16; j++) {
					out[y + j] = f(f((b[p + 4 + j] & 0xf) * d) + m);
					out[y + j + 16] = f(f((b[p + 4 + j] >> 4) * d) + m);
				}
				break;
			}
			case 'q5_0':
			case 'q5_1': { // d, [m], qh (32 fifth bits, u32 LE), qs[16]
				const one = qtype === 'q5_1';
				const d = half(u16(b, p)), m = one ? half(u16(b, p + 2)) : 0;
				const h = p + (one ? 4 : 2);
				const qh = (b[h] | (b[h + 1] << 8) | (b[h + 2] << 16) | (b[h + 3] << 24)) >>> 0;
				for (let j = 0; j < 16; j++) {
					const q = b[h + 4 + j];
					const x0 = (q & 0xf) | (((qh >>> j) << 4) & 0x10);
					const x1 = (q >> 4) | ((qh >>> (j + 12)) & 0x10);
					if (one) {
						out[y + j] = f(f(x0 * d) + m);
						out[y + j + 16] = f(f(x1 * d) + m);
					} else {
						out[y + j] = f((x0 - 16) * d);
						out[y + j + 16] = f((x1 - 16) * d);
					}
				}
				break;
			}
			case 'q4_k':
			case 'q5_k': { // d, dmin, scales[12] (8 pairs of 6-bit scale/min), [qh[32]], qs[128]; 8 sub-blocks of 32
				const five = qtype === 'q5_k';
				const d = half(u16(b, p)), dmin = half(u16(b, p + 2));
				const qh = p + 16, qs = p + (five ? 48 : 16);
				for (let j = 0; j < 4; j++) { // 64 values per j: the low nibbles of 32 bytes, then their high nibbles
					const [sc1, m1] = scaleMinK4(2 * j, b, p + 4);
					const [sc2, m2] = scaleMinK4(2 * j + 1, b, p + 4);
					const d1 = f(d * sc1), mm1 = f(dmin * m1), d2 = f(d * sc2), mm2 = f(dmin * m2);
					for (let l = 0; l < 32; l++) {
						const q = b[qs + 32 * j + l];
						const hi1 = five && b[qh + l] & (1 << (2 * j)) ? 16 : 0;
						const hi2 = five && b[qh + l] & (2 << (2 * j)) ? 16 : 0;
						out[y + 64 * j + l] = f(f(d1 * ((q & 0xf) + hi1)) - mm1);
						out[y + 64 * j + 32 + l] = f(f(d2 * ((q >> 4) + hi2)) - mm2);
					}
				}
				break;
			}
			case 'q6_k': { // ql[128], qh[64], scales[16] (int8), d; two halves of 128 values
				const d = half(u16(b, p + 208));
				for (let n = 0; n < 2; n++) {
					const ql = p + 64 * n, qh = p + 128 + 32 * n, sc = p + 192 + 8 * n, yy = y + 128 * n;
					for (let l = 0; l < 32; l++) {
						const is = l >> 4;
						const q1 = ((b[ql + l] & 0xf) | (((b[qh + l] >> 0) & 3) << 4)) - 32;
						const q2 = ((b[ql + l + 32] & 0xf) | (((b[qh + l] >> 2) & 3) << 4)) - 32;
						const q3 = ((b[ql + l] >> 4) | (((b[qh + l] >> 4) & 3) << 4)) - 32;
						const q4 = ((b[ql + l + 32] >> 4) | (((b[qh + l] >> 6) & 3) << 4)) - 32;
						out[yy + l] = f(f(d * i8(b[sc + is])) * q1);
						out[yy + l + 32] = f(f(d * i8(b[sc + is + 2])) * q2);
						out[yy + l + 64] = f(f(d * i8(b[sc + is + 4])) * q3);
						out[yy + l + 96] = f(f(d * i8(b[sc + is + 6])) * q4);
					}
				}
				break;
			}
		}
	}
}

/** The whole matrix as float32 (rows, cols). */
export function dequantize(q: QMatrix): Float32Array {
	const out = new Float32Array(q.rows * q.cols);
	const rb = rowBytes(q.qtype, q.cols);
	for (let r = 0; r < q.rows; r++) dequantizeRow(q.qtype, q.data, r * rb, q.cols, out, r * q.cols);
	return out;
}

/** Index (row-major) of the first value that dequantizes to NaN or ±Inf, or -1; one row of scratch at a time. */
export function firstNonFiniteQ(q: QMatrix): number {
	const row = new Float32Array(q.cols);
	const rb = rowBytes(q.qtype, q.cols);
	for (let r = 0; r < q.rows; r++) {
		dequantizeRow(q.qtype, q.data, r * rb, q.cols, row, 0);
		for (let i = 0; i < q.cols; i++) if (row[i] - row[i] !== 0) return r * q.cols + i;
	}
	return -1;
}
