// A runner executes gpu.js kernel functions over buffers that stay where they are (the GPU-resident forward,
// src/model/resident.ts): weights are uploaded once, activations and recurrent state never leave the device, and
// a whole forward is one list of commands — kernel passes and buffer copies — submitted together, with one
// readback (the logits) at the end. Two runners:
//   WebGpuRunner (webgpu.ts)  gpu.js compiles each kernel to WGSL; passes are recorded into one command encoder
//   CpuRunner (below)         the same kernel functions called thread by thread in plain JavaScript: slow and
//                             obviously correct, so the plan (buffer wiring, layouts, state copies) is tested in CI
// Sizes and offsets are in elements: floats, or float16 values in a 16-bit buffer (halves.ts), which is bound whole.
import { GROUP, validGroup } from './group-sum.js';
import { halfValues, type HalfKind } from './halves.js';
import { validOutputs } from './wide.js';

export interface DeviceBuffer {
	readonly length: number;
	readonly half: HalfKind | null; // 16-bit elements, float16 or bfloat16 (halves.ts); null: float32
}

/** A range of a buffer, bound as a kernel argument or output. */
export interface View {
	readonly buf: DeviceBuffer;
	readonly offset: number;
	readonly length: number;
}

export const whole = (buf: DeviceBuffer): View => ({ buf, offset: 0, length: buf.length });
export const range = (buf: DeviceBuffer, offset: number, length: number): View => ({ buf, offset, length });

/** A kernel argument: an array (a view) or a scalar (baked into the pass when it is recorded). */
export type Arg = View | number;
export type ArgKind = 'array' | 'scalar';

export interface Program {
	readonly name: string;
	readonly params: readonly string[]; // the kernel function's parameters, in order
	readonly groupSum: number; // 0, or the columns per workgroup whose values are summed (group-sum.ts)
	readonly halves: Readonly<Record<string, HalfKind>>; // the arguments that are 16-bit buffers, and their kind (halves.ts)
	readonly outputs: number; // 0 (gpu.js's own: one value or 4 a thread), or the values each thread writes, in planes (wide.ts)
	readonly intIndex: boolean; // index sums computed in integers (int-index.ts)
}

/**
 * Options beyond gpu.js's own: `groupSum` C sums each column's values over its workgroup (group-sum.ts); `halves`
 * names the array arguments bound to 16-bit buffers (halves.ts); `outputs` M lets each thread write M values (wide.ts);
 * `intIndex` computes index sums in integers, for kernels whose index terms are whole numbers (int-index.ts).
 */
export interface ProgramOptions {
	groupSum?: number;
	halves?: Readonly<Record<string, HalfKind>>;
	outputs?: number;
	intIndex?: boolean;
}

/** How many floats a pass of `threads` writes: one value (or 4, or M) per thread, or per column of a workgroup. */
export function outputLength(p: Program, threads: number, components: number): number {
	if (p.outputs) return threads * p.outputs;
	if (!p.groupSum) return threads * components;
	if (threads % GROUP !== 0) throw new Error(`internal: ${p.name} sums groups of ${GROUP} threads; ${threads} is not a multiple`);
	return (threads / GROUP) * p.groupSum * components;
}

/** A recorded dispatch: a program with its arguments bound, `threads` invocations, writing `out`. */
export interface Pass {
	readonly program: Program;
}

export type Command = { pass: Pass } | { copy: { from: View; to: View } };

/** Recorded work, not yet submitted (Runner.prepare). */
export interface Prepared {
	readonly read: View;
}

export interface Runner {
	readonly name: string;
	/** A buffer of `length` floats, or of 16-bit values of kind `half` (weights only, uploaded and bound whole). */
	alloc(length: number, half?: HalfKind | null): DeviceBuffer;
	/** Write `data` at `to` (a float buffer). */
	upload(to: View, data: Float32Array): void;
	/** Fill a 16-bit buffer with these bits, of its kind (halves.ts sixteenBits). */
	uploadHalves(to: DeviceBuffer, bits: Uint16Array): void;
	/** Compile a kernel function; `kinds` says, by parameter name, which arguments are arrays and which scalars. */
	program(fn: Function, constants: Record<string, number>, kinds: Record<string, ArgKind>, options?: ProgramOptions): Promise<Program>;
	/** A dispatch of `threads` invocations writing `out`, the arguments given by parameter name. */
	pass(program: Program, args: Record<string, Arg>, out: View, threads: number): Pass;
	/** Run the commands in order as one submission; resolve with `read` copied back (or null). */
	run(commands: Command[], read?: View): Promise<Float32Array | null>;
	/** Record commands and the readback of `read` now, to submit later: recording can overlap the GPU's work. */
	prepare(commands: Command[], read: View): Prepared;
	/** Submit what prepare() recorded (once); resolve with `read` copied back. */
	submit(prepared: Prepared): Promise<Float32Array>;
	/** Drop what prepare() recorded without running it. */
	discard(prepared: Prepared): void;
	/** Copy now, in queue order with every earlier run. */
	copy(from: View, to: View): void;
	/** Read a view back (in queue order). */
	read(view: View): Promise<Float32Array>;
	free(buf: DeviceBuffer): void;
}

