// The GPU-resident Mamba forward: the same math as mamba.ts, laid out for a device where every kernel call that
// waits for the host costs a round trip. Weights are uploaded once (transposed, for coalesced split-K reads);
// activations use the blocked layout of kernels/layout.ts; the recurrent state stays on the device
// (DeviceState) and is copied, never read back, between calls. A forward of T tokens is one recorded command list
// of 14 kernel passes per layer, and the only readback is the logits.
//
// A pass has a fixed cost on the GPU and on the host however little it computes (README, Speed), so a decode
// step — where every pass is small — fuses what it can: 9 passes per layer.
// Per chunk of T tokens (TB = ⌈T/4⌉ blocks), for each layer, under the PyTorch line it implements:
//                                              chunk (T > 1)                       decode (T = 1)
//   u = self.norm(x)                           normSlices, normCombine, normApply  folded into in_proj (below)
//   xz = self.in_proj(u)                       matmulPartial + matmulReduce        matvecNormPartial + matvecNormReduce
//   x = silu(self.conv1d(x)[..., :T])          convAndState (also the next conv state)
//   dt_r, B, C = self.x_proj(x).split(...)     matmulPartial + matmulReduce        matvecPartial + matvecReduce
//   delta = softplus(self.dt_proj(dt_r))       matmulPartial + matmulReduce        matvecPartial, reduced in scanStep
//   y = selective_scan(...) * silu(z)          scanStarts, scanOutputBlocked       scanStep (y and the new h)
//   x = x + self.out_proj(y)                   matmulPartial + matmulReduce        matvecPartial + matvecReduce
// then logits = lm_head(norm_f(x)). The norm weights are folded into in_proj and lm_head at load
// (kernels/projection.ts says how). Chunks longer than `chunk` run one after another; a remainder above 16
// tokens is split into powers of two so only a few plans (recorded pass lists, one per T) are ever built.
import {
	matmulPartial, matmulReduce, matvecNormPartial, matvecNormReduce, matvecPartial, matvecReduce, Epi,
} from '../../kernels/projection.js';
import { embedGather } from '../../kernels/embedding.js';
import { normApplyBlocked, normCombine, normSlices } from '../../kernels/norms.js';
import { convAndState } from '../../kernels/conv.js';
import { scanOutputBlocked, scanStarts, scanStep } from '../../kernels/scan.js';
import { logProbReference } from '../../kernels/softmax.js';
import { dbcColumns, fromBlocked } from '../../kernels/layout.js';
import type { Kernels } from '../backend/types.js';
import { range, whole, type Command, type DeviceBuffer, type Pass, type Prepared, type Program, type Runner, type View } from '../backend/resident/runner.js';
import { MambaState } from './state.js';
import type { Checkpoint, LanguageModel, MambaConfig, ModelState, Verification, Weight } from './types.js';
import { verifyPass } from './verification.js';
import { denseWeight, layerA } from './weights.js';

/** Bindings at an offset must be 256-byte aligned: per-layer slices of one buffer start at multiples of 64 floats. */
const ALIGN = 64;
const aligned = (n: number) => Math.ceil(n / ALIGN) * ALIGN;

/**
 * Split-K slices: the most (a power of two) that keeps the threads of a partial pass within `threads`, with at
 * least 8 reduction steps per slice. Decode (one block) gets many slices, prefill few.
 */
export function slices(TB: number, K: number, N: number, threads: number): number {
	let S = 1;
	while (S * 2 * TB * N <= threads && S * 2 * 8 <= K && (K % 4 !== 0 || K % (S * 2 * 4) === 0)) S *= 2;
	return S;
}
const SPLIT_MAX = 1 << 20;

/** Decode split-K slices for matvecPartial: as slices(), each slice a multiple of 4 long, at most 64 to reduce. */
export function vecSlices(K: number, N: number, threads: number): number {
	let S = 1;
	while (S < 64 && S * 2 * N <= threads && S * 2 * 8 <= K && K % (S * 2 * 4) === 0) S *= 2;
	return S;
}

/** Slices of a row for normSlices: a power of two dividing d, at most 32, each at least 8 long. */
export function normSliceCount(d: number): number {
	let S = 1;
	while (S < 32 && d % (S * 2) === 0 && d / (S * 2) >= 8) S *= 2;
	return S;
}

