// The GPU-resident Mamba forward: the same math as mamba.ts, laid out for a device where every kernel call that
// waits for the host costs a round trip. Weights are uploaded once (transposed, for coalesced split-K reads);
// activations use the blocked layout of kernels/blocked-matmul.ts; the recurrent state stays on the device
// (DeviceState) and is copied, never read back, between calls. A forward of T tokens is one submission of
// ~14 kernel passes per layer, and the only readback is the logits.
//
// Per chunk of T ≤ chunk tokens (TB = ⌈T/4⌉ blocks), for each layer, under the PyTorch line it implements:
//   u = self.norm(x)                           normSlices, normCombine, normApplyBlocked
//   xz = self.in_proj(u)                       matmulPartial + matmulReduce (decode: matvecPartial + matvecReduce)
//   x = silu(self.conv1d(x)[..., :T])          convSiluBlocked; the next conv state: convNextState
//   dt_r, B, C = self.x_proj(x).split(...)     matmulPartial + matmulReduce
//   delta = softplus(self.dt_proj(dt_r))       matmulPartial + matmulReduce(softplus)
//   y = selective_scan(...) * silu(z)          scanStarts (block starts + the final h), scanOutputBlocked
//   x = x + self.out_proj(y)                   matmulPartial + matmulReduce(residual)
// then logits = lm_head(norm_f(x)). Chunks longer than `chunk` run one after another; a remainder above 16
// tokens is split into powers of two so only a few plans (recorded pass lists, one per T) are ever built.
import {
	embedGather, matmulPartial, matmulReduce, matvecPartial, matvecReduce, EPI_NONE, EPI_RESIDUAL, EPI_SOFTPLUS,
} from '../../kernels/blocked-matmul.js';
import { normApplyBlocked, normCombine, normSlices } from '../../kernels/blocked-norms.js';
import { convNextState, convSiluBlocked } from '../../kernels/blocked-conv.js';
import { scanOutputBlocked, scanStarts } from '../../kernels/blocked-scan.js';
import type { Kernels } from '../backend/types.js';
import { range, whole, type Command, type DeviceBuffer, type Pass, type Program, type Runner, type View } from '../backend/resident/runner.js';
import { MambaState } from './state.js';
import type { Checkpoint, LanguageModel, MambaConfig, ModelState } from './types.js';

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
		this.runner.free(this.ssm);
		this.runner.free(this.conv);
	}
}
const ssmStride = (c: MambaConfig) => aligned(c.dInner * c.dState);
const convStride = (c: MambaConfig) => aligned(c.dInner * (c.dConv - 1));

/** Wᵀ (K, N) of a row-major W (N, K). */
function transpose(w: Float32Array, N: number, K: number): Float32Array {
	const t = new Float32Array(N * K);
	for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) t[k * N + n] = w[n * K + k];
	return t;
}

interface Mat {
	wt: DeviceBuffer; // (K, N)
	K: number;
	N: number;
	XC: number; // columns of the input
	partial: Program;
	reduce: Program;
	vecPartial: Program | null; // decode (T = 1) kernels, when K % 4 = 0
	vecReduce: Program;
	epi: number;
}

interface Layer {
	norm: View;
	normBias: View;
	inProj: Mat;
	convWeight: View;
	convBias: View;
	xProj: Mat;
	dtProj: Mat; // reads the first R columns of dbc
	dtBias: View;
	A: View;
	D: View;
	outProj: Mat;
	H: DeviceBuffer; // (TBmax + 1, E, N): block-start states of the last chunk; row TB is the new h
}

export class ResidentMamba implements LanguageModel {
	readonly config: MambaConfig;
	private readonly plans = new Map<number, Pass[]>();
	// Threads per split-K partial pass, for chunks and for decode; measured on the H200 (bench/webgpu.ts, README).
	private split = 1 << 20;
	private vecSplit = 1 << 18;
	private matvec = true; // decode with matvecPartial/matvecReduce (bench/webgpu.ts compares)
	private layers: Layer[] = [];
	private programs!: Record<'embed' | 'slices' | 'combine' | 'apply' | 'conv' | 'convNext' | 'starts' | 'scanOut', Program>;
	private head!: Mat;
	private bufs!: Record<
		'tokens' | 'xA' | 'xB' | 'normP' | 'stats' | 'u' | 'P' | 'xz' | 'xs' | 'dbc' | 'delta' | 'y' | 'logits' | 'zeros' |
		'embedding' | 'normF' | 'normFBias' | 'convNext' | 'workSsm' | 'workConv', DeviceBuffer
	>;

