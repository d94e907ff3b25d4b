// The native CPU backend: C kernels (native/src) built by node-gyp at install time, behind the Kernels interface.
// Weights and activations are passed as the Float32Arrays the model already holds — the addon reads and writes them
// in place, no copies — and outputs are allocated here. The kernels run synchronously on this thread plus a
// persistent pool of worker threads (one per CPU by default; MAMBABYTE_THREADS=n to change it), so each method
// returns an already-settled promise. The addon picks its AVX2+FMA build when the CPU has both, else a portable
// build (MAMBABYTE_NATIVE_ISA=generic forces the portable one).
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Matrix } from '../../kernels/types.js';
import type { Epilogue, Kernels } from './types.js';

export interface NativeInfo {
	isa: string; // the instruction set in use: 'avx2' or 'generic'
	isas: string[]; // those this CPU and build can run
	threads: number; // threads per kernel, this one included
	cpus: number; // CPUs this process may run on
	/**
	 * Since load: jobs split across threads; jobs of several chunks run on this thread alone (the pool measures both
	 * ways and prefers alone when the CPUs are busy with other work); ms waited for workers' last chunks; how often
	 * that wait slept (a worker was descheduled); changes of the preferred way.
	 */
	pool: { jobs: number; aloneJobs: number; waitMs: number; sleeps: number; switches: number };
}

interface Addon {
	linear(W: Float32Array, N: number, K: number, x: Float32Array, T: number, S: number, y: Float32Array, mode: number, epi: Float32Array | null): void;
	norm(x: Float32Array, T: number, d: number, w: Float32Array, b: Float32Array | null, eps: number, y: Float32Array): void;
	convSilu(xz: Float32Array, T: number, E: number, k: number, state: Float32Array, w: Float32Array, b: Float32Array, y: Float32Array): void;
	scan(
		delta: Float32Array, xs: Float32Array, dbc: Float32Array, xz: Float32Array, A: Float32Array, D: Float32Array,
		h: Float32Array, T: number, E: number, N: number, R: number, y: Float32Array,
	): void;
	logProb(logits: Float32Array, T: number, V: number, target: Int32Array, out: Float64Array): void;
	info(): NativeInfo;
	configure(o: { isa?: string; threads?: number; spinUs?: number }): NativeInfo;
}

// From dist/src/backend/ (the compiled CLI) or src/backend/ (TypeScript run directly) to native/build/.
const ADDON_PATHS = ['../../../native/build/Release/mambabyte.node', '../../native/build/Release/mambabyte.node']
	.map((p) => fileURLToPath(new URL(p, import.meta.url)));

let loaded: Addon | undefined;
let loadError: Error | undefined;

/** The addon, loaded once; throws why it is not available (not built, or it does not load here). */
export function loadNative(): Addon {
	if (loaded) return loaded;
	if (loadError) throw loadError;
	try {
		const path = ADDON_PATHS.find((p) => existsSync(p));
		if (!path) throw new Error('the native addon is not built (npm run build:native builds it; the install log is native/build.log)');
		loaded = createRequire(import.meta.url)(path) as Addon;
		return loaded;
	} catch (e) {
		loadError = e instanceof Error ? e : new Error(String(e));
		throw loadError;
	}
}

/** Whether the addon loads here, without throwing. */
export function nativeAvailable(): boolean {
	try {
		loadNative();
		return true;
	} catch {
		return false;
	}
}

const EPI_NONE = 0, EPI_RESIDUAL = 1, EPI_SOFTPLUS = 2;

export class NativeKernels implements Kernels {
	readonly name = 'native' as const;

	constructor(private readonly addon: Addon) {}

	/** Load the addon (throws why not), optionally choosing the instruction set and the thread count. */
	static create(options: { isa?: string; threads?: number } = {}): NativeKernels {
		const addon = loadNative();
		if (options.isa !== undefined || options.threads !== undefined) addon.configure(options);
		return new NativeKernels(addon);
	}

	get info(): NativeInfo {
		return this.addon.info();
	}

	configure(options: { isa?: string; threads?: number; spinUs?: number }): NativeInfo {
		return this.addon.configure(options);
	}

	async linear(w: Matrix, x: Float32Array, T: number, S: number, epi: Epilogue = {}): Promise<Float32Array> {
		const y = new Float32Array(T * w.rows);
		if (epi.residual) this.addon.linear(w.data, w.rows, w.cols, x, T, S, y, EPI_RESIDUAL, epi.residual);
		else if (epi.softplusBias) this.addon.linear(w.data, w.rows, w.cols, x, T, S, y, EPI_SOFTPLUS, epi.softplusBias);
		else this.addon.linear(w.data, w.rows, w.cols, x, T, S, y, EPI_NONE, null);
		return y;
	}

	async norm(x: Float32Array, T: number, d: number, w: Float32Array, b: Float32Array | undefined, eps: number): Promise<Float32Array> {
		const y = new Float32Array(T * d);
		this.addon.norm(x, T, d, w, b ?? null, eps, y);
		return y;
	}

	async convSilu(xz: Float32Array, T: number, E: number, k: number, state: Float32Array, w: Float32Array, b: Float32Array): Promise<Float32Array> {
		const y = new Float32Array(T * E);
		this.addon.convSilu(xz, T, E, k, state, w, b, y);
		return y;
	}

	async scan(
		delta: Float32Array, xs: Float32Array, dbc: Float32Array, xz: Float32Array,
		A: Float32Array, D: Float32Array, h: Float32Array, T: number, E: number, N: number, R: number,
	): Promise<Float32Array> {
		const y = new Float32Array(T * E);
		this.addon.scan(delta, xs, dbc, xz, A, D, h, T, E, N, R, y);
		return y;
	}

	async logProb(logits: Float32Array, T: number, V: number, target: ArrayLike<number>): Promise<Float64Array> {
		const out = new Float64Array(T);
		this.addon.logProb(logits, T, V, Int32Array.from({ length: T }, (_, t) => target[t]), out);
		return out;
	}
}