/** Recurrent state kept on the device: per layer h (E, N) and the conv state (E, k−1), each at a 64-float stride. */
export class DeviceState implements ModelState {
	constructor(
		private readonly runner: Runner,
		private readonly c: MambaConfig,
		readonly ssm: DeviceBuffer, // (L, ssmStride)
		readonly conv: DeviceBuffer, // (L, convStride)
		public position = 0,
	) {}

	static zeros(runner: Runner, c: MambaConfig): DeviceState {
		const s = new DeviceState(runner, c, runner.alloc(c.nLayer * ssmStride(c)), runner.alloc(c.nLayer * convStride(c)));
		s.upload(MambaState.zeros(c));
		return s;
	}

	clone(): DeviceState {
		const s = new DeviceState(this.runner, this.c, this.runner.alloc(this.ssm.length), this.runner.alloc(this.conv.length), this.position);
		s.copyFrom(this);
		return s;
	}

	copyFrom(other: ModelState): void {
		if (this.freed || (other instanceof DeviceState && other.freed)) throw new Error('internal: a freed device state was used');
		if (other instanceof DeviceState) {
			this.runner.copy(whole(other.ssm), whole(this.ssm));
			this.runner.copy(whole(other.conv), whole(this.conv));
		} else if (other instanceof MambaState) {
			this.upload(other);
		} else {
			throw new Error('internal: unknown state kind');
		}
		this.position = other.position;
	}

	private upload(h: MambaState): void {
		const ss = ssmStride(this.c), cs = convStride(this.c);
		const ssm = new Float32Array(this.ssm.length), conv = new Float32Array(this.conv.length);
		for (let l = 0; l < this.c.nLayer; l++) {
			ssm.set(h.ssm[l], l * ss);
			conv.set(h.conv[l], l * cs);
		}
		this.runner.upload(whole(this.ssm), ssm);
		this.runner.upload(whole(this.conv), conv);
	}

	async toHost(): Promise<MambaState> {
		const [ssm, conv] = [await this.runner.read(whole(this.ssm)), await this.runner.read(whole(this.conv))];
		const E = this.c.dInner, N = this.c.dState, K1 = this.c.dConv - 1;
		const h = MambaState.zeros(this.c);
		for (let l = 0; l < this.c.nLayer; l++) {
			h.ssm[l].set(ssm.subarray(l * ssmStride(this.c), l * ssmStride(this.c) + E * N));
			h.conv[l].set(conv.subarray(l * convStride(this.c), l * convStride(this.c) + E * K1));
		}
		h.position = this.position;
		return h;
	}

	get byteLength(): number {
		const c = this.c;
		return c.nLayer * c.dInner * (c.dState + c.dConv - 1) * 4;
	}

	free(): void {
		if (this.freed) return;
		this.freed = true;
		this.runner.free(this.ssm);
		this.runner.free(this.conv);
	}

	/** Whether free() was called: a freed state must not be used again. */
	freed = false;
}
const ssmStride = (c: MambaConfig) => aligned(c.dInner * c.dState);
const convStride = (c: MambaConfig) => aligned(c.dInner * (c.dConv - 1));

/** Wᵀ (K, N) of a row-major W (N, K), each column k scaled by colScale[k] when given (a folded norm weight). */
function transpose(w: Float32Array, N: number, K: number, colScale?: Float32Array): Float32Array {
	const t = new Float32Array(N * K);
	for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) t[k * N + n] = w[n * K + k] * (colScale ? colScale[k] : 1);
	return t;
}

/** W v (N) of a row-major W (N, K), in float64. */
function matVec(w: Float32Array, N: number, K: number, v: Float32Array): Float32Array {
	const out = new Float32Array(N);
	for (let n = 0; n < N; n++) {
		let acc = 0;
		for (let k = 0; k < K; k++) acc += w[n * K + k] * v[k];
		out[n] = acc;
	}
	return out;
}

interface Mat {
	wt: DeviceBuffer; // Wᵀ (K, N), with a folded norm weight for in_proj and lm_head
	K: number;
	N: number;
	partial: Program;
	reduce: Program; // for chunks, with the matrix's epilogue
	vecPartial: Program; // decode
	vecReduce: Program;
	c1: View; // folded norm: W'1 and W b (blocked-matmul.ts); zeros otherwise
	c2: View;
}

