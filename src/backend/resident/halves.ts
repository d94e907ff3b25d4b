// This project's second addition to gpu.js's code generation: 16-bit arrays (a kernel-level option, `halves`).
// gpu.js binds every array as array<f32>, so a weight stored in 16 bits on disk took 32 on the device and a decode
// step streamed twice the bytes it needs. With `halves: { w: 'f16' }` (or 'bf16'), argument w is a buffer of
// float16 (bfloat16) values packed two to a u32, element 2m in the low half of word m, and the kernel still reads
// w[i] as element i: the JavaScript function is unchanged, and CpuRunner (runner.ts), which keeps such a buffer as
// the values themselves, gives the same meaning. Which weights go 16-bit: those whose every value is a float16
// exactly, else those whose every value is a bfloat16 (sixteenBits), so a checkpoint stored in F16 or BF16 keeps its
// values and the parity with PyTorch, and a float32 one is never rounded.
//
// On WebGPU this is a rewrite of the WGSL gpu.js generates: the binding's element type becomes u32 and its getter
// (gpu.js reads every array through get_user_NAME) takes the half of the word holding element i (float16:
// unpack2x16float; bfloat16: the half moved to the top of a float32's bits). Refused (at compile time) if the
// source reads the array any other way.
import { bf16ToF32, f16ToF32 } from '../../tensor/dtypes.js';

/** How a 16-bit buffer's elements are stored. */
export type HalfKind = 'f16' | 'bf16';

/** The float32 values of 16-bit elements `bits` of this kind, into `out`. */
export function halfValues(kind: HalfKind, bits: Uint16Array, out: Float32Array): void {
	if (kind === 'f16') f16ToF32(bits, out);
	else bf16ToF32(bits, out);
}

/** The 16-bit form that holds every value of `values` exactly: float16 first (10 mantissa bits), then bfloat16. */
export function sixteenBits(values: Float32Array): { kind: HalfKind; bits: Uint16Array } | null {
	const f16 = halfBits(values);
	if (f16) return { kind: 'f16', bits: f16 };
	const bf16 = bfloat16Bits(values);
	return bf16 ? { kind: 'bf16', bits: bf16 } : null;
}

/** The bfloat16 bits of `values` if every value is one (its low 16 bits zero; finite), else null. */
export function bfloat16Bits(values: Float32Array): Uint16Array | null {
	const u = new Uint32Array(values.buffer, values.byteOffset, values.length);
	const bits = new Uint16Array(values.length);
	for (let i = 0; i < u.length; i++) {
		const x = u[i];
		if (x & 0xffff || ((x >>> 23) & 0xff) === 0xff) return null;
		bits[i] = x >>> 16;
	}
	return bits;
}

/**
 * The float16 bits of `values` if every value is exactly a float16 (so storing them in 16 bits loses nothing), else
 * null. Read from the float32 bit patterns: a normal float16 is an exponent in range with the low 13 mantissa bits
 * zero; a subnormal one, a mantissa whose bits below 2^-24 are zero.
 */
export function halfBits(values: Float32Array): Uint16Array | null {
	const u = new Uint32Array(values.buffer, values.byteOffset, values.length);
	const bits = new Uint16Array(values.length);
	for (let i = 0; i < u.length; i++) {
		const x = u[i];
		const sign = (x >>> 16) & 0x8000;
		const exp = (x >>> 23) & 0xff;
		const mant = x & 0x7fffff;
		if ((x & 0x7fffffff) === 0) bits[i] = sign;
		else if (exp >= 113 && exp <= 142) {
			if (mant & 0x1fff) return null;
			bits[i] = sign | ((exp - 112) << 10) | (mant >>> 13);
		} else if (exp >= 103 && exp < 113) {
			const m = 0x800000 | mant, shift = 126 - exp;
			if (m & ((1 << shift) - 1)) return null;
			bits[i] = sign | (m >>> shift);
		} else return null;
	}
	return bits;
}

/** Bytes of a 16-bit buffer of `length` elements: whole u32 words, at least 16 bytes (a WebGPU binding's minimum here). */
export const halfBytes = (length: number): number => Math.max(16, Math.ceil(length / 8) * 16);

/** gpu.js's WGSL rewritten so that each argument named in `halves` is a packed 16-bit array of its kind (see above). */
export function halvesWGSL(wgsl: string, halves: Readonly<Record<string, HalfKind>>): string {
	let out = wgsl;
	for (const [name, kind] of Object.entries(halves)) {
		const id = `user_${name}`;
		const decl = new RegExp(`(var<storage, read> ${id} : array<)f32(>;)`);
		if (!decl.test(out)) throw new Error(`internal: 16-bit array ${name}: no read-only binding ${id} in the WGSL`);
		out = out.replace(decl, '$1u32$2');
		const getter = new RegExp(`(fn get_${id}\\(z : i32, y : i32, x : i32\\) -> f32 \\{\\n)  return ${id}\\[(u32\\([^\\n]*\\))\\];\\n\\}`);
		if (!getter.test(out)) throw new Error(`internal: 16-bit array ${name}: its getter is not the one gpu.js writes`);
		const body = kind === 'f16'
			? `  let pair : vec2<f32> = unpack2x16float(${id}[i >> 1u]);\n  return select(pair.x, pair.y, (i & 1u) == 1u);\n`
			: `  let word : u32 = ${id}[i >> 1u];\n  return bitcast<f32>(select(word << 16u, word & 0xffff0000u, (i & 1u) == 1u));\n`;
		out = out.replace(getter, `$1  let i : u32 = $2;\n${body}}`);
		const uses = out.split(`${id}[`).length - 1;
		if (uses !== 1) throw new Error(`internal: 16-bit array ${name} is read ${uses} times outside its getter`);
	}
	return out;
}
