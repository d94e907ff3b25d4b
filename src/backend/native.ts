// The native CPU backend: C kernels (native/src) built by node-gyp at install time, behind the Kernels interface.
// Weights and activations are passed as the Float32Arrays the model already holds — the addon reads and writes them
// in place, no copies — and outputs are allocated here. The kernels run synchronously on this thread plus a
// persistent pool of worker threads (one per CPU by default; MAMBABYTE_THREADS=n to change it), so each method
// returns an already-settled promise. The addon picks its AVX2+FMA build when the CPU has both, else a portable
// build (MAMBABYTE_NATIVE_ISA=generic forces the portable one).
// `linear` also takes a QMatrix (ggml blocks, src/tensor/qmatrix.ts) and computes on the blocks as stored
// (native/src/quant.h: x is quantized to int8 blocks, as llama.cpp does; the AVX-512 VNNI build is picked when
// the CPU has it, MAMBABYTE_NATIVE_ISA=avx512|avx2|generic forces one). NativeModel runs a whole decode step
// (every layer, the final norm and the head) as one native call (native/src/step.h).
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Matrix } from '../../kernels/types.js';
import { asColumns, copyColumns, type Columns, type Rows } from '../../kernels/layout.js';
import { epilogueOf, type Epilogue } from '../../kernels/projection.js';
import type { NormArgs, NormDims } from '../../kernels/norms.js';
import type { ConvArgs, ConvDims } from '../../kernels/conv.js';
import type { ScanArgs, ScanDims } from '../../kernels/scan.js';
import { isQMatrix, rowBytes, type QMatrix, type QType } from '../tensor/qmatrix.js';
import type { Kernels } from './types.js';

/** The block-type codes of native/src/quant.h. */
const QTYPE_CODE: Record<QType, number> = {
	f32: 0, f16: 1, bf16: 2, q8_0: 3, q4_0: 4, q4_1: 5, q5_0: 6, q5_1: 7, q4_k: 8, q5_k: 9, q6_k: 10,
};

interface NativeInfo {
	isa: string; // the instruction set in use: 'avx512', 'avx2' or 'generic'
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
	qlinear(W: Uint8Array, qtype: number, N: number, K: number, x: Float32Array, T: number, S: number, y: Float32Array, mode: number, epi: Float32Array | null): void;
	qlinearReference(W: Uint8Array, qtype: number, N: number, K: number, x: Float32Array, T: number, S: number, y: Float32Array, mode: number, epi: Float32Array | null): void;
	dequantizeRow(W: Uint8Array, qtype: number, K: number, row: number, out: Float32Array): void;
	createModel(dims: Int32Array, eps: number, arrays: (Float32Array | Uint8Array | null)[], qtypes: Int32Array): object;
	stepModel(handle: object, x0: Float32Array, conv: Float32Array[], ssm: Float32Array[], logits: Float32Array): void;
	forwardModel(handle: object, x0: Float32Array, T: number, conv: Float32Array[], ssm: Float32Array[], logits: Float32Array, record: boolean): void;
	keepModel(handle: object, j: number, conv: Float32Array[], ssm: Float32Array[]): boolean;
	readProbe(buf: Uint8Array): number;
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

/**
 * A view as the C kernels take it: the array from `lead` columns before the view's first column, holding `need`
 * floats (native/src/kernels.h: the scan reads B at column R of [dt_r | B | C] rows, z at column E of [x | z]
 * rows). The views the forward makes (kernels/layout.ts splitXz, splitDbc) are that already; null for any other.
 */
function lead(v: Columns, lead: number, need: number): Float32Array | null {
	const start = v.offset - lead;
	if (start < 0 || v.data.length - start < need) return null;
	return start === 0 ? v.data : v.data.subarray(start);
}

/** B and C as the C scan takes them: dbc with [? (R) | B (N) | C (N)] rows. */
function dbcOf(B: Columns, C: Columns, T: number, N: number): [Float32Array, number] {
	const R = B.stride - 2 * N;
	const dbc = C.data === B.data && C.stride === B.stride && C.offset === B.offset + N && R >= 0 ? lead(B, R, T * B.stride) : null;
	if (dbc) return [dbc, R];
	const packed = new Float32Array(T * 2 * N);
	for (let t = 0; t < T; t++) {
		packed.set(B.data.subarray(t * B.stride + B.offset, t * B.stride + B.offset + N), t * 2 * N);
		packed.set(C.data.subarray(t * C.stride + C.offset, t * C.stride + C.offset + N), t * 2 * N + N);
	}
	return [packed, 0];
}

/** z (or the conv's x) as the C kernels take it: rows of 2E with the part at column `col` (E for z, 0 for x). */
function halfOf(v: Columns, T: number, E: number, col: number): Float32Array {
	const xz = v.stride === 2 * E ? lead(v, col, T * 2 * E) : null;
	if (xz) return xz;
	const packed = new Float32Array(T * 2 * E);
	const part = copyColumns(v, T, E);
	for (let t = 0; t < T; t++) packed.set(part.subarray(t * E, (t + 1) * E), t * 2 * E + col);
	return packed;
}

/** An f32 QMatrix's bytes as floats (copied only when they are not 4-byte aligned). */
function asFloat(w: QMatrix): Matrix {
	const b = w.data;
	const data = b.byteOffset % 4 === 0 ? new Float32Array(b.buffer, b.byteOffset, w.rows * w.cols) : new Float32Array(b.slice().buffer);
	return { data, rows: w.rows, cols: w.cols };
}

/** A projection as createModel takes it: float32 or blocks, and its type code. */
function modelMatrix(w: Matrix | QMatrix): [Float32Array | Uint8Array, number] {
	if (!isQMatrix(w)) return [w.data, QTYPE_CODE.f32];
	if (w.qtype === 'f32') return [asFloat(w).data, QTYPE_CODE.f32];
	if (w.data.length < w.rows * rowBytes(w.qtype, w.cols)) throw new RangeError(`a ${w.qtype} matrix (${w.rows}x${w.cols}) holds too few bytes`);
	return [w.data, QTYPE_CODE[w.qtype]];
}

/** What NativeModel needs of one layer (the host model's Layer). */
interface NativeLayer {
	norm: Float32Array; normBias?: Float32Array;
	inProj: Matrix | QMatrix; convWeight: Float32Array; convBias: Float32Array;
	xProj: Matrix | QMatrix; dtProj: Matrix | QMatrix; dtBias: Float32Array;
	A: Float32Array; D: Float32Array; outProj: Matrix | QMatrix;
}

interface NativeModelShape { d: number; E: number; N: number; R: number; k: number; V: number; eps: number }

/**
 * A whole decode step, or a forward over T tokens, as one native call. The weights are borrowed (not copied): this
 * object keeps them alive as long as the native handle. step() and forward() read and write the given state arrays
 * in place; keep() rolls the last recorded forward back (native/src/step.h).
 */
export class NativeModel {
	private readonly handle: object;
	/** What the handle reads, held here so that the garbage collector keeps it while the handle lives. */
	readonly weights: (Float32Array | Uint8Array | null)[];