interface Layer {
	inProj: Mat;
	convWeight: View;
	convBias: View;
	xProj: Mat;
	dtProj: Mat; // reads the first R columns of dbc
	dtBias: View;
	scanParams: View; // [A (E, N) | D (E) | b_dt (E)] for the scan kernels
	outProj: Mat;
	convOut: DeviceBuffer; // [xs (TB, E, 4) | next conv state (E, k−1)]
	H: DeviceBuffer; // chunks: (TBmax + 1, E, N) block-start states, row TB the new h; decode: [y (E, 4) | h (E, N)]
}

export class ResidentMamba implements LanguageModel {
	readonly config: MambaConfig;
	private readonly plans = new Map<number, Pass[]>();
	// Threads per split-K partial pass, for chunks and for decode (bench/webgpu.ts sweeps them; README, Speed).
	private split = 1 << 20;
	private vecSplit = 1 << 18;
	private fused = true; // the fused decode plan (bench/webgpu.ts compares it with running T = 1 as a chunk)
	private readonly canFuse: boolean; // the decode kernels take 4 reduction steps at a time
	private next: { state: DeviceState; plan: readonly Pass[]; prepared: Prepared } | null = null; // the next step, recorded
	private lastStep: DeviceState | null = null;
	/** Record the next decode step while the GPU runs this one (bench/webgpu.ts --ab compares on and off). */
	pipelineSteps = true;
	private layers: Layer[] = [];
	private programs!: Record<'embed' | 'slices' | 'combine' | 'apply' | 'conv' | 'starts' | 'scanOut' | 'step', Program>;
	private head!: Mat;
	private bufs!: Record<
		'tokens' | 'xA' | 'xB' | 'normP' | 'stats' | 'u' | 'P' | 'xz' | 'dbc' | 'delta' | 'y' | 'logits' | 'zeros' | 'ones' |
		'embedding' | 'workSsm' | 'workConv', DeviceBuffer
	>;

	private constructor(readonly checkpoint: Checkpoint<Weight>, readonly runner: Runner, readonly kernels: Kernels, readonly chunk: number) {
		const c = (this.config = checkpoint.config);
		if (chunk % 4 !== 0) throw new Error('internal: the resident chunk must be a multiple of 4');
		this.canFuse = c.dModel % 4 === 0 && c.dInner % 4 === 0 && c.dtRank % 4 === 0 && c.dState % 4 === 0;
	}

	/**
	 * Why this shape cannot run resident, or null. gpu.js computes array indices in f32, exact below 2^24: every
	 * buffer a kernel indexes (the largest is a projection's Wᵀ) must stay under that. convAndState writes the
	 * conv state 4 values at a time.
	 */
	static unsupported(c: MambaConfig, chunk = 64): string | null {
		const E = c.dInner, RC = c.dtRank + 2 * c.dState;
		const largest = Math.max(2 * E * c.dModel, RC * E, c.vocabSize * c.dModel, (chunk / 4 + 1) * E * c.dState, (chunk / 4) * 2 * E * 4);
		if (largest >= 1 << 24) return `a ${largest}-float buffer; gpu.js indexes exactly only below 2^24`;
		if ((E * (c.dConv - 1)) % 4 !== 0) return `d_inner·(d_conv − 1) = ${E * (c.dConv - 1)} is not a multiple of 4`;
		return null;
	}

	/** Compile the kernels and upload the weights. `kernels`: the backend the runner runs on (it names it). */
	static async create(checkpoint: Checkpoint<Weight>, runner: Runner, kernels: Kernels, chunk = 64): Promise<ResidentMamba> {
		const why = ResidentMamba.unsupported(checkpoint.config, chunk);
		if (why) throw new Error(`internal: ${checkpoint.name} cannot run resident: ${why}`);
		const m = new ResidentMamba(checkpoint, runner, kernels, chunk);
		await m.build();
		return m;
	}