	private constructor(readonly checkpoint: Checkpoint, readonly runner: Runner, readonly kernels: Kernels, readonly chunk: number) {
		this.config = checkpoint.config;
		if (chunk % 4 !== 0) throw new Error('internal: the resident chunk must be a multiple of 4');
	}

	/**
	 * Why this shape cannot run resident, or null. gpu.js computes array indices in f32, exact below 2^24: every
	 * buffer a kernel indexes (the largest is a projection's Wᵀ) must stay under that.
	 */
	static unsupported(c: MambaConfig, chunk = 64): string | null {
		const E = c.dInner, RC = c.dtRank + 2 * c.dState;
		const largest = Math.max(2 * E * c.dModel, RC * E, c.vocabSize * c.dModel, (chunk / 4 + 1) * E * c.dState, (chunk / 4) * 2 * E * 4);
		return largest >= 1 << 24 ? `a ${largest}-float buffer; gpu.js indexes exactly only below 2^24` : null;
	}

	/** Compile the kernels and upload the weights. `kernels` names the backend and scores logits (perplexity). */
	static async create(checkpoint: Checkpoint, runner: Runner, kernels: Kernels, chunk = 64): Promise<ResidentMamba> {
		const m = new ResidentMamba(checkpoint, runner, kernels, chunk);
		await m.build();
		return m;
	}

