// Setting up the GPU-resident forward: compile the blocked kernels and upload the weights, once. Projections are
// stored transposed, Wᵀ (K, N), so neighbouring threads read neighbouring floats, and the norm in front of in_proj
// and lm_head is folded into them (kernels/projection.ts says how): W' = W·diag(w), c1 = W' 1, c2 = W b. The row
// decode plan (plans.ts) gets a second copy as the checkpoint holds it, row-major, unfolded, in 16 bits where every
// value is a float16 (RowMat).
import {
	matmulPartial, matmulReduce, matmulTile, matvecGroup, matvecGroupSummed, matvecNormGroup, matvecNormPartial, matvecNormReduce, matvecPartial,
	matvecReduce, matvecRow, matvecRowNorm, matvecRowResidual, matvecRowSummed, matmulRow, Epi,
} from '../../../kernels/projection.js';
import { embedGather, embedRow } from '../../../kernels/embedding.js';
import { normApplyBlocked, normCombine, normSlices } from '../../../kernels/norms.js';
import { convAndState, convStep } from '../../../kernels/conv.js';
import { CARRY_GROUP, scanBlocks, scanCarry, scanGroups, scanOutputBlocked, scanStarts, scanStep, scanStepFused } from '../../../kernels/scan.js';
import { dbcColumns } from '../../../kernels/layout.js';
import { range, whole, type DeviceBuffer, type Program, type ProgramOptions, type Runner, type View } from '../../backend/resident/runner.js';
import { sixteenBits } from '../../backend/resident/halves.js';
import type { Checkpoint, MambaConfig, Weight } from '../types.js';
import { denseWeight, layerA } from '../weights.js';
import { convStride, ssmStride } from './device-state.js';
import { aligned, GROUP_SLICES, groupSlices, groupWidth, normSliceCount, slices, SPLIT_MAX, TILE, tileFits, tileSlices, vecSlices } from './split.js';

/** A projection on the device: its weights and the programs of its chunk and decode passes. */
export interface Mat {
	wt: DeviceBuffer; // Wᵀ (K, N), with a folded norm weight for in_proj and lm_head
	K: number;
	N: number;
	partial: Program;
	tile: { tile: Program; reduce: Program } | null; // matmulTile and the reduction of its planes, where N allows (plans.ts chunkPlan)
	reduce: Program; // for chunks, with the matrix's epilogue
	vecPartial: Program; // decode
	vecReduce: Program;
	group: Program; // decode with group sums (plans.ts groupedDecodePlan): matvecGroup, matvecNormGroup or, for dt_proj, matvecGroupSummed
	C: number; // its group-sum width (columns per workgroup)
	c1: View; // folded norm: W'1 and W b; zeros otherwise
	c2: View;
	cc: View; // [c1 | c2] in one buffer (a kernel may bind only 8 storage buffers)
}

/** A decode projection of the row plan (plans.ts rowDecodePlan): W as the checkpoint holds it, 16-bit where exact. */
export interface RowMat {
	w: DeviceBuffer; // W (N, K) row-major: float16 or bfloat16 when every value is one (halves.ts), else float32
	K: number;
	N: number;
	program: Program; // matvecRowNorm (in_proj), matvecRow (x_proj), matvecRowSummed (dt_proj) or matvecRowResidual (out_proj)
	chunk: Program | null; // matmulRow with this matrix's epilogue, for chunks (plans.ts chunkPlan with rows); not dt_proj
}

interface Layer {
	inProj: Mat;
	convWeight: View;
	convBias: View;
	xProj: Mat;
	dtProj: Mat; // reads the first R columns of dbc
	dtBias: View;
	scanParams: View; // [A (E, N) | D (E) | b_dt (E)] for the scan kernels: layer l's slice of bufs.params
	outProj: Mat;
	rows: { inProj: RowMat; xProj: RowMat; dtProj: RowMat; outProj: RowMat; norm: View } | null; // the row plan's, where the shape allows it
	convOut: DeviceBuffer; // [x' (TB, E, 4) | next conv state (E, k−1)]
	H: DeviceBuffer; // chunks: (TBmax + 1, E, N) block-start states, row TB the new h; decode: [y (E, 4) | h (E, N)]
}

type ProgramName = 'embed' | 'embedRow' | 'slices' | 'combine' | 'apply' | 'conv' | 'starts' | 'blocks' | 'groups' | 'carry' | 'scanOut' | 'step' | 'convStep' | 'stepFused';
type BufferName =
	| 'tokens' | 'xA' | 'xB' | 'normP' | 'stats' | 'u' | 'P' | 'xz' | 'dbc' | 'delta' | 'y' | 'logits' | 'zeros' | 'ones'
	| 'Pin' | 'Px' | 'Pdt' // the grouped decode plan's partial sums of in_proj, x_proj and dt_proj, read after later passes
	| 'blocks' | 'groups' // a long chunk's scan: each block's and each group's [end, decay] (kernels/scan.ts scanBlocks, scanGroups)
	| 'embedding' | 'workSsm' | 'workConv' | 'params';