	private async build(): Promise<void> {
		const r = this.runner;
		const c = this.config;
		const w = this.checkpoint.weights;
		const { dModel: d, dInner: E, dState: N, dtRank: R, dConv: K, vocabSize: V, eps } = c;
		const RC = R + 2 * N;
		const TBm = this.chunk / 4;
		const layer = c.norm === 'layer' ? 1 : 0;
		const NS = normSliceCount(d);
		const A = 'array' as const, S = 'scalar' as const;
		const cols = dbcColumns(R, N);
		const scan = { E, N, RC: cols.width, Bc: cols.B, Cc: cols.C, TMAX: this.chunk };
		const norm = { D: d, S: NS, eps, layer };
		this.programs = {
			embed: await r.program(embedGather, { D: d }, { tokens: A, emb: A }),
			slices: await r.program(normSlices, norm, { x: A }),
			combine: await r.program(normCombine, norm, { p: A }),
			apply: await r.program(normApplyBlocked, norm, { x: A, stats: A, w: A, b: A }),
			conv: await r.program(convAndState, { E, K }, { xz: A, state: A, w: A, b: A, T: S }),
			starts: await r.program(scanStarts, scan, { delta: A, x: A, dbc: A, p: A, h0: A, T: S }),
			scanOut: await r.program(scanOutputBlocked, scan, { H: A, delta: A, x: A, dbc: A, xz: A, p: A }),
			step: await r.program(scanStep, scan, { pdt: A, x: A, dbc: A, xz: A, p: A, h0: A, DS: S }),
		};
		const programs = new Map<string, Program>();
		const once = async (key: string, make: () => Promise<Program>) => {
			if (!programs.has(key)) programs.set(key, await make());
			return programs.get(key)!;
		};
		const put = (data: Float32Array): View => {
			const b = r.alloc(data.length);
			r.upload(whole(b), data);
			return whole(b);
		};
		const zeros = r.alloc(Math.max(d, V, 2 * E, RC)); // the widest output: a stand-in for an unused residual or bias
		// A projection; `norm` folds a norm in front of it (weight, bias) as blocked-matmul.ts explains.
		const mat = async (data: Float32Array, N_: number, K_: number, XC: number, epi: number, norm?: [Float32Array, Float32Array | undefined]): Promise<Mat> => {
			const wt = r.alloc(N_ * K_);
			r.upload(whole(wt), transpose(data, N_, K_, norm?.[0]));
			const bias = norm?.[1];
			if (bias) epi = Epi.Bias;
			const vp = norm ? matvecNormPartial : matvecPartial;
			return {
				wt, K: K_, N: N_,
				partial: await once(`mm:${K_}:${N_}:${XC}`, () => r.program(matmulPartial, { K: K_, N: N_, XC, U: K_ % 4 ? 1 : 4 }, { x: A, wt: A, TB: S, KS: S })),
				reduce: await once(`mr:${N_}:${epi}`, () => r.program(matmulReduce, { N: N_, epi }, { p: A, r: A, b: A, TB: S, S })),
				vecPartial: await once(`vp:${K_}:${N_}:${XC}:${!!norm}`, () => r.program(vp, { K: K_, N: N_, XC, U: 4 }, { x: A, wt: A, KS: S })),
				vecReduce: norm
					? await once(`vnr:${N_}:${K_}`, () => r.program(matvecNormReduce, { N: N_, D: K_, eps, layer }, { p: A, c1: A, c2: A, S }))
					: await once(`vr:${N_}:${epi}`, () => r.program(matvecReduce, { N: N_, epi }, { p: A, r: A, b: A, S })),
				c1: norm ? put(matVec(data, N_, K_, norm[0])) : whole(zeros),
				c2: bias ? put(matVec(data, N_, K_, bias)) : whole(zeros),
			};
		};
		let pMax = 0;
		const need = (m: Mat) => {
			for (let TB = 1; TB <= TBm; TB++) pMax = Math.max(pMax, slices(TB, m.K, m.N, SPLIT_MAX) * TB * m.N * 4);
			if (m.K % 4 === 0) pMax = Math.max(pMax, vecSlices(m.K, m.N, SPLIT_MAX) * m.N * 4);
		};
		for (const l of w.layers) {
			const aNeg = layerA(l); // A = −exp(A_log), once (or as a GGUF file stores it)
			const layerW: Layer = {
				inProj: await mat(denseWeight(l.inProj), 2 * E, d, d, Epi.None, [l.norm, l.normBias]),
				convWeight: put(l.convWeight),
				convBias: put(l.convBias),
				xProj: await mat(denseWeight(l.xProj), RC, E, E, Epi.None),
				dtProj: await mat(denseWeight(l.dtProj), E, R, RC, Epi.Softplus),
				dtBias: put(l.dtBias),
				scanParams: put(Float32Array.from([...aNeg, ...l.D, ...l.dtBias])),
				outProj: await mat(denseWeight(l.outProj), d, E, E, Epi.Residual),
				convOut: r.alloc(TBm * E * 4 + E * (K - 1)),
				H: r.alloc((TBm + 1) * E * N),
			};
			[layerW.inProj, layerW.xProj, layerW.dtProj, layerW.outProj].forEach(need);
			this.layers.push(layerW);
		}
		this.head = await mat(denseWeight(w.lmHead ?? w.embedding), V, d, d, Epi.None, [w.normF, w.normFBias]);
		need(this.head);
		const act = (cols: number) => r.alloc(TBm * cols * 4);
		this.bufs = {
			tokens: r.alloc(TBm * 4), xA: act(d), xB: act(d), normP: r.alloc(TBm * NS * 8), stats: r.alloc(TBm * 8), u: act(d),
			P: r.alloc(pMax), xz: act(2 * E), dbc: act(RC), delta: act(E), y: act(E), logits: act(V), zeros,
			ones: put(new Float32Array(d).fill(1)).buf, embedding: put(denseWeight(w.embedding)).buf,
			workSsm: r.alloc(c.nLayer * ssmStride(c)), workConv: r.alloc(c.nLayer * convStride(c)),
		};
	}