/** WebGPU's default limit of storage buffers per kernel (the arrays and the output); the CPU runner checks it too. */
export const MAX_STORAGE_BUFFERS = 8;
export function checkBindings(name: string, kinds: ArgKind[]): void {
	const n = kinds.filter((k) => k === 'array').length + 1;
	if (n > MAX_STORAGE_BUFFERS) throw new Error(`internal: kernel ${name} binds ${n} storage buffers; WebGPU allows ${MAX_STORAGE_BUFFERS}`);
}

/**
 * A kernel function's parameter names, in order, read from its source as gpu.js reads it (gpu.js binds arguments
 * by position; the plans name them, and these two functions put them in order).
 */
export function kernelParams(fn: Function): string[] {
	const list = /^function\s*[\w$]*\s*\(([^)]*)\)/.exec(fn.toString())?.[1];
	if (list === undefined) throw new Error(`internal: ${fn.name} is not a plain function`);
	return list.split(',').map((p) => p.trim()).filter(Boolean);
}

/** `named` in the order of `params`; throws when a parameter is missing or a name is not a parameter. */
export function positional<V>(name: string, params: readonly string[], named: Record<string, V>): V[] {
	const extra = Object.keys(named).filter((k) => !params.includes(k));
	const missing = params.filter((p) => !(p in named));
	if (extra.length || missing.length) {
		throw new Error(`internal: kernel ${name}(${params.join(', ')}) given ${[...missing.map((m) => `no ${m}`), ...extra.map((e) => `unknown ${e}`)].join(', ')}`);
	}
	return params.map((p) => named[p]);
}

/** The 16-bit arguments of `options`, refused unless each is an array parameter. */
export function checkHalves(name: string, params: readonly string[], kinds: ArgKind[], options: ProgramOptions): Readonly<Record<string, HalfKind>> {
	const halves = options.halves ?? {};
	for (const h of Object.keys(halves)) if (kinds[params.indexOf(h)] !== 'array') throw new Error(`internal: kernel ${name}: 16-bit ${h} is not an array parameter`);
	return halves;
}

/** Refuses a pass that binds a 16-bit buffer where the program reads floats (or another 16-bit kind), or the other way round. */
export function checkWidths(p: Program, args: Arg[]): void {
	p.params.forEach((name, i) => {
		const a = args[i];
		if (typeof a === 'number') return;
		const want = p.halves[name] ?? null;
		if (a.buf.half !== want) throw new Error(`internal: ${p.name} argument ${name} bound to a ${a.buf.half ?? 'float32'} buffer, not ${want ?? 'float32'}`);
		if (a.buf.half && (a.offset !== 0 || a.length !== a.buf.length)) throw new Error(`internal: ${p.name} argument ${name}: a 16-bit buffer is bound whole`);
	});
}

/** The group-sum width of `options` (0: none), refused unless a power of two up to 64. */
export function checkGroup(name: string, options: ProgramOptions): number {
	const C = options.groupSum ?? 0;
	if (C && !validGroup(C)) throw new Error(`internal: kernel ${name}: group sum width ${C} is not a power of two up to ${GROUP}`);
	return C;
}

/** The values a thread of `options` writes (0: gpu.js's own), refused unless valid and without a group sum. */
export function checkOutputs(name: string, options: ProgramOptions): number {
	const M = options.outputs ?? 0;
	if (M && !validOutputs(M)) throw new Error(`internal: kernel ${name}: ${M} outputs a thread is not a multiple of 4 in 8..128`);
	if (M && options.groupSum) throw new Error(`internal: kernel ${name}: a group sum writes one value a column, not ${M} a thread`);
	return M;
}

// ------------------------------------------------------------------------------------------------------------
// CpuRunner