/** Everything the plans bind: programs, per-layer weights, the head, and the activation and work buffers. */
export interface Uploaded {
	programs: Record<ProgramName, Program>;
	layers: Layer[];
	head: Mat;
	headRows: { head: RowMat; norm: View } | null; // the row plan's head (matvecRowNorm, then head.vecReduce)
	bufs: Record<BufferName, DeviceBuffer>;
}

/** Whether the row decode plan runs this shape: its projections take k in pairs, its scan threads 4 states each. */
export const rowsFit = (c: MambaConfig): boolean => c.dModel % 2 === 0 && c.dInner % 2 === 0 && c.dState % 4 === 0;

/** Floats between two layers' scan parameters [A (E, N) | D (E) | b_dt (E)] in bufs.params. */
export const paramsStride = (c: MambaConfig): number => aligned(c.dInner * c.dState + 2 * c.dInner);

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

/**
 * Options of an upload. `decodeIntIndex`: the decode plans' kernels (the row projections, convStep, scanStepFused,
 * the embedding and the head's norm) compute their index sums in integers too (int-index.ts; the chunk plans'
 * matmul and carry kernels always do). Opt-in until measured on a GPU (bench/webgpu.ts --decode).
 */
export interface UploadOptions {
	decodeIntIndex?: boolean;
}