	/** Threads per split-K partial pass, [chunks, decode] (tuning knobs for bench/webgpu.ts); drops the plans. */
	get splitThreads(): [number, number] {
		return [this.split, this.vecSplit];
	}
	set splitThreads([chunks, decode]: [number, number]) {
		for (const n of [chunks, decode]) if (!(n >= 1 && n <= SPLIT_MAX)) throw new RangeError(`split threads ${n} outside 1..${SPLIT_MAX}`);
		[this.split, this.vecSplit] = [chunks, decode];
		this.plans.clear();
	}

	/** Whether decode runs the fused plan (the default, when the shapes allow) or the chunk plan with T = 1. */
	get fusedDecode(): boolean {
		return this.fused && this.canFuse;
	}
	set fusedDecode(on: boolean) {
		this.fused = on;
		this.plans.clear();
	}

	newState(): DeviceState {
		return DeviceState.zeros(this.runner, this.config);
	}

	/** The recorded passes of one chunk of T tokens (scalars baked in), built once per T. */
	plan(T: number): readonly Pass[] {
		let passes = this.plans.get(T);
		if (!passes) this.plans.set(T, (passes = T === 1 && this.fusedDecode ? this.decodePlan() : this.chunkPlan(T)));
		return passes;
	}

	private chunkPlan(T: number): Pass[] {
		const r = this.runner;
		const p = this.programs;
		const b = this.bufs;
		const { dModel: d, dInner: E, dState: N, dtRank: R, dConv: K, vocabSize: V } = this.config;
		const RC = R + 2 * N;
		const TB = Math.ceil(T / 4);
		const NS = normSliceCount(d);
		const act = (buf: DeviceBuffer, cols: number) => range(buf, 0, TB * cols * 4);
		const zeros = whole(b.zeros);
		const passes: Pass[] = [];
		const matmul = (m: Mat, x: View, out: View, residual: View, bias: View) => {
			const S = slices(TB, m.K, m.N, this.split);
			const P = range(b.P, 0, S * TB * m.N * 4);
			passes.push(r.pass(m.partial, { x, wt: whole(m.wt), TB, KS: Math.ceil(m.K / S) }, P, S * TB * m.N));
			passes.push(r.pass(m.reduce, { p: P, r: residual, b: bias, TB, S }, out, TB * m.N));
		};
		// (x − μ)·rstd; the norm weight and bias are folded into the next projection
		const norm = (x: View) => {
			passes.push(r.pass(p.slices, { x }, range(b.normP, 0, TB * NS * 8), TB * NS * 2));
			passes.push(r.pass(p.combine, { p: range(b.normP, 0, TB * NS * 8) }, range(b.stats, 0, TB * 8), TB * 2));
			passes.push(r.pass(p.apply, { x, stats: range(b.stats, 0, TB * 8), w: whole(b.ones), b: zeros }, act(b.u, d), TB * d));
		};
		passes.push(r.pass(p.embed, { tokens: range(b.tokens, 0, TB * 4), emb: whole(b.embedding) }, act(b.xA, d), TB * d));
		let x = b.xA, next = b.xB;
		this.layers.forEach((L, l) => {
			const xs = range(L.convOut, 0, TB * E * 4);
			const H = range(L.H, 0, (TB + 1) * E * N);
			norm(act(x, d));
			matmul(L.inProj, act(b.u, d), act(b.xz, 2 * E), zeros, L.inProj.c2);
			const conv = { xz: act(b.xz, 2 * E), state: this.workConv(l), w: L.convWeight, b: L.convBias, T };
			passes.push(r.pass(p.conv, conv, range(L.convOut, 0, TB * E * 4 + E * (K - 1)), TB * E + (E * (K - 1)) / 4));
			matmul(L.xProj, xs, act(b.dbc, RC), zeros, zeros);
			matmul(L.dtProj, act(b.dbc, RC), act(b.delta, E), zeros, L.dtBias);
			const scan = { delta: act(b.delta, E), x: xs, dbc: act(b.dbc, RC), p: L.scanParams };
			passes.push(r.pass(p.starts, { ...scan, h0: this.workSsm(l), T }, H, (TB + 1) * E * N));
			passes.push(r.pass(p.scanOut, { ...scan, H, xz: act(b.xz, 2 * E) }, act(b.y, E), TB * E));
			matmul(L.outProj, act(b.y, E), act(next, d), act(x, d), zeros);
			[x, next] = [next, x];
		});
		norm(act(x, d));
		matmul(this.head, act(b.u, d), act(b.logits, V), zeros, this.head.c2);
		return passes;
	}

