// The first thing this project adds to gpu.js's code generation: a group sum (a kernel-level option, `groupSum: C`).
// gpu.js gives each thread one output (or one Array(4)) and no workgroup memory, so a projection's reduction over
// K had to be split across threads and finished by a second pass. With groupSum C, the 64 threads of a workgroup
// (64 consecutive thread indices) are C columns × 64/C parts: the values returned by the threads of one column
// (lane mod C) are summed in workgroup memory, and only the sum is written, at
//   out[⌊x / 64⌋·C + (x mod 64) mod C]            (× 4 for a kernel returning Array(4))
// so a kernel reads as before — a function of this.thread.x returning its share — and the sum over parts costs no
// pass. CpuRunner (runner.ts) implements the same meaning in JavaScript, which is what the tests prove the plans on.
//
// On WebGPU this is a transform of the WGSL gpu.js generates for a 1-D kernel: gpu.js's body (everything main runs
// after computing data_index) becomes a function returning vec4<f32>, each of its result writes a return; main calls
// it, stores the value in a workgroup array, and reduces that with barriers outside any branch (WGSL requires
// barriers in uniform control flow, so the body's early returns could not stay in main). Threads past the output
// contribute zeros. The transform refuses (throws at compile time) any source it does not recognise.
export const GROUP = 64; // gpu.js's workgroup size for a 1-D kernel

const MAIN_HEAD = '@compute @workgroup_size(64, 1, 1)\nfn main(@builtin(global_invocation_id) gid : vec3<u32>) {\n';
const BODY_START = '  let data_index : i32 = i32(flat_index);\n';
const SCALAR_WRITE = /result\[data_index\] = ([^;]*);\s*return;/g;
const VEC_WRITE = /result\[data_index \* 4 \+ 0\] = (\w+)\.x;\s*result\[data_index \* 4 \+ 1\] = \1\.y;\s*result\[data_index \* 4 \+ 2\] = \1\.z;\s*result\[data_index \* 4 \+ 3\] = \1\.w;\s*return;/g;

/** Whether C is a valid group-sum width: a power of two dividing 64. */
export const validGroup = (C: number): boolean => Number.isInteger(C) && C >= 1 && C <= GROUP && (C & (C - 1)) === 0;

/** gpu.js's WGSL for a 1-D kernel rewritten to sum each column's values over its workgroup (see above). */
export function groupSumWGSL(wgsl: string, C: number, components: 1 | 4): string {
	if (!validGroup(C)) throw new Error(`internal: group sum width ${C} is not a power of two up to ${GROUP}`);
	const head = wgsl.indexOf(MAIN_HEAD);
	const start = wgsl.indexOf(BODY_START, head);
	const end = wgsl.lastIndexOf('}');
	if (head < 0 || start < 0 || end < start) throw new Error('internal: group sum: not a 1-D gpu.js kernel');
	let body = wgsl.slice(start + BODY_START.length, end);
	body = components === 1
		? body.replace(SCALAR_WRITE, 'return vec4<f32>($1, 0.0, 0.0, 0.0);')
		: body.replace(VEC_WRITE, 'return $1;');
	if (/\bresult\s*\[|\breturn\s*;|\bgid\b|\bflat_index\b/.test(body)) throw new Error('internal: group sum: a result write it does not recognise');
	const fold = [];
	for (let w = GROUP / 2; w >= C; w /= 2) {
		fold.push(`  if (lane < ${w}u) { groupSums[lane] = groupSums[lane] + groupSums[lane + ${w}u]; }\n  workgroupBarrier();\n`);
	}
	const o = `(flat_index / ${GROUP}u) * ${C}u + lane`;
	const write = components === 1
		? `    result[${o}] = groupSums[lane].x;\n`
		: [0, 1, 2, 3].map((c) => `    result[(${o}) * 4u + ${c}u] = groupSums[lane][${c}];\n`).join('');
	return (
		wgsl.slice(0, head) +
		`var<workgroup> groupSums : array<vec4<f32>, ${GROUP}>;\n` +
		`fn groupBody(data_index : i32) -> vec4<f32> {\n${body}\n  return vec4<f32>(0.0);\n}\n` +
		'@compute @workgroup_size(64, 1, 1)\n' +
		'fn main(@builtin(global_invocation_id) gid : vec3<u32>, @builtin(local_invocation_index) lane : u32) {\n' +
		'  let flat_index : u32 = gid.x + gid.y * params.dispatchWidth;\n' +
		'  threadGid = vec3<u32>(flat_index, 0u, 0u);\n' +
		'  var v : vec4<f32> = vec4<f32>(0.0);\n' +
		'  if (flat_index < params.outputX) { v = groupBody(i32(flat_index)); }\n' +
		'  groupSums[lane] = v;\n' +
		'  workgroupBarrier();\n' +
		fold.join('') +
		`  if (lane < ${C}u) {\n${write}  }\n` +
		'}\n'
	);
}
