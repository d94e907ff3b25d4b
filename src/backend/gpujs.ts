// gpu.js kernels behind the Kernels interface. One GPU instance per backend; kernels are built lazily and cached:
// projections per (weight matrix, T bucket), so each weight is a kernel constant uploaded once (webasm copies
// arguments on every call but constants only at build); the other families per (shape, T bucket).
// T is rounded up to a power of two (1, 2, 4, … 64) so a handful of kernel sizes serve every chunk and draft length.
import gpujs from 'gpu.js';
import type { GPU as GPUType, IKernelRunShortcut } from 'gpu.js';
import { epilogueOf, projection1, projection4, Epi, type Epilogue } from '../../kernels/projection.js';
import { normApply, normStats, type NormArgs, type NormDims } from '../../kernels/norms.js';
import { convSilu, type ConvArgs, type ConvDims } from '../../kernels/conv.js';
import { scanOutput, scanState, type ScanArgs, type ScanDims } from '../../kernels/scan.js';
import { logProbAt } from '../../kernels/softmax.js';
import { asColumns, type Columns, type Rows } from '../../kernels/layout.js';
import type { Matrix } from '../../kernels/types.js';
import type { BackendName, Kernels } from './types.js';

// gpu.js is CommonJS and its typings miss the `input` function; take both from the default export.
const { GPU, input } = gpujs as unknown as {
	GPU: typeof import('gpu.js').GPU;
	input: (value: Float32Array, size: number[]) => import('gpu.js').Input;
};
type Kernel = IKernelRunShortcut;

export const bucket = (T: number): number => {
	let b = 1;
	while (b < T) b *= 2;
	return b;
};

/** x (rows·cols) as a gpu.js 2-D input of rows rows, zero-padding missing rows (a padded row computes zeros). */
function rows2d(x: Float32Array, cols: number, rows: number) {
	if (x.length !== cols * rows) {
		const padded = new Float32Array(cols * rows);
		padded.set(x.subarray(0, Math.min(x.length, cols * rows)));
		x = padded;
	}
	return input(x, [cols, rows]);
}

/** A view as a 2-D input of `rows` rows of its stride whose row t starts at the view's first column. */
const view2d = (v: Columns, rows: number) => rows2d(v.offset ? v.data.subarray(v.offset) : v.data, v.stride, rows);

const ONE = new Float32Array(1);

export class GpuJsKernels implements Kernels {
	private readonly perWeight = new WeakMap<Matrix, Map<string, Kernel>>();
	private readonly perShape = new Map<string, Kernel>();

	constructor(readonly name: Exclude<BackendName, 'reference' | 'native'>, readonly gpu: GPUType) {}

	static create(name: Exclude<BackendName, 'reference' | 'native'>): GpuJsKernels {
		return new GpuJsKernels(name, new GPU({ mode: name }));
	}

	private build(source: Function, outputs: number, constants: Record<string, unknown>): Kernel {
		return this.gpu.createKernel(source as never, {
			output: [outputs],
			constants: constants as never,
			precision: 'single',
			tactic: 'precision',
			loopMaxIterations: 1 << 24,
		} as never) as Kernel;
	}

	private shaped(key: string, make: () => Kernel): Kernel {
		let k = this.perShape.get(key);
		if (!k) this.perShape.set(key, (k = make()));
		return k;
	}

	async linear(w: Matrix, x: Rows, T: number, epi?: Epilogue): Promise<Float32Array> {
		const Tb = bucket(T);
		const [mode, operand] = epilogueOf(epi);
		const xv = asColumns(x, w.cols);
		let kernels = this.perWeight.get(w);
		if (!kernels) this.perWeight.set(w, (kernels = new Map()));
		const key = `${Tb}:${xv.stride}:${mode}`;
		let k = kernels.get(key);
		if (!k) {
			const source = w.cols % 4 === 0 ? projection4 : projection1;
			k = this.build(source, Tb * w.rows, { N: w.rows, K: w.cols, epi: mode, W: input(w.data, [w.cols, w.rows]) });
			kernels.set(key, k);
		}
		const r = mode === Epi.Residual ? rows2d(operand!, w.rows, Tb) : input(ONE, [1, 1]);
		const out = (await k(view2d(xv, Tb), r, mode === Epi.Softplus ? operand! : ONE)) as Float32Array;
		return out.subarray(0, T * w.rows);
	}

	async norm({ x, w, b }: NormArgs, { T, d, eps }: NormDims) {
		const Tb = bucket(T);
		const layer = b ? 1 : 0;
		const constants = { D: d, eps, layer };
		const stats = this.shaped(`normStats:${Tb}:${d}:${eps}:${layer}`, () => this.build(normStats, 2 * Tb, constants));
		const apply = this.shaped(`normApply:${Tb}:${d}:${eps}:${layer}`, () => this.build(normApply, Tb * d, constants));
		const x2 = rows2d(x, d, Tb);
		const s = (await stats(x2)) as Float32Array;
		const y = (await apply(x2, s, w, b ?? this.zeros(d))) as Float32Array;
		return y.subarray(0, T * d);
	}

	private readonly zeroCache = new Map<number, Float32Array>();
	private zeros(n: number): Float32Array {
		let z = this.zeroCache.get(n);
		if (!z) this.zeroCache.set(n, (z = new Float32Array(n)));
		return z;
	}

	async convSilu({ x, state, w, b }: ConvArgs, { T, E, k }: ConvDims) {
		const Tb = bucket(T);
		const kernel = this.shaped(`conv:${Tb}:${E}:${k}:${x.stride}`, () => this.build(convSilu, Tb * E, { E, K: k }));
		const y = (await kernel(view2d(x, Tb), input(state, [k - 1, E]), input(w, [k, E]), b)) as Float32Array;
		return y.subarray(0, T * E);
	}

	async scan({ delta, x, B, C, z, A, D, h }: ScanArgs, { T, E, N }: ScanDims): Promise<Float32Array> {
		const Tb = bucket(T);
		const constants = { E, N };
		const stateK = this.shaped(`scanState:${Tb}:${E}:${N}:${B.stride}`, () => this.build(scanState, E * N, constants));
		const outK = this.shaped(`scanOutput:${Tb}:${E}:${N}:${C.stride}:${z.stride}`, () => this.build(scanOutput, E, constants));
		const delta2 = rows2d(delta, E, Tb);
		const x2 = rows2d(x, E, Tb);
		const B2 = view2d(B, Tb);
		const C2 = view2d(C, Tb);
		const z2 = view2d(z, Tb);
		const A2 = input(A, [N, E]);
		const y = new Float32Array(T * E);
		let cur = h;
		for (let t = 0; t < T; t++) {
			cur = (await stateK(delta2, x2, B2, A2, input(cur, [N, E]), t)) as Float32Array;
			y.set((await outK(input(cur, [N, E]), x2, C2, z2, D, t)) as Float32Array, t * E);
		}
		h.set(cur);
		return y;
	}

	async logProb(logits: Float32Array, T: number, V: number, target: ArrayLike<number>): Promise<Float64Array> {
		const Tb = bucket(T);
		const k = this.shaped(`logProb:${Tb}:${V}`, () => this.build(logProbAt, Tb, { V }));
		const tg = new Float32Array(Tb);
		for (let t = 0; t < T; t++) tg[t] = target[t];
		const out = (await k(rows2d(logits, V, Tb), tg)) as Float32Array;
		return Float64Array.from(out.subarray(0, T));
	}
}
