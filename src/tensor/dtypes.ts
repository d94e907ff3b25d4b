// Element types of stored tensors and their conversions to and from float32.
// Files are little-endian (safetensors always, torch archives on every machine we support); checkpoint/load.ts
// refuses a big-endian host, so the typed-array views below can read file bytes directly.

/** The dtypes a checkpoint tensor may be loaded from. */
export type FloatDType = 'F32' | 'F16' | 'BF16';

/** Bytes per element of every safetensors dtype, so offsets can be validated even for tensors we never load. */
export const ITEM_SIZE: Readonly<Record<string, number>> = {
	BOOL: 1, U8: 1, I8: 1, F8_E4M3: 1, F8_E5M2: 1,
	I16: 2, U16: 2, F16: 2, BF16: 2,
	I32: 4, U32: 4, F32: 4,
	I64: 8, U64: 8, F64: 8,
};

export function isFloatDType(dtype: string): dtype is FloatDType {
	return dtype === 'F32' || dtype === 'F16' || dtype === 'BF16';
}

// A 64K-entry table makes f16 -> f32 a single lookup per element (it is the hot loop when loading F16 files).
let halfTable: Float32Array | undefined;
function getHalfTable(): Float32Array {
	if (halfTable) return halfTable;
	const t = new Float32Array(65536);
	for (let h = 0; h < 65536; h++) {
		const sign = h & 0x8000 ? -1 : 1;
		const exp = (h >> 10) & 0x1f;
		const mant = h & 0x3ff;
		if (exp === 0) t[h] = sign * mant * 2 ** -24;
		else if (exp === 31) t[h] = mant ? NaN : sign * Infinity;
		else t[h] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
	}
	return (halfTable = t);
}

export function f16ToF32(src: Uint16Array, dst: Float32Array): void {
	const t = getHalfTable();
	for (let i = 0; i < src.length; i++) dst[i] = t[src[i]];
}

export function bf16ToF32(src: Uint16Array, dst: Float32Array): void {
	// bf16 is the top half of an f32: shift the bits into place through an integer view of the output.
	const out = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
	for (let i = 0; i < src.length; i++) out[i] = src[i] << 16;
}

const scratchF = new Float32Array(1);
const scratchU = new Uint32Array(scratchF.buffer);

/** float32 -> float16 bits, round to nearest even; overflow gives +-Inf (callers check range first). */
export function floatToHalf(v: number): number {
	scratchF[0] = v;
	return halfBits(scratchU[0]);
}

/** float32 -> bfloat16 bits, round to nearest even; NaN stays NaN. */
export function floatToBFloat16(v: number): number {
	scratchF[0] = v;
	return bfloat16Bits(scratchU[0]);
}

// The encoders work on the float's bit pattern so that whole tensors can be converted through an integer view.
function halfBits(x: number): number {
	const sign = (x >>> 16) & 0x8000;
	const exp = (x >>> 23) & 0xff;
	let mant = x & 0x7fffff;
	if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
	const e = exp - 127 + 15;
	if (e >= 0x1f) return sign | 0x7c00;
	if (e <= 0) {
		// Subnormal half: value = m * 2^-24, so m = (mant with its implicit bit) >> (14 - e).
		if (e < -10) return sign;
		mant |= 0x800000;
		const shift = 14 - e;
		let half = mant >>> shift;
		const rem = mant & ((1 << shift) - 1);
		const halfway = 1 << (shift - 1);
		if (rem > halfway || (rem === halfway && half & 1)) half++;
		return sign | half;
	}
	let half = (e << 10) | (mant >>> 13);
	const rem = mant & 0x1fff;
	if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++; // a carry into the exponent is the correct rounding
	return sign | half;
}

function bfloat16Bits(x: number): number {
	if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return (x >>> 16) | 0x40;
	return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Index of the first NaN or +-Inf, or -1. */
export function firstNonFinite(a: Float32Array): number {
	for (let i = 0; i < a.length; i++) {
		const v = a[i];
		if (v - v !== 0) return i; // NaN - NaN and Inf - Inf are NaN; finite - itself is 0
	}
	return -1;
}

/** Encode float32 values as raw little-endian bytes of the given dtype. */
export function encodeFloats(data: Float32Array, dtype: FloatDType): Uint8Array {
	if (dtype === 'F32') return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
	const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
	const out = new Uint16Array(data.length);
	if (dtype === 'F16') for (let i = 0; i < bits.length; i++) out[i] = halfBits(bits[i]);
	else for (let i = 0; i < bits.length; i++) out[i] = bfloat16Bits(bits[i]);
	return new Uint8Array(out.buffer);
}

/** Decode raw little-endian bytes (a whole number of elements) of a float dtype into a new Float32Array. */
export function decodeFloats(bytes: Uint8Array, dtype: FloatDType): Float32Array {
	const size = ITEM_SIZE[dtype];
	const n = bytes.byteLength / size;
	const out = new Float32Array(n);
	if (dtype === 'F32') {
		new Uint8Array(out.buffer).set(bytes);
		return out;
	}
	// Uint16Array views need 2-byte alignment; copy only when the source is misaligned.
	const src =
		bytes.byteOffset % 2 === 0
			? new Uint16Array(bytes.buffer, bytes.byteOffset, n)
			: new Uint16Array(bytes.slice().buffer, 0, n);
	if (dtype === 'F16') f16ToF32(src, out);
	else bf16ToF32(src, out);
	return out;
}
