// The WebGPU runner (runner.ts): gpu.js translates each kernel function to WGSL and builds its compute pipeline;
// this file only binds buffers and records dispatches. A pass's uniform block follows gpu.js's layout for a
// 1-D kernel — [outputX, outputY, outputZ, dispatchWidth], one vec4 of dims per array argument, then the
// scalars — and is written once, when the pass is recorded; so is its bind group. A run is one command
// encoder with one compute pass between copies, one submit and at most one mapAsync.
import type { GPU as GPUType } from 'gpu.js';
import { groupSumWGSL } from './group-sum.js';
import { halfBytes, halvesWGSL, type HalfKind } from './halves.js';
import { wideSource, wideWGSL } from './wide.js';
import { intIndexWGSL } from './int-index.js';
import { checkBindings, checkGroup, checkHalves, checkOutputs, checkWidths, kernelParams, outputLength, positional, type Arg, type ArgKind, type Command, type DeviceBuffer, type Pass, type Prepared, type Program, type ProgramOptions, type Runner, type View } from './runner.js';

// WebGPU's numeric flags (pinned by the spec; the globals exist only where Dawn is loaded).
const MAP_READ = 0x0001, COPY_SRC = 0x0004, COPY_DST = 0x0008, UNIFORM = 0x0040, STORAGE = 0x0080;

/* eslint-disable @typescript-eslint/no-explicit-any */
type Gpu = any; // GPUDevice and friends: Dawn's objects, untyped here to keep @webgpu/types out of the build

interface BuiltKernel {
	_device: Gpu;
	computePipeline: Gpu;
	bindGroupLayout: Gpu;
	paramsLayout: {
		arrayArgs: { index: number; dimsOffset: number }[];
		scalarArgs: { index: number; offset: number; type: string }[];
		bufferConstants: { buffer: Gpu }[];
		byteLength: number;
	};
	componentCount: number;
	_computeDispatch(threadDim: number[]): { groups: number[]; dispatchWidth: number };
	build(...args: unknown[]): Promise<void>;
	assembleWGSL(): string;
}

class WebGpuBuffer implements DeviceBuffer {
	constructor(readonly gpu: Gpu, readonly length: number, readonly half: HalfKind | null) {}
}

interface WebGpuProgram extends Program {
	kernel: BuiltKernel;
}

interface WebGpuPass extends Pass {
	pipeline: Gpu;
	bindGroup: Gpu;
	groups: number[];
}

const gpuOf = (v: View) => (v.buf as WebGpuBuffer).gpu;

/** Passes per submission in run() (see record). */
export const SUBMIT_EVERY = 64;

export class WebGpuRunner implements Runner {
	readonly name = 'webgpu';
	private device: Gpu = null;
	private readonly staging = new Map<number, Gpu[]>(); // idle staging buffers by size

	constructor(private readonly gpu: GPUType) {}

	private get dev(): Gpu {
		if (!this.device) throw new Error('internal: compile a program before allocating (the device comes with it)');
		return this.device;
	}

	async program(fn: Function, constants: Record<string, number>, named: Record<string, ArgKind>, options: ProgramOptions = {}): Promise<Program> {
		const params = kernelParams(fn);
		const kinds = positional(fn.name, params, named);
		checkBindings(fn.name, kinds);
		const groupSum = checkGroup(fn.name, options);
		const halves = checkHalves(fn.name, params, kinds, options);
		const outputs = checkOutputs(fn.name, options);
		const wide = outputs ? wideSource(fn, outputs) : null; // gpu.js is given the first four (wide.ts)
		const shortcut = this.gpu.createKernel((wide?.source ?? fn) as never, {
			output: [64],
			constants: constants as never,
			precision: 'single',
			loopMaxIterations: 1 << 24,
		} as never) as unknown as { kernel: BuiltKernel };
		const kernel = shortcut.kernel;
		const intIndex = !!options.intIndex;
		if (groupSum || outputs || intIndex || Object.keys(halves).length) {
			// gpu.js assembles the WGSL in build(), after translating the body: rewrite it there (group-sum.ts, halves.ts,
			// wide.ts, int-index.ts)
			const assemble = kernel.assembleWGSL.bind(kernel);
			kernel.assembleWGSL = () => {
				const translated = assemble();
				const wgsl = halvesWGSL(intIndex ? intIndexWGSL(translated) : translated, halves);
				if (wide) return wideWGSL(wgsl, wide.names);
				return groupSum ? groupSumWGSL(wgsl, groupSum, kernel.componentCount === 1 ? 1 : 4) : wgsl;
			};
		}
		// gpu.js infers argument types from sample values: arrays become storage buffers, numbers f32 scalars.
		await kernel.build(...kinds.map((k) => (k === 'array' ? new Float32Array(4) : 0.5)));
		this.device ??= kernel._device;
		return { name: fn.name, params, kernel, groupSum, halves, outputs, intIndex } as WebGpuProgram;
	}