	private decodePlan(): Pass[] {
		const r = this.runner;
		const p = this.programs;
		const b = this.bufs;
		const { dModel: d, dInner: E, dState: N, dtRank: R, dConv: K, vocabSize: V } = this.config;
		const RC = R + 2 * N;
		const one = (buf: DeviceBuffer, cols: number) => range(buf, 0, cols * 4); // one block
		const zeros = whole(b.zeros);
		const passes: Pass[] = [];
		// partial sums (S, N[, 4]) then the reduction; returns where the partial sums are, for scanStep
		const matvec = (m: Mat, x: View, out: View | null, residual: View, bias: View) => {
			const S = vecSlices(m.K, m.N, this.vecSplit);
			const P = range(b.P, 0, S * m.N);
			passes.push(r.pass(m.vecPartial, { x, wt: whole(m.wt), KS: m.K / S }, P, S * m.N));
			if (out) passes.push(r.pass(m.vecReduce, { p: P, r: residual, b: bias, S }, out, m.N));
			return { P, S };
		};
		const normed = (m: Mat, x: View, out: View) => {
			const S = vecSlices(m.K, m.N, this.vecSplit);
			const P = range(b.P, 0, S * m.N * 4);
			passes.push(r.pass(m.vecPartial, { x, wt: whole(m.wt), KS: m.K / S }, P, S * m.N));
			passes.push(r.pass(m.vecReduce, { p: P, c1: m.c1, c2: m.c2, S }, out, m.N));
		};
		passes.push(r.pass(p.embed, { tokens: range(b.tokens, 0, 4), emb: whole(b.embedding) }, one(b.xA, d), d));
		let x = b.xA, next = b.xB;
		this.layers.forEach((L, l) => {
			const xs = range(L.convOut, 0, E * 4);
			normed(L.inProj, one(x, d), one(b.xz, 2 * E));
			const conv = { xz: one(b.xz, 2 * E), state: this.workConv(l), w: L.convWeight, b: L.convBias, T: 1 };
			passes.push(r.pass(p.conv, conv, range(L.convOut, 0, E * 4 + E * (K - 1)), E + (E * (K - 1)) / 4));
			matvec(L.xProj, xs, one(b.dbc, RC), zeros, zeros);
			const dt = matvec(L.dtProj, one(b.dbc, RC), null, zeros, zeros);
			const step = { pdt: dt.P, x: xs, dbc: one(b.dbc, RC), xz: one(b.xz, 2 * E), p: L.scanParams, h0: this.workSsm(l), DS: dt.S };
			passes.push(r.pass(p.step, step, range(L.H, 0, E * 4 + E * N), E + (E * N) / 4));
			matvec(L.outProj, range(L.H, 0, E * 4), one(next, d), one(x, d), zeros);
			[x, next] = [next, x];
		});
		normed(this.head, one(x, d), one(b.logits, V));
		return passes;
	}

	private workSsm(l: number): View {
		return range(this.bufs.workSsm, l * ssmStride(this.config), this.config.dInner * this.config.dState);
	}

	private workConv(l: number): View {
		return range(this.bufs.workConv, l * convStride(this.config), this.config.dInner * (this.config.dConv - 1));
	}