	private async build(): Promise<void> {
		const r = this.runner;
		const c = this.config;
		const w = this.checkpoint.weights;
		const { dModel: d, dInner: E, dState: N, dtRank: R, dConv: K, vocabSize: V, eps, nLayer: L } = c;
		const RC = R + 2 * N;
		const TBm = this.chunk / 4;
		const layer = c.norm === 'layer' ? 1 : 0;
		const NS = normSliceCount(d);
		const A = 'array' as const, S = 'scalar' as const;
		this.programs = {
			embed: await r.program(embedGather, { D: d }, [A, A]),
			slices: await r.program(normSlices, { D: d, S: NS, eps, layer }, [A]),
			combine: await r.program(normCombine, { D: d, S: NS, eps, layer }, [A]),
			apply: await r.program(normApplyBlocked, { D: d, S: NS, eps, layer }, [A, A, A, A]),
			conv: await r.program(convSiluBlocked, { E, K }, [A, A, A, A]),
			convNext: await r.program(convNextState, { E, K }, [A, A, S]),
			starts: await r.program(scanStarts, { E, N, R, TMAX: this.chunk }, [A, A, A, A, A, S]),
			scanOut: await r.program(scanOutputBlocked, { E, N, R, TMAX: this.chunk }, [A, A, A, A, A, A, A]),
		};
		const programs = new Map<string, Program>();
		const once = async (key: string, make: () => Promise<Program>) => {
			if (!programs.has(key)) programs.set(key, await make());
			return programs.get(key)!;
		};
		const mat = async (data: Float32Array, N_: number, K_: number, XC: number, epi: number): Promise<Mat> => {
			const wt = r.alloc(N_ * K_);
			r.upload(whole(wt), transpose(data, N_, K_));
			return {
				wt, K: K_, N: N_, XC, epi,
				partial: await once(`mm:${K_}:${N_}:${XC}`, () =>
					r.program(matmulPartial, { K: K_, N: N_, XC, U: K_ % 4 ? 1 : 4 }, [A, A, S, S])),
				reduce: await once(`mr:${N_}:${epi}`, () => r.program(matmulReduce, { N: N_, epi }, [A, A, A, S, S])),
				vecPartial: K_ % 4 ? null : await once(`vp:${K_}:${N_}`, () => r.program(matvecPartial, { K: K_, N: N_, XC }, [A, A, S])),
				vecReduce: await once(`vr:${N_}:${epi}`, () => r.program(matvecReduce, { N: N_, epi }, [A, A, A, S])),
			};
		};
		const put = (data: Float32Array): View => {
			const b = r.alloc(data.length);
			r.upload(whole(b), data);
			return whole(b);
		};
		let pMax = 0;
		const need = (m: Mat) => {
			for (let TB = 1; TB <= TBm; TB++) pMax = Math.max(pMax, slices(TB, m.K, m.N, SPLIT_MAX) * TB * m.N * 4);
		};
		const zeros = r.alloc(Math.max(d, V));
		for (const l of w.layers) {
			const layerW: Layer = {
				norm: put(l.norm),
				normBias: l.normBias ? put(l.normBias) : whole(zeros),
				inProj: await mat(l.inProj, 2 * E, d, d, EPI_NONE),
				convWeight: put(l.convWeight),
				convBias: put(l.convBias),
				xProj: await mat(l.xProj, RC, E, E, EPI_NONE),
				dtProj: await mat(l.dtProj, E, R, RC, EPI_SOFTPLUS),
				dtBias: put(l.dtBias),
				A: put(l.aLog.map((v) => -Math.exp(v))),
				D: put(l.D),
				outProj: await mat(l.outProj, d, E, E, EPI_RESIDUAL),
				H: r.alloc((TBm + 1) * E * N),
			};
			[layerW.inProj, layerW.xProj, layerW.dtProj, layerW.outProj].forEach(need);
			this.layers.push(layerW);
		}
		this.head = await mat(w.lmHead ?? w.embedding, V, d, d, EPI_NONE);
		need(this.head);
		const act = (cols: number) => r.alloc(TBm * cols * 4);
		const emb = put(w.embedding).buf;
		this.bufs = {
			tokens: r.alloc(TBm * 4), xA: act(d), xB: act(d), normP: r.alloc(TBm * NS * 8), stats: r.alloc(TBm * 8), u: act(d), P: r.alloc(pMax),
			xz: act(2 * E), xs: act(E), dbc: act(RC), delta: act(E), y: act(E), logits: act(V), zeros,
			embedding: emb, normF: put(w.normF).buf, normFBias: w.normFBias ? put(w.normFBias).buf : zeros,
			convNext: r.alloc(L * convStride(c)), workSsm: r.alloc(L * ssmStride(c)), workConv: r.alloc(L * convStride(c)),
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

	/** Decode with the dedicated matvec kernels (true) or the blocked matmul ones (bench/webgpu.ts compares). */
	get decodeMatvec(): boolean {
		return this.matvec;
	}
	set decodeMatvec(on: boolean) {
		this.matvec = on;
		this.plans.clear();
	}

	newState(): DeviceState {
		return DeviceState.zeros(this.runner, this.config);
	}

	/** The recorded passes of one chunk of T tokens (scalars baked in), built once per T. */
	plan(T: number): readonly Pass[] {
		let passes = this.plans.get(T);
		if (passes) return passes;
		const r = this.runner;
		const p = this.programs;
		const b = this.bufs;
		const c = this.config;
		const { dModel: d, dInner: E, dState: N, dtRank: R, dConv: K, vocabSize: V } = c;
		const RC = R + 2 * N;
		const TB = Math.ceil(T / 4);
		const act = (buf: DeviceBuffer, cols: number) => range(buf, 0, TB * cols * 4);
		passes = [];
		const matmul = (m: Mat, x: View, out: View, residual: View, bias: View) => {
			if (T === 1 && this.matvec && m.vecPartial) {
				const S = vecSlices(m.K, m.N, this.vecSplit);
				passes!.push(r.pass(m.vecPartial, [x, whole(m.wt), m.K / S], range(b.P, 0, S * m.N), S * m.N));
				passes!.push(r.pass(m.vecReduce, [range(b.P, 0, S * m.N), residual, bias, S], out, m.N));
				return;
			}
			const S = slices(TB, m.K, m.N, this.split);
			const KS = Math.ceil(m.K / S);
			passes!.push(r.pass(m.partial, [x, whole(m.wt), TB, KS], range(b.P, 0, S * TB * m.N * 4), S * TB * m.N));
			passes!.push(r.pass(m.reduce, [range(b.P, 0, S * TB * m.N * 4), residual, bias, TB, S], out, TB * m.N));
		};
		const NS = normSliceCount(d);
		const norm = (x: View, w: View, bias: View) => {
			passes!.push(r.pass(p.slices, [x], range(b.normP, 0, TB * NS * 8), TB * NS * 2));
			passes!.push(r.pass(p.combine, [range(b.normP, 0, TB * NS * 8)], range(b.stats, 0, TB * 8), TB * 2));
			passes!.push(r.pass(p.apply, [x, range(b.stats, 0, TB * 8), w, bias], act(b.u, d), TB * d));
		};
		const zeros = whole(b.zeros);
		// x = self.embedding(input_ids)
		passes.push(r.pass(p.embed, [range(b.tokens, 0, TB * 4), whole(b.embedding)], act(b.xA, d), TB * d));
		let x = b.xA, next = b.xB;
		this.layers.forEach((L, l) => {
			const conv = range(b.workConv, l * convStride(c), E * (K - 1));
			const h0 = range(b.workSsm, l * ssmStride(c), E * N);
			const H = range(L.H, 0, (TB + 1) * E * N);
			norm(act(x, d), L.norm, L.normBias);
			matmul(L.inProj, act(b.u, d), act(b.xz, 2 * E), zeros, zeros);
			passes!.push(r.pass(p.conv, [act(b.xz, 2 * E), conv, L.convWeight, L.convBias], act(b.xs, E), TB * E));
			passes!.push(r.pass(p.convNext, [act(b.xz, 2 * E), conv, T], range(b.convNext, l * convStride(c), E * (K - 1)), E * (K - 1)));
			matmul(L.xProj, act(b.xs, E), act(b.dbc, RC), zeros, zeros);
			matmul(L.dtProj, act(b.dbc, RC), act(b.delta, E), zeros, L.dtBias);
			passes!.push(r.pass(p.starts, [act(b.delta, E), act(b.xs, E), act(b.dbc, RC), L.A, h0, T], H, (TB + 1) * E * N));
			passes!.push(r.pass(p.scanOut, [H, act(b.delta, E), act(b.xs, E), act(b.dbc, RC), act(b.xz, 2 * E), L.A, L.D], act(b.y, E), TB * E));
			matmul(L.outProj, act(b.y, E), act(next, d), act(x, d), zeros);
			[x, next] = [next, x];
		});
		// logits = self.lm_head(self.norm_f(x))
		norm(act(x, d), whole(b.normF), b.normFBias === b.zeros ? zeros : whole(b.normFBias));
		matmul(this.head, act(b.u, d), act(b.logits, V), zeros, zeros);
		this.plans.set(T, passes);
		return passes;
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

	private async forwardChunk(tokens: number[], s: ModelState): Promise<Float32Array> {
		if (!(s instanceof DeviceState)) throw new Error('internal: a resident model runs on its own DeviceState');
		const { dInner: E, dState: N, vocabSize: V, nLayer: L } = this.config;
		const T = tokens.length;
		const TB = Math.ceil(T / 4);
		for (const tok of tokens) {
			if (!(tok >= 0 && tok < V)) throw new RangeError(`token ${tok} outside the vocabulary 0..${V - 1}`);
		}
		const b = this.bufs;
		const ids = new Float32Array(TB * 4);
		ids.set(tokens);
		this.runner.upload(range(b.tokens, 0, TB * 4), ids);
		// The plan reads the state from fixed work buffers (its bindings never change), so copy in, then copy the
		// new h (row TB of each layer's block starts) and conv state out.
		const commands: Command[] = [
			{ copy: { from: whole(s.ssm), to: whole(b.workSsm) } },
			{ copy: { from: whole(s.conv), to: whole(b.workConv) } },
			...this.plan(T).map((pass) => ({ pass })),
			...this.layers.map((layer, l) => ({
				copy: { from: range(layer.H, TB * E * N, E * N), to: range(s.ssm, l * ssmStride(this.config), E * N) },
			})),
			{ copy: { from: range(b.convNext, 0, L * convStride(this.config)), to: whole(s.conv) } },
		];
		const blocked = (await this.runner.run(commands, range(b.logits, 0, TB * V * 4)))!;
		s.position += T;
		// (TB, V, 4) → (T, V)
		const out = new Float32Array(T * V);
		for (let t = 0; t < T; t++) {
			const base = (t >> 2) * V * 4 + (t & 3);
			for (let v = 0; v < V; v++) out[t * V + v] = blocked[base + v * 4];
		}
		return out;
	}
}