	constructor(private readonly addon: Addon, readonly shape: NativeModelShape, layers: NativeLayer[], normF: Float32Array, normFBias: Float32Array | undefined, head: Matrix | QMatrix) {
		const arrays: (Float32Array | Uint8Array | null)[] = [];
		const codes: number[] = [];
		const vec = (a: Float32Array | undefined) => { arrays.push(a ?? null); codes.push(-1); };
		const mat = (m: Matrix | QMatrix) => { const [a, c] = modelMatrix(m); arrays.push(a); codes.push(c); };
		for (const l of layers) {
			vec(l.norm); vec(l.normBias); mat(l.inProj); vec(l.convWeight); vec(l.convBias);
			mat(l.xProj); mat(l.dtProj); vec(l.dtBias); vec(l.A); vec(l.D); mat(l.outProj);
		}
		vec(normF); vec(normFBias); mat(head);
		const { d, E, N, R, k, V, eps } = shape;
		this.weights = arrays;
		this.handle = addon.createModel(Int32Array.of(d, E, N, R, k, V, layers.length), eps, arrays, Int32Array.from(codes));
	}

	/** Logits (V) after the token whose embedding is x0 (d), advancing conv and ssm (per layer) in place. */
	step(x0: Float32Array, conv: Float32Array[], ssm: Float32Array[]): Float32Array {
		const logits = new Float32Array(this.shape.V);
		this.addon.stepModel(this.handle, x0, conv, ssm, logits);
		return logits;
	}

	/**
	 * Logits (T, V) after the tokens whose embeddings are the rows of x0 (T, d). With record, keep(j) can afterwards
	 * set the state to that after the first j tokens alone (until the next forward or step).
	 */
	forward(x0: Float32Array, T: number, conv: Float32Array[], ssm: Float32Array[], record: boolean): Float32Array {
		const logits = new Float32Array(T * this.shape.V);
		this.addon.forwardModel(this.handle, x0, T, conv, ssm, logits, record);
		return logits;
	}