	/** Logits (T, V) for every position of tokens, advancing state. */
	async forward(tokens: ArrayLike<number>, state: ModelState): Promise<Float32Array> {
		const V = this.config.vocabSize;
		const logits = new Float32Array(tokens.length * V);
		for (let s = 0; s < tokens.length; ) {
			const left = tokens.length - s;
			let T = Math.min(left, this.chunk);
			if (T > 16 && T < this.chunk) T = 1 << Math.floor(Math.log2(T));
			logits.set(await this.forwardChunk(Array.prototype.slice.call(tokens, s, s + T) as number[], state), s * V);
			s += T;
		}
		return logits;
	}

	async step(token: number, state: ModelState): Promise<Float32Array> {
		return this.forwardChunk([token], state);
	}

	/**
	 * Logits (T, V) of tokens fed from state, then keep(j) rolls back to the first j: the state before the pass is
	 * kept as a copy on the device, restored, and the j kept tokens fed again (a device pass costs about the same
	 * for any small T, so a refeed is cheaper than reading per-position states back).
	 */
	async verify(tokens: ArrayLike<number>, state: ModelState): Promise<Verification> {
		if (!(state instanceof DeviceState)) throw new Error('internal: a resident model runs on its own DeviceState');
		const before = state.clone();
		return verifyPass(tokens.length, {
			feed: () => this.forward(tokens, state),
			rollback: async (j) => {
				state.copyFrom(before);
				if (j > 0) await this.forward(Array.prototype.slice.call(tokens, 0, j) as number[], state);
			},
			release: () => before.free(),
		});
	}

	/** ln p(targets[t]) under each row of logits (T, V): on the host, where the logits already are. */
	async logProbs(logits: Float32Array, targets: ArrayLike<number>): Promise<Float64Array> {
		return logProbReference(logits, targets.length, this.config.vocabSize, targets);
	}

	private async forwardChunk(tokens: number[], s: ModelState): Promise<Float32Array> {
		if (!(s instanceof DeviceState)) throw new Error('internal: a resident model runs on its own DeviceState');
		const V = this.config.vocabSize;
		const T = tokens.length;
		const TB = Math.ceil(T / 4);
		for (const tok of tokens) {
			if (!(tok >= 0 && tok < V)) throw new RangeError(`token ${tok} outside the vocabulary 0..${V - 1}`);
		}
		const b = this.bufs;
		const ids = new Float32Array(TB * 4);
		ids.set(tokens);
		this.runner.upload(range(b.tokens, 0, TB * 4), ids); // queued before the submission below
		const read = range(b.logits, 0, TB * V * 4);
		let done: Promise<Float32Array | null>;
		const plan = this.plan(T);
		if (T === 1 && this.next?.state === s && this.next.plan === plan) done = this.runner.submit(this.next.prepared);
		else done = this.runner.run(this.commands(T, s), read);
		this.next = null;
		// Steps on one state in a row (decoding): record the next step while the GPU works on this one, so the
		// host's recording time hides behind the GPU's.
		if (T === 1 && this.lastStep === s && this.pipelineSteps) this.next = { state: s, plan, prepared: this.runner.prepare(this.commands(1, s), read) };
		this.lastStep = T === 1 ? s : null;
		const blocked = (await done)!;
		s.position += T;
		return fromBlocked(blocked, T, V);
	}

	/**
	 * A chunk's commands on state s. The plan reads the state from fixed work buffers (its bindings never change):
	 * copy in, run, then copy each layer's new h and conv state out.
	 */
	private commands(T: number, s: DeviceState): Command[] {
		if (s.freed) throw new Error('internal: a freed device state was used');
		const c = this.config;
		const { dInner: E, dState: N, dConv: K } = c;
		const TB = Math.ceil(T / 4);
		const hAt = T === 1 && this.fusedDecode ? E * 4 : TB * E * N; // where the new h is in each layer's H
		return [
			{ copy: { from: whole(s.ssm), to: whole(this.bufs.workSsm) } },
			{ copy: { from: whole(s.conv), to: whole(this.bufs.workConv) } },
			...this.plan(T).map((pass) => ({ pass })),
			...this.layers.flatMap((layer, l): Command[] => [
				{ copy: { from: range(layer.H, hAt, E * N), to: range(s.ssm, l * ssmStride(c), E * N) } },
				{ copy: { from: range(layer.convOut, TB * E * 4, E * (K - 1)), to: range(s.conv, l * convStride(c), E * (K - 1)) } },
			]),
		];
	}
}