	alloc(length: number, half: HalfKind | null = null): DeviceBuffer {
		const size = half ? halfBytes(length) : Math.max(16, Math.ceil((length * 4) / 16) * 16);
		return new WebGpuBuffer(this.dev.createBuffer({ size, usage: STORAGE | COPY_SRC | COPY_DST }), length, half);
	}

	upload(to: View, data: Float32Array): void {
		if (data.length > to.length) throw new Error('internal: upload larger than its view');
		if (to.buf.half) throw new Error('internal: a float upload into a 16-bit buffer');
		this.dev.queue.writeBuffer(gpuOf(to), to.offset * 4, data.buffer, data.byteOffset, data.byteLength);
	}

	uploadHalves(to: DeviceBuffer, bits: Uint16Array): void {
		if (!to.half || bits.length !== to.length) throw new Error('internal: 16-bit upload does not fit its buffer');
		const words = new Uint16Array(halfBytes(bits.length) / 2); // two to a word, element 2m in the low half (little-endian)
		words.set(bits);
		this.dev.queue.writeBuffer((to as WebGpuBuffer).gpu, 0, words.buffer, 0, words.byteLength);
	}

	pass(program: Program, named: Record<string, Arg>, out: View, threads: number): Pass {
		const { kernel } = program as WebGpuProgram;
		const args = positional(program.name, program.params, named);
		checkWidths(program, args);
		if (out.buf.half) throw new Error(`internal: ${program.name} writes a 16-bit buffer`);
		const layout = kernel.paramsLayout;
		const dispatch = kernel._computeDispatch([threads, 1, 1]);
		const params = new ArrayBuffer(layout.byteLength);
		const u32 = new Uint32Array(params), i32 = new Int32Array(params), f32 = new Float32Array(params);
		u32.set([threads, 1, 1, dispatch.dispatchWidth]);
		const entries: { binding: number; resource: { buffer: Gpu; offset?: number; size?: number } }[] = [];
		const bind = (v: View) => {
			if (v.buf.half) return { buffer: gpuOf(v), offset: 0, size: halfBytes(v.length) }; // bound whole (checkWidths)
			if ((v.offset * 4) % 256 !== 0) throw new Error(`internal: binding offset ${v.offset} is not 256-byte aligned`);
			return { buffer: gpuOf(v), offset: v.offset * 4, size: v.length * 4 };
		};
		layout.arrayArgs.forEach((rec, i) => {
			const v = args[rec.index];
			if (typeof v === 'number') throw new Error(`internal: ${program.name} argument ${rec.index} must be an array`);
			u32.set([v.length, 1, 1, v.length], rec.dimsOffset / 4);
			entries.push({ binding: 1 + i, resource: bind(v) });
		});
		for (const rec of layout.scalarArgs) {
			const v = args[rec.index];
			if (typeof v !== 'number') throw new Error(`internal: ${program.name} argument ${rec.index} must be a number`);
			if (rec.type === 'Integer') i32[rec.offset / 4] = v;
			else f32[rec.offset / 4] = v;
		}
		if (out.length < outputLength(program, threads, kernel.componentCount)) throw new Error(`internal: ${program.name} output view too small`);
		const paramsBuffer = this.dev.createBuffer({ size: layout.byteLength, usage: UNIFORM | COPY_DST });
		this.dev.queue.writeBuffer(paramsBuffer, 0, params);
		entries.unshift({ binding: 0, resource: { buffer: paramsBuffer } });
		const outBinding = 1 + layout.arrayArgs.length;
		entries.push({ binding: outBinding, resource: bind(out) });
		layout.bufferConstants.forEach((c, i) => entries.push({ binding: outBinding + 1 + i, resource: { buffer: c.buffer } }));
		const bindGroup = this.dev.createBindGroup({ layout: kernel.bindGroupLayout, entries });
		return { program, pipeline: kernel.computePipeline, bindGroup, groups: dispatch.groups } as WebGpuPass;
	}