class CpuBuffer implements DeviceBuffer {
	readonly data: Float32Array; // a 16-bit buffer holds its values
	constructor(readonly length: number, readonly half: HalfKind | null) {
		this.data = new Float32Array(length);
	}
}

interface CpuProgram extends Program {
	fn: Function;
	constants: Record<string, number>;
}

interface CpuPass extends Pass {
	program: CpuProgram;
	args: Arg[];
	out: View;
	threads: number;
}

const sub = (v: View) => (v.buf as CpuBuffer).data.subarray(v.offset, v.offset + v.length);

export class CpuRunner implements Runner {
	readonly name = 'cpu-reference';

	alloc(length: number, half: HalfKind | null = null): DeviceBuffer {
		return new CpuBuffer(length, half);
	}

	upload(to: View, data: Float32Array): void {
		if (to.buf.half) throw new Error('internal: a float upload into a 16-bit buffer');
		sub(to).set(data);
	}

	uploadHalves(to: DeviceBuffer, bits: Uint16Array): void {
		if (!to.half || bits.length !== to.length) throw new Error('internal: 16-bit upload does not fit its buffer');
		halfValues(to.half, bits, (to as CpuBuffer).data);
	}

	async program(fn: Function, constants: Record<string, number>, kinds: Record<string, ArgKind>, options: ProgramOptions = {}): Promise<Program> {
		const params = kernelParams(fn);
		const positionalKinds = positional(fn.name, params, kinds);
		checkBindings(fn.name, positionalKinds);
		const halves = checkHalves(fn.name, params, positionalKinds, options);
		const outputs = checkOutputs(fn.name, options);
		return { name: fn.name, params, fn, constants, groupSum: checkGroup(fn.name, options), halves, outputs, intIndex: !!options.intIndex } as CpuProgram;
	}

	pass(program: Program, args: Record<string, Arg>, out: View, threads: number): Pass {
		const list = positional(program.name, program.params, args);
		checkWidths(program, list);
		if (out.buf.half) throw new Error(`internal: ${program.name} writes a 16-bit buffer`);
		if (program.outputs && out.length < outputLength(program, threads, program.outputs)) throw new Error(`internal: ${program.name} output view too small`);
		return { program, args: list, out, threads } as CpuPass;
	}

	private exec(p: CpuPass): void {
		const args = p.args.map((a) => (typeof a === 'number' ? a : sub(a)));
		const out = sub(p.out);
		const self = { thread: { x: 0, y: 0, z: 0 }, output: { x: p.threads, y: 1, z: 1 }, constants: p.program.constants };
		const C = p.program.groupSum;
		if (C) outputLength(p.program, p.threads, 1); // checks the thread count
		for (let i = 0; i < p.threads; i++) {
			self.thread.x = i;
			const v = p.program.fn.apply(self, args) as number | number[];
			if (p.program.outputs && (typeof v === 'number' || v.length !== p.program.outputs)) {
				throw new Error(`internal: ${p.program.name} returned ${typeof v === 'number' ? 1 : v.length} values, not ${p.program.outputs}`);
			}
			if (p.program.outputs) {
				const v_ = v as number[]; // a wide kernel writes value j of thread i at j·threads + i (wide.ts)
				for (let j = 0; j < v_.length; j++) out[j * p.threads + i] = v_[j];
				continue;
			}
			// a group sum adds the thread's value into its column's output (group-sum.ts), else it is written
			const o = C ? Math.floor(i / GROUP) * C + ((i % GROUP) % C) : i;
			const add = C > 0 && i % GROUP >= C; // the column's first part (lanes below C) starts its sum
			if (typeof v === 'number') out[o] = add ? out[o] + v : v;
			else for (let c = 0; c < v.length; c++) out[o * v.length + c] = add ? out[o * v.length + c] + v[c] : v[c];
		}
	}

	async run(commands: Command[], read?: View): Promise<Float32Array | null> {
		for (const c of commands) {
			if ('pass' in c) this.exec(c.pass as CpuPass);
			else this.copy(c.copy.from, c.copy.to);
		}
		return read ? sub(read).slice() : null;
	}

	prepare(commands: Command[], read: View): Prepared {
		return { read, commands } as Prepared;
	}

	discard(): void {}

	async submit(prepared: Prepared): Promise<Float32Array> {
		return (await this.run((prepared as Prepared & { commands: Command[] }).commands, prepared.read))!;
	}

	copy(from: View, to: View): void {
		sub(to).set(sub(from).subarray(0, to.length));
	}

	async read(view: View): Promise<Float32Array> {
		return sub(view).slice();
	}

	free(): void {}
}
