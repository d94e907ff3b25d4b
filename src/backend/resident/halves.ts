// This project's second addition to gpu.js's code generation: 16-bit arrays (a kernel-level option, `halves`).
// gpu.js binds every array as array<f32>, so a weight stored in 16 bits on disk took 32 on the device and a decode
// step streamed twice the bytes it needs. With `halves: ['w']`, argument w is a buffer of float16 values packed two
// to a u32 (element 2m in the low half of word m, as WGSL's unpack2x16float reads it), and the kernel still reads
// w[i] as element i: the JavaScript function is unchanged, and CpuRunner (runner.ts), which keeps such a buffer as
// the float16 values themselves, gives the same meaning. Which weights go 16-bit: those whose every value is a
// float16 exactly (halfBits), so a checkpoint stored in F16 (or BF16 with every value in float16's normal range) keeps its values and
// the parity with PyTorch, and a float32 one is never rounded.
//
// On WebGPU this is a rewrite of the WGSL gpu.js generates: the binding's element type becomes u32 and its getter
// (gpu.js reads every array through get_user_NAME) unpacks the word holding element i. Refused (at compile time)
// if the source reads the array any other way.
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

/** gpu.js's WGSL rewritten so that each argument in `names` is a packed float16 array (see above). */
export function halvesWGSL(wgsl: string, names: readonly string[]): string {
	let out = wgsl;
	for (const name of names) {
		const id = `user_${name}`;
		const decl = new RegExp(`(var<storage, read> ${id} : array<)f32(>;)`);
		if (!decl.test(out)) throw new Error(`internal: 16-bit array ${name}: no read-only binding ${id} in the WGSL`);
		out = out.replace(decl, '$1u32$2');
		const getter = new RegExp(`(fn get_${id}\\(z : i32, y : i32, x : i32\\) -> f32 \\{\\n)  return ${id}\\[(u32\\([^\\n]*\\))\\];\\n\\}`);
		if (!getter.test(out)) throw new Error(`internal: 16-bit array ${name}: its getter is not the one gpu.js writes`);
		out = out.replace(getter, `$1  let i : u32 = $2;\n  let pair : vec2<f32> = unpack2x16float(${id}[i >> 1u]);\n  return select(pair.x, pair.y, (i & 1u) == 1u);\n}`);
		const uses = out.split(`${id}[`).length - 1;
		if (uses !== 1) throw new Error(`internal: 16-bit array ${name} is read ${uses} times outside its getter`);
	}
	return out;
}