	/**
	 * Record commands into an encoder, one compute pass between copies. With `submitEvery`, every that many passes
	 * are submitted at once, so the GPU starts on the first layers while the host still records the rest (recording
	 * a pass costs a few µs of host time through Dawn's binding). Returns the encoder holding the rest.
	 */
	private record(commands: Command[], submitEvery: number): Gpu {
		let encoder = this.dev.createCommandEncoder();
		let pass: Gpu = null;
		let pipeline: Gpu = null;
		let recorded = 0;
		for (const c of commands) {
			if ('pass' in c) {
				const p = c.pass as WebGpuPass;
				if (!pass) {
					pass = encoder.beginComputePass();
					pipeline = null;
				}
				if (p.pipeline !== pipeline) pass.setPipeline((pipeline = p.pipeline));
				pass.setBindGroup(0, p.bindGroup);
				pass.dispatchWorkgroups(p.groups[0], p.groups[1], p.groups[2]);
				if (++recorded % submitEvery === 0) {
					pass.end();
					pass = null;
					this.dev.queue.submit([encoder.finish()]);
					encoder = this.dev.createCommandEncoder();
				}
			} else {
				if (pass) {
					pass.end();
					pass = null;
				}
				const { from, to } = c.copy;
				encoder.copyBufferToBuffer(gpuOf(from), from.offset * 4, gpuOf(to), to.offset * 4, Math.min(from.length, to.length) * 4);
			}
		}
		if (pass) pass.end();
		return encoder;
	}

	async run(commands: Command[], read?: View): Promise<Float32Array | null> {
		const encoder = this.record(commands, SUBMIT_EVERY);
		if (!read) {
			this.dev.queue.submit([encoder.finish()]);
			return null;
		}
		return this.finishWithRead(encoder, read);
	}

	private async finishWithRead(encoder: Gpu, read: View): Promise<Float32Array> {
		const staging = this.takeStaging(read);
		encoder.copyBufferToBuffer(gpuOf(read), read.offset * 4, staging, 0, read.length * 4);
		this.dev.queue.submit([encoder.finish()]);
		return this.readStaging(staging, read);
	}

	/** A staging buffer for `read`, owned by the caller until readStaging gives it back. */
	private takeStaging(read: View): Gpu {
		const bytes = Math.ceil((read.length * 4) / 16) * 16;
		const pool = this.staging.get(bytes);
		return pool?.pop() ?? this.dev.createBuffer({ size: bytes, usage: MAP_READ | COPY_DST });
	}

	private async readStaging(staging: Gpu, read: View): Promise<Float32Array> {
		await staging.mapAsync(MAP_READ);
		const out = new Float32Array(staging.getMappedRange(0, read.length * 4).slice(0));
		staging.unmap();
		const bytes = Math.ceil((read.length * 4) / 16) * 16;
		this.staging.set(bytes, [...(this.staging.get(bytes) ?? []), staging]);
		return out;
	}

	prepare(commands: Command[], read: View): Prepared {
		const encoder = this.record(commands, Infinity);
		const staging = this.takeStaging(read);
		encoder.copyBufferToBuffer(gpuOf(read), read.offset * 4, staging, 0, read.length * 4);
		return { read, buffer: encoder.finish(), staging } as Prepared;
	}

	submit(prepared: Prepared): Promise<Float32Array> {
		const { buffer, staging } = prepared as Prepared & { buffer: Gpu; staging: Gpu };
		this.dev.queue.submit([buffer]);
		return this.readStaging(staging, prepared.read);
	}

	discard(prepared: Prepared): void {
		const { staging } = prepared as Prepared & { staging: Gpu };
		const bytes = Math.ceil((prepared.read.length * 4) / 16) * 16;
		this.staging.set(bytes, [...(this.staging.get(bytes) ?? []), staging]);
	}

	copy(from: View, to: View): void {
		void this.run([{ copy: { from, to } }]);
	}

	read(view: View): Promise<Float32Array> {
		return this.finishWithRead(this.dev.createCommandEncoder(), view);
	}

	free(buf: DeviceBuffer): void {
		(buf as WebGpuBuffer).gpu.destroy();
	}
}
