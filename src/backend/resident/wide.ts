// This project's third addition to gpu.js's code generation: more outputs per thread (a kernel-level option,
// `outputs: M`). gpu.js lets a thread return one value or an Array(4), so a matmul thread computes at most 4
// outputs and loads a weight for every 4 multiply-adds; a thread that computes 8 rows × 4 positions loads 12 values
// for 32. With outputs M (a multiple of 4, up to 128), the kernel function ends in one `return [v0, …, v(M−1)]` of
// M local variables, and of a pass of n threads, thread i writes value j at out[j·n + i]: planes of one value per
// thread, so that neighbouring threads write (and the next pass reads) neighbouring floats. CpuRunner (runner.ts)
// implements the same meaning.
//
// On WebGPU it is two rewrites around gpu.js: the source gpu.js translates returns only the first four (an
// Array(4), which gpu.js knows), and in the WGSL the write of that vec4 becomes M writes of the variables, which
// gpu.js declared at the function's top level as user_NAME. Refused (at compile time) where either is not found.
export const MAX_OUTPUTS = 128;

/** Whether M is a valid output count: a multiple of 4 above 4, up to MAX_OUTPUTS. */
export const validOutputs = (M: number): boolean => Number.isInteger(M) && M > 4 && M <= MAX_OUTPUTS && M % 4 === 0;

const RETURN_LIST = /return\s*\[([^\]]*)\]\s*;?/g;
const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** A wide kernel's source as gpu.js is given it (its return cut to the first four) and the names it returns. */
export function wideSource(fn: Function, M: number): { source: string; names: string[] } {
	if (!validOutputs(M)) throw new Error(`internal: ${fn.name}: ${M} outputs a thread is not a multiple of 4 in 8..${MAX_OUTPUTS}`);
	const src = fn.toString();
	const returns = [...src.matchAll(RETURN_LIST)];
	if (returns.length !== 1) throw new Error(`internal: ${fn.name}: a kernel of ${M} outputs needs exactly one return [...], found ${returns.length}`);
	const [whole, list] = returns[0];
	const names = list.split(',').map((s) => s.trim()).filter(Boolean);
	if (names.length !== M || !names.every((n) => IDENTIFIER.test(n))) {
		throw new Error(`internal: ${fn.name}: its return lists ${names.length} values; ${M} local variables expected`);
	}
	const at = returns[0].index!;
	return { source: `${src.slice(0, at)}return [${names.slice(0, 4).join(', ')}];${src.slice(at + whole.length)}`, names };
}

const VEC_WRITE = /let (\w+) : vec4<f32> = vec4<f32>\(([^)]*)\);\s*result\[data_index \* 4 \+ 0\] = \1\.x;\s*result\[data_index \* 4 \+ 1\] = \1\.y;\s*result\[data_index \* 4 \+ 2\] = \1\.z;\s*result\[data_index \* 4 \+ 3\] = \1\.w;\s*return;/g;

/** gpu.js's WGSL for a wide kernel (wideSource) rewritten to write all of `names`, in planes (see above). */
export function wideWGSL(wgsl: string, names: string[]): string {
	const writes = [...wgsl.matchAll(VEC_WRITE)];
	if (writes.length !== 1) throw new Error(`internal: wide kernel: ${writes.length} result writes in the WGSL, one expected`);
	const first = writes[0][2].split(',').map((s) => s.trim());
	if (first.join() !== names.slice(0, 4).map((n) => `user_${n}`).join()) throw new Error(`internal: wide kernel: the WGSL returns ${first.join(', ')}`);
	for (const n of names) {
		if (!new RegExp(`\\b(var|let) user_${n.replace(/\$/g, '\\$')} : f32`).test(wgsl)) throw new Error(`internal: wide kernel: no f32 variable user_${n} in the WGSL`);
	}
	const stores = names.map((n, j) => `result[${j} * i32(params.outputX) + data_index] = user_${n};`).join('\n');
	return wgsl.replace(VEC_WRITE, `${stores}\nreturn;`);
}
