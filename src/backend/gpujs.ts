// gpu.js kernels behind the Kernels interface. One GPU instance per backend; kernels are built lazily and cached:
// projections per (weight matrix, T bucket), so each weight is a kernel constant uploaded once (webasm copies
// arguments on every call but constants only at build); the other families per (shape, T bucket).
// T is rounded up to a power of two (1, 2, 4, … 64) so a handful of kernel sizes serve every chunk and draft length.
import gpujs from 'gpu.js';
import type { GPU as GPUType, IKernelRunShortcut } from 'gpu.js';
import { projection1, projection4, EPI_NONE, EPI_RESIDUAL, EPI_SOFTPLUS } from '../../kernels/projection.js';
import { normApply, normStats } from '../../kernels/norms.js';
import { convSilu } from '../../kernels/conv.js';
import { scanOutput, scanState } from '../../kernels/scan.js';
import { logProbAt } from '../../kernels/softmax.js';
import type { Matrix } from '../../kernels/types.js';
import type { BackendName, Epilogue, Kernels } from './types.js';

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

	async linear(w: Matrix, x: Float32Array, T: number, S: number, epi: Epilogue = {}): Promise<Float32Array> {
		const Tb = bucket(T);
		const mode = epi.residual ? EPI_RESIDUAL : epi.softplusBias ? EPI_SOFTPLUS : EPI_NONE;
		let kernels = this.perWeight.get(w);
		if (!kernels) this.perWeight.set(w, (kernels = new Map()));
		const key = `${Tb}:${S}:${mode}`;
		let k = kernels.get(key);
		if (!k) {
			const source = w.cols % 4 === 0 ? projection4 : projection1;
			k = this.build(source, Tb * w.rows, { N: w.rows, K: w.cols, epi: mode, W: input(w.data, [w.cols, w.rows]) });
			kernels.set(key, k);
		}
		const r = epi.residual ? rows2d(epi.residual, w.rows, Tb) : input(ONE, [1, 1]);
		const out = (await k(rows2d(x, S, Tb), r, epi.softplusBias ?? ONE)) as Float32Array;
		return out.subarray(0, T * w.rows);
	}

	async norm(x: Float32Array, T: number, d: number, w: Float32Array, b: Float32Array | undefined, eps: number) {
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

	async convSilu(xz: Float32Array, T: number, E: number, k: number, state: Float32Array, w: Float32Array, b: Float32Array) {
		const Tb = bucket(T);
		const kernel = this.shaped(`conv:${Tb}:${E}:${k}`, () => this.build(convSilu, Tb * E, { E, K: k }));
		const y = (await kernel(rows2d(xz, 2 * E, Tb), input(state, [k - 1, E]), input(w, [k, E]), b)) as Float32Array;
		return y.subarray(0, T * E);
	}

	async scan(
		delta: Float32Array, xs: Float32Array, dbc: Float32Array, xz: Float32Array,
		A: Float32Array, D: Float32Array, h: Float32Array, T: number, E: number, N: number, R: number,
	): Promise<Float32Array> {
		const Tb = bucket(T);
		const constants = { E, N, R };
		const stateK = this.shaped(`scanState:${Tb}:${E}:${N}:${R}`, () => this.build(scanState, E * N, constants));
		const outK = this.shaped(`scanOutput:${Tb}:${E}:${N}:${R}`, () => this.build(scanOutput, E, constants));
		const delta2 = rows2d(delta, E, Tb);
		const xs2 = rows2d(xs, E, Tb);
		const dbc2 = rows2d(dbc, R + 2 * N, Tb);
		const xz2 = rows2d(xz, 2 * E, Tb);
		const A2 = input(A, [N, E]);
		const y = new Float32Array(T * E);
		let cur = h;
		for (let t = 0; t < T; t++) {
			cur = (await stateK(delta2, xs2, dbc2, A2, input(cur, [N, E]), t)) as Float32Array;
			y.set((await outK(input(cur, [N, E]), xs2, dbc2, xz2, D, t)) as Float32Array, t * E);
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