/** Compile the kernels for this shape and chunk length, and upload the checkpoint's weights. */
export async function upload(checkpoint: Checkpoint<Weight>, r: Runner, chunk: number, opts: UploadOptions = {}): Promise<Uploaded> {
	const c = checkpoint.config;
	const w = checkpoint.weights;
	const { dModel: d, dInner: E, dState: N, dtRank: R, dConv: K, vocabSize: V, eps } = c;
	const RC = R + 2 * N;
	const TBm = chunk / 4;
	const layer = c.norm === 'layer' ? 1 : 0;
	const NS = normSliceCount(d);
	const A = 'array' as const, S = 'scalar' as const;
	const cols = dbcColumns(R, N);
	const scan = { E, N, RC: cols.width, Bc: cols.B, Cc: cols.C, TMAX: chunk };
	const norm = { D: d, S: NS, eps, layer };
	const ii: ProgramOptions = opts.decodeIntIndex ? { intIndex: true } : {}; // for the decode plans' kernels
	const programs = {
		embed: await r.program(embedGather, { D: d }, { tokens: A, emb: A }),
		embedRow: await r.program(embedRow, { D: d }, { tokens: A, emb: A }, ii),
		slices: await r.program(normSlices, norm, { x: A }),
		combine: await r.program(normCombine, norm, { p: A }),
		apply: await r.program(normApplyBlocked, norm, { x: A, stats: A, w: A, b: A }),
		conv: await r.program(convAndState, { E, K }, { xz: A, state: A, w: A, b: A, T: S }),
		starts: await r.program(scanStarts, scan, { delta: A, x: A, dbc: A, p: A, h0: A, T: S }),
		blocks: await r.program(scanBlocks, scan, { delta: A, x: A, dbc: A, p: A, T: S }),
		groups: await r.program(scanGroups, scan, { blocks: A, TB: S }, { intIndex: true }),
		carry: await r.program(scanCarry, scan, { blocks: A, groups: A, h0: A }, { intIndex: true }),
		scanOut: await r.program(scanOutputBlocked, scan, { H: A, delta: A, x: A, dbc: A, xz: A, p: A }),
		step: await r.program(scanStep, scan, { pdt: A, x: A, dbc: A, xz: A, p: A, h0: A, DS: S }),
		convStep: await r.program(convStep, { E, K, D: d, eps, layer }, { pin: A, cc: A, state: A, w: A, b: A, SI: S }, ii),
		stepFused: await r.program(scanStepFused, { ...scan, D: d, eps, layer }, {
			pdt: A, x: A, px: A, pin: A, cc: A, p: A, h0: A, DS: S, SX: S, SI: S,
		}, ii),
	};
	// projections of the same shape and epilogue share their programs
	const compiled = new Map<string, Program>();
	const once = async (key: string, make: () => Promise<Program>) => {
		if (!compiled.has(key)) compiled.set(key, await make());
		return compiled.get(key)!;
	};
	const put = (data: Float32Array): View => {
		const b = r.alloc(data.length);
		r.upload(whole(b), data);
		return whole(b);
	};
	const zeros = r.alloc(Math.max(d, V, 2 * E, RC)); // the widest output: a stand-in for an unused residual or bias
	// matmulTile and the reduction of its planes, shared by projections of one shape
	const tileProgram = async (K_: number, N_: number, XC: number, epi: Epi) => {
		if (N_ % TILE.rows) return null;
		const { rows, blocks } = TILE;
		return {
			tile: await once(`mt:${K_}:${N_}:${XC}`, () => r.program(matmulTile, { K: K_, N: N_, XC }, { x: A, wt: A, TB: S, KS: S }, { outputs: rows * blocks * 4, intIndex: true })),
			reduce: await once(`mtr:${N_}:${epi}`, () => r.program(matmulReduce, { N: N_, epi, tile: rows, tileBlocks: blocks }, { p: A, r: A, b: A, TB: S, S }, { intIndex: true })),
		};
	};
	// A projection (N_, K_) reading XC columns of x; `fold` is the norm in front of it (weight, bias), if any.
	const mat = async (
		data: Float32Array, N_: number, K_: number, XC: number, epi: Epi, fold?: [Float32Array, Float32Array | undefined],
		{ want = 16, summed = false } = {}, // group-sum width to aim for; whether x is another projection's partial sums (dt_proj)
	): Promise<Mat> => {
		const wt = r.alloc(N_ * K_);
		r.upload(whole(wt), transpose(data, N_, K_, fold?.[0]));
		const bias = fold?.[1];
		if (bias) epi = Epi.Bias;
		const vp = fold ? matvecNormPartial : matvecPartial;
		const C = groupWidth(N_, want);
		const g = { K: K_, N: N_, C, P: 64 / C };
		const c1 = fold ? matVec(data, N_, K_, fold[0]) : null;
		const c2 = bias ? matVec(data, N_, K_, bias) : null;
		return {
			group: await once(`g:${K_}:${N_}:${C}:${!!fold}:${summed}`, () => summed
				? r.program(matvecGroupSummed, { ...g, XN: RC }, { px: A, wt: A, KS: S, XS: S }, { groupSum: C })
				: r.program(fold ? matvecNormGroup : matvecGroup, g, { x: A, wt: A, KS: S }, { groupSum: C })),
			C,
			cc: fold ? put(Float32Array.from([...c1!, ...(c2 ?? new Float32Array(N_))])) : whole(zeros),
			wt, K: K_, N: N_,
			partial: await once(`mm:${K_}:${N_}:${XC}`, () => r.program(matmulPartial, { K: K_, N: N_, XC, U: K_ % 4 ? 1 : 4 }, { x: A, wt: A, TB: S, KS: S }, { intIndex: true })),
			tile: await tileProgram(K_, N_, XC, epi),
			reduce: await once(`mr:${N_}:${epi}`, () => r.program(matmulReduce, { N: N_, epi, tile: 0, tileBlocks: 0 }, { p: A, r: A, b: A, TB: S, S }, { intIndex: true })),
			vecPartial: await once(`vp:${K_}:${N_}:${XC}:${!!fold}`, () => r.program(vp, { K: K_, N: N_, XC, U: 4 }, { x: A, wt: A, KS: S })),
			vecReduce: fold
				? await once(`vnr:${N_}:${K_}`, () => r.program(matvecNormReduce, { N: N_, D: K_, eps, layer }, { p: A, c1: A, c2: A, S }, ii))
				: await once(`vr:${N_}:${epi}`, () => r.program(matvecReduce, { N: N_, epi }, { p: A, r: A, b: A, S })),
			c1: c1 ? put(c1) : whole(zeros),
			c2: c2 ? put(c2) : whole(zeros),
		};
	};
	// A row-plan projection: W uploaded as stored (no transpose, no folded norm weight), in 16 bits where exact.
	const rowKernels = {
		norm: [matvecRowNorm, { x: A, w: A, nw: A }],
		plain: [matvecRow, { x: A, w: A, KS: S }],
		summed: [matvecRowSummed, { px: A, w: A, XS: S }],
		residual: [matvecRowResidual, { x: A, w: A, r: A }],
	} as const;
	const rowMat = async (data: Float32Array, N_: number, K_: number, kind: keyof typeof rowKernels): Promise<RowMat> => {
		const sixteen = sixteenBits(data);
		const wBuf = r.alloc(N_ * K_, sixteen?.kind ?? null);
		if (sixteen) r.uploadHalves(wBuf, sixteen.bits);
		else r.upload(whole(wBuf), data);
		const bits = sixteen?.kind ?? 'f32';
		const [fn, kinds] = rowKernels[kind];
		const options: ProgramOptions = { groupSum: 1, halves: sixteen ? { w: sixteen.kind } : {} };
		const epi = kind === 'norm' ? Epi.Bias : kind === 'residual' ? Epi.Residual : Epi.None;
		const chunk = kind === 'summed' ? null : await once(`rowc:${K_}:${N_}:${epi}:${bits}`, () =>
			r.program(matmulRow, { K: K_, N: N_, epi }, { x: A, w: A, nw: A, r: A, b: A }, options));
		const decodeOptions = { ...options, ...ii };
		return { w: wBuf, K: K_, N: N_, program: await once(`row:${kind}:${K_}:${N_}:${bits}`, () => r.program(fn, { K: K_, N: N_, XN: RC }, kinds, decodeOptions)), chunk };
	};
	// the partial-sum buffer is shared by every projection: sized for the largest split any plan may use
	let pMax = 0;
	const need = (m: Mat) => {
		for (let TB = 1; TB <= TBm; TB++) pMax = Math.max(pMax, slices(TB, m.K, m.N, SPLIT_MAX) * TB * m.N * 4);
		if (m.tile) for (let TB = 1; TB <= TBm; TB++) if (tileFits(TB, m.N)) pMax = Math.max(pMax, tileSlices(TB, m.K, m.N, SPLIT_MAX) * TB * m.N * 4);
		if (m.K % 4 === 0) pMax = Math.max(pMax, vecSlices(m.K, m.N, SPLIT_MAX) * m.N * 4);
		pMax = Math.max(pMax, groupSlices(m.K, m.N, 64 / m.C, SPLIT_MAX, GROUP_SLICES.out) * m.N * 4);
	};
	// the grouped decode plan's slices read later in the layer (plans.ts), at most GROUP_SLICES of each
	const Pin = r.alloc(GROUP_SLICES.in * 2 * E * 4), Px = r.alloc(GROUP_SLICES.x * RC), Pdt = r.alloc(GROUP_SLICES.dt * E);
	// every layer's scan parameters in one buffer, so that a rollback (records.ts) reads all layers in one pass
	const params = r.alloc(c.nLayer * paramsStride(c));
	const layers: Layer[] = [];
	for (const l of w.layers) {
		const aNeg = layerA(l); // A = −exp(A_log), once (or as a GGUF file stores it)
		const scanParams = range(params, layers.length * paramsStride(c), E * N + 2 * E);
		r.upload(scanParams, Float32Array.from([...aNeg, ...l.D, ...l.dtBias]));
		const layerW: Layer = {
			inProj: await mat(denseWeight(l.inProj), 2 * E, d, d, Epi.None, [l.norm, l.normBias]),
			convWeight: put(l.convWeight),
			convBias: put(l.convBias),
			xProj: await mat(denseWeight(l.xProj), RC, E, E, Epi.None, undefined, { want: 4 }), // narrow groups: only RC columns to spread
			dtProj: await mat(denseWeight(l.dtProj), E, R, RC, Epi.Softplus, undefined, { summed: true }),
			dtBias: put(l.dtBias),
			scanParams,
			outProj: await mat(denseWeight(l.outProj), d, E, E, Epi.Residual),
			rows: rowsFit(c)
				? {
					inProj: await rowMat(denseWeight(l.inProj), 2 * E, d, 'norm'),
					xProj: await rowMat(denseWeight(l.xProj), RC, E, 'plain'),
					dtProj: await rowMat(denseWeight(l.dtProj), E, R, 'summed'),
					outProj: await rowMat(denseWeight(l.outProj), d, E, 'residual'),
					norm: put(l.norm),
				}
				: null,
			convOut: r.alloc(TBm * E * 4 + E * (K - 1)),
			H: r.alloc((TBm + 1) * E * N),
		};
		[layerW.inProj, layerW.xProj, layerW.dtProj, layerW.outProj].forEach(need);
		layers.push(layerW);
	}
	const headW = denseWeight(w.lmHead ?? w.embedding);
	const head = await mat(headW, V, d, d, Epi.None, [w.normF, w.normFBias]);
	need(head);
	const headRows = rowsFit(c) ? { head: await rowMat(headW, V, d, 'norm'), norm: put(w.normF) } : null;
	const act = (cols: number) => r.alloc(TBm * cols * 4);
	const bufs = {
		tokens: r.alloc(TBm * 4), xA: act(d), xB: act(d), normP: r.alloc(TBm * NS * 8), stats: r.alloc(TBm * 8), u: act(d),
		P: r.alloc(pMax), Pin, Px, Pdt, blocks: r.alloc(TBm * E * N * 2), groups: r.alloc(Math.ceil(TBm / CARRY_GROUP) * E * N * 2), xz: act(2 * E), dbc: act(RC), delta: act(E), y: act(E), logits: act(V), zeros,
		ones: put(new Float32Array(Math.max(d, E)).fill(1)).buf, // a norm weight of ones (also matmulRow's nw where no norm precedes)
		embedding: put(denseWeight(w.embedding)).buf,
		workSsm: r.alloc(c.nLayer * ssmStride(c)), workConv: r.alloc(c.nLayer * convStride(c)), params,
	};
	return { programs, layers, head, headRows, bufs };
}