	/** After a recorded forward over these state arrays: the state after its first j tokens. False: nothing recorded. */
	keep(j: number, conv: Float32Array[], ssm: Float32Array[]): boolean {
		return this.addon.keepModel(this.handle, j, conv, ssm);
	}
}

export class NativeKernels implements Kernels {
	readonly name = 'native' as const;

	constructor(private readonly addon: Addon) {}

	/** Load the addon (throws why not), optionally choosing the instruction set and the thread count. */
	static create(options: { isa?: string; threads?: number } = {}): NativeKernels {
		const addon = loadNative();
		if (options.isa !== undefined || options.threads !== undefined) addon.configure(options);
		return new NativeKernels(addon);
	}

	/** The fused decode step of a model with these weights. */
	model(shape: NativeModelShape, layers: NativeLayer[], normF: Float32Array, normFBias: Float32Array | undefined, head: Matrix | QMatrix): NativeModel {
		return new NativeModel(this.addon, shape, layers, normF, normFBias, head);
	}

	/** The plain reference of a quantized projection (dequantize each row, dot in double, x unquantized). */
	linearReference(w: QMatrix, x: Rows, T: number, epi?: Epilogue): Float32Array {
		const y = new Float32Array(T * w.rows);
		const [mode, e] = epilogueOf(epi);
		const v = asColumns(x, w.cols);
		this.addon.qlinearReference(w.data, QTYPE_CODE[w.qtype], w.rows, w.cols, v.offset ? v.data.subarray(v.offset) : v.data, T, v.stride, y, mode, e);
		return y;
	}

	/** Row r of a QMatrix as floats (the C dequantizer). */
	dequantizeRow(w: QMatrix, r: number): Float32Array {
		const out = new Float32Array(w.cols);
		this.addon.dequantizeRow(w.data, QTYPE_CODE[w.qtype], w.cols, r, out);
		return out;
	}

	/** GB/s of reading `bytes` of memory once on the pool's threads (best of `repeats`), for the bench. */
	readBandwidth(bytes = 1 << 30, repeats = 5): number {
		const buf = new Uint8Array(bytes);
		for (let i = 0; i < bytes; i += 4096) buf[i] = i & 0xff; // touch every page first
		let best = Infinity;
		for (let r = 0; r < repeats; r++) {
			const t0 = performance.now();
			this.addon.readProbe(buf);
			best = Math.min(best, performance.now() - t0);
		}
		return bytes / (best / 1000) / 1e9;
	}

	get info(): NativeInfo {
		return this.addon.info();
	}

	configure(options: { isa?: string; threads?: number; spinUs?: number }): NativeInfo {
		return this.addon.configure(options);
	}

	async linear(w: Matrix | QMatrix, x: Rows, T: number, epi?: Epilogue): Promise<Float32Array> {
		if (isQMatrix(w) && w.qtype === 'f32') return this.linear(asFloat(w), x, T, epi);
		const y = new Float32Array(T * w.rows);
		const [mode, e] = epilogueOf(epi);
		const v = asColumns(x, w.cols);
		const xd = v.offset ? v.data.subarray(v.offset) : v.data;
		const S = v.stride;
		if (isQMatrix(w)) this.addon.qlinear(w.data, QTYPE_CODE[w.qtype], w.rows, w.cols, xd, T, S, y, mode, e);
		else this.addon.linear(w.data, w.rows, w.cols, xd, T, S, y, mode, e);
		return y;
	}

	async norm({ x, w, b }: NormArgs, { T, d, eps }: NormDims): Promise<Float32Array> {
		const y = new Float32Array(T * d);
		this.addon.norm(x, T, d, w, b ?? null, eps, y);
		return y;
	}

	async convSilu({ x, state, w, b }: ConvArgs, { T, E, k }: ConvDims): Promise<Float32Array> {
		const y = new Float32Array(T * E);
		this.addon.convSilu(halfOf(x, T, E, 0), T, E, k, state, w, b, y);
		return y;
	}

	async scan({ delta, x, B, C, z, A, D, h }: ScanArgs, { T, E, N }: ScanDims): Promise<Float32Array> {
		const y = new Float32Array(T * E);
		const [dbc, R] = dbcOf(B, C, T, N);
		this.addon.scan(delta, x, dbc, halfOf(z, T, E, E), A, D, h, T, E, N, R, y);
		return y;
	}

	async logProb(logits: Float32Array, T: number, V: number, target: ArrayLike<number>): Promise<Float64Array> {
		const out = new Float64Array(T);
		this.addon.logProb(logits, T, V, Int32Array.from({ length: T }, (_, t) => target[t]), out);
		return out;
	}
}
