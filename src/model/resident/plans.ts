// Recording the GPU-resident forward as passes (src/model/resident.ts), once per chunk length: every buffer,
// offset and scalar is bound here, so running a plan is only submitting it. The plans read and write the
// recurrent state in fixed work buffers (workSsm, workConv); ResidentMamba copies a DeviceState in and out. No plan
// writes the work buffers, so after a pass they still hold the state before it (a verify pass's keep relies on it).
// Per layer, under the PyTorch line it implements:
//                                              chunk (T > 1)                       decode (T = 1)
//   u = self.norm(x)                           normSlices, normCombine, normApply  folded into in_proj (below)
//   xz = self.in_proj(u)                       matmulPartial + matmulReduce        matvecNormPartial + matvecNormReduce
//   x = silu(self.conv1d(x)[..., :T])          convAndState (also the next conv state)
//   dt_r, B, C = self.x_proj(x).split(...)     matmulPartial + matmulReduce        matvecPartial + matvecReduce
//   delta = softplus(self.dt_proj(dt_r))       matmulPartial + matmulReduce        matvecPartial, reduced in scanStep
//   y = selective_scan(...) * silu(z)          scanStarts (or scanBlocks,          scanStep (y and the new h)
//                                              scanGroups, scanCarry), scanOutputBlocked
//   x = x + self.out_proj(y)                   matmulPartial + matmulReduce        matvecPartial + matvecReduce
// then logits = lm_head(norm_f(x)), the norm folded into lm_head. The grouped decode plan (groupedDecodePlan, opt-in:
// slower on an H100 so far, README) cuts the decode step to 7 passes a layer: its projections sum over K inside each workgroup (a group
// sum, src/backend/resident/group-sum.ts), which leaves so few partial sums that convStep and scanStepFused finish
// in_proj's, x_proj's and dt_proj's themselves:
//   inProj  matvecNormGroup → Pin          conv   convStep (reduces Pin's x half, the norm folded)
//   xProj   matvecGroup → Px               dt     matvecGroupSummed (reads dt_r as Σ Px) → Pdt
//   scan    scanStepFused (Σ Pdt, B and C as Σ Px, z from Pin)
//   outProj matvecGroup → P, then matvecReduce with the residual
// The row decode plan (rowDecodePlan, the default where the shape allows) takes 6 passes a layer: each projection
// reads W as the checkpoint stores it (row-major, 16-bit where exact; upload.ts RowMat), a workgroup per row
// summing over K itself, so in_proj, dt_proj and out_proj leave nothing to reduce and x_proj at most 2 slices:
//   inProj  matvecRowNorm → Pin (one slice: [dot, Σx, Σx², 0] per row)   conv  convStep (SI = 1)
//   xProj   matvecRow → Px (SX slices)     dt  matvecRowSummed (dt_r as Σ Px) → Pdt (one slice)
//   scan    scanStepFused (DS = 1)         outProj matvecRowResidual → the next x (the residual added by lane 0)
// Its residual stream is plain (embedRow; out_proj writes one value a row), because every row's workgroup reads
// all of x and the blocked layout puts x's values 16 bytes apart; the head is matvecRowNorm + matvecNormReduce.
// (dt_proj inside the scan, R multiply-adds a thread, took 6.5 ms over the 972M shape's 48 layers on the H200 against
// 1.3 ms for the two passes apart: a thread's chain of dependent loads; bench/results/h200-webgpu-decode-session7-run1.txt
// and -run2.txt.)
import { range, whole, type DeviceBuffer, type Pass, type Runner, type View } from '../../backend/resident/runner.js';
import type { MambaConfig } from '../types.js';
import { convStride, ssmStride } from './device-state.js';
import { GROUP_SLICES, groupSlices, normSliceCount, rowSlices, slices, TILE, tileFits, tileSlices, vecSlices } from './split.js';
import type { Mat, RowMat, Uploaded } from './upload.js';
import type { Records } from './records.js';
import { CARRY_GROUP } from '../../../kernels/scan.js';

/** Layer l's h (E, N) in the work buffer the plans read and write. */
const workSsm = (c: MambaConfig, b: Uploaded['bufs'], l: number): View => range(b.workSsm, l * ssmStride(c), c.dInner * c.dState);

/** Layer l's conv state (E, k−1) in the work buffer. */
const workConv = (c: MambaConfig, b: Uploaded['bufs'], l: number): View =>
	range(b.workConv, l * convStride(c), c.dInner * (c.dConv - 1));

/**
 * Blocks of 4 above which a chunk's scan carries the state across blocks (scanBlocks, scanGroups, scanCarry: two
 * passes more) instead of replaying it from h0 in every block (scanStarts, whose cost grows with T²): verify
 * passes (up to 32 tokens) keep the one pass, prefill chunks (64, 256) take the three.
 */
export const CARRY_ABOVE = 8;

/**
 * Which projections a chunk plan runs: split-K partial sums (matmulPartial), the same 4 rows × 16 positions a
 * thread (matmulTile), or rows (matmulRow).
 */
export type PlanKind = 'split-K' | 'tiles' | 'rows';

/**
 * The passes of a chunk of T tokens, split-K partial passes at most `split` threads. With `rec` (a verify pass),
 * every layer's xz, conv output, dbc and Δ go to its own record slices (records.ts), for keep(j). With 'tiles',
 * the partial sums of every projection whose N is a multiple of 4 come from matmulTile (4 rows × 16 positions a
 * thread) instead of matmulPartial where the chunk is a multiple of 16 long, the same passes. With 'rows', in_proj,
 * x_proj, out_proj and the head are one
 * matmulRow pass each (the row plan's weights; 11 passes a layer instead of 14), where the shape has row weights.
 */
export function chunkPlan(r: Runner, c: MambaConfig, dev: Uploaded, T: number, split: number, rec?: Records, kind: PlanKind = 'split-K'): Pass[] {
	const rows = kind === 'rows';
	const p = dev.programs;
	const b = dev.bufs;
	const { dModel: d, dInner: E, dState: N, dtRank: R, dConv: K, vocabSize: V } = c;
	const RC = R + 2 * N;
	const TB = Math.ceil(T / 4);
	const NS = normSliceCount(d);
	const act = (buf: DeviceBuffer, cols: number) => range(buf, 0, TB * cols * 4);
	const zeros = whole(b.zeros);
	const passes: Pass[] = [];
	const matmul = (m: Mat, x: View, out: View, residual: View, bias: View) => {
		const tile = kind === 'tiles' && tileFits(TB, m.N) ? m.tile : null;
		const S = tile ? tileSlices(TB, m.K, m.N, split) : slices(TB, m.K, m.N, split);
		const P = range(b.P, 0, S * TB * m.N * 4);
		const KS = Math.ceil(m.K / S);
		if (tile) passes.push(r.pass(tile.tile, { x, wt: whole(m.wt), TB, KS }, P, (S * TB * m.N) / (TILE.rows * TILE.blocks)));
		else passes.push(r.pass(m.partial, { x, wt: whole(m.wt), TB, KS }, P, S * TB * m.N));
		passes.push(r.pass(tile ? tile.reduce : m.reduce, { p: P, r: residual, b: bias, TB, S }, out, TB * m.N));
	};
	// one pass: a workgroup per (block, row) sums over K itself (kernels/projection.ts matmulRow)
	const rowMatmul = (m: RowMat, x: View, out: View, nw: View, residual: View, bias: View) => {
		if (!m.chunk) throw new Error('internal: a row matrix without a chunk program');
		passes.push(r.pass(m.chunk, { x, w: whole(m.w), nw, r: residual, b: bias }, out, TB * m.N * 64));
	};
	const ones = whole(b.ones);
	// (x − μ)·rstd; the norm weight and bias are folded into the next projection
	const norm = (x: View) => {
		passes.push(r.pass(p.slices, { x }, range(b.normP, 0, TB * NS * 8), TB * NS * 2));
		passes.push(r.pass(p.combine, { p: range(b.normP, 0, TB * NS * 8) }, range(b.stats, 0, TB * 8), TB * 2));
		passes.push(r.pass(p.apply, { x, stats: range(b.stats, 0, TB * 8), w: whole(b.ones), b: zeros }, act(b.u, d), TB * d));
	};
	passes.push(r.pass(p.embed, { tokens: range(b.tokens, 0, TB * 4), emb: whole(b.embedding) }, act(b.xA, d), TB * d));
	let x = b.xA, next = b.xB;
	dev.layers.forEach((L, l) => {
		const to = rec?.layer(l, TB) ?? {
			xz: act(b.xz, 2 * E), conv: range(L.convOut, 0, TB * E * 4 + E * (K - 1)), dbc: act(b.dbc, RC), delta: act(b.delta, E),
		};
		const xs = range(to.conv.buf, to.conv.offset, TB * E * 4);
		const H = range(L.H, 0, (TB + 1) * E * N);
		norm(act(x, d));
		const lr = rows ? L.rows : null;
		if (lr) rowMatmul(lr.inProj, act(b.u, d), to.xz, lr.norm, zeros, L.inProj.c2);
		else matmul(L.inProj, act(b.u, d), to.xz, zeros, L.inProj.c2);
		const conv = { xz: to.xz, state: workConv(c, b, l), w: L.convWeight, b: L.convBias, T };
		passes.push(r.pass(p.conv, conv, to.conv, TB * E + (E * (K - 1)) / 4));
		if (lr) rowMatmul(lr.xProj, xs, to.dbc, ones, zeros, zeros);
		else matmul(L.xProj, xs, to.dbc, zeros, zeros);
		matmul(L.dtProj, to.dbc, to.delta, zeros, L.dtBias);
		const scan = { delta: to.delta, x: xs, dbc: to.dbc, p: L.scanParams };
		if (TB > CARRY_ABOVE) {
			const ends = range(b.blocks, 0, TB * E * N * 2), NG = Math.ceil(TB / CARRY_GROUP);
			const groups = range(b.groups, 0, NG * E * N * 2);
			passes.push(r.pass(p.blocks, { ...scan, T }, ends, TB * E * N));
			passes.push(r.pass(p.groups, { blocks: ends, TB }, groups, NG * E * N));
			passes.push(r.pass(p.carry, { blocks: ends, groups, h0: workSsm(c, b, l) }, H, (TB + 1) * E * N));
		} else passes.push(r.pass(p.starts, { ...scan, h0: workSsm(c, b, l), T }, H, (TB + 1) * E * N));
		passes.push(r.pass(p.scanOut, { ...scan, H, xz: to.xz }, act(b.y, E), TB * E));
		if (lr) rowMatmul(lr.outProj, act(b.y, E), act(next, d), ones, act(x, d), zeros);
		else matmul(L.outProj, act(b.y, E), act(next, d), act(x, d), zeros);
		[x, next] = [next, x];
	});
	norm(act(x, d));
	if (rows && dev.headRows) rowMatmul(dev.headRows.head, act(b.u, d), act(b.logits, V), dev.headRows.norm, zeros, dev.head.c2);
	else matmul(dev.head, act(b.u, d), act(b.logits, V), zeros, dev.head.c2);
	return passes;
}

/** The fused passes of one decode step, split-K partial passes at most `split` threads. */
export function decodePlan(r: Runner, c: MambaConfig, dev: Uploaded, split: number): Pass[] {
	const p = dev.programs;
	const b = dev.bufs;
	const { dModel: d, dInner: E, dState: N, dtRank: R, dConv: K, vocabSize: V } = c;
	const RC = R + 2 * N;
	const one = (buf: DeviceBuffer, cols: number) => range(buf, 0, cols * 4); // one block
	const zeros = whole(b.zeros);
	const passes: Pass[] = [];
	// partial sums (S, N[, 4]) then the reduction; returns where the partial sums are, for scanStep
	const matvec = (m: Mat, x: View, out: View | null, residual: View, bias: View) => {
		const S = vecSlices(m.K, m.N, split);
		const P = range(b.P, 0, S * m.N);
		passes.push(r.pass(m.vecPartial, { x, wt: whole(m.wt), KS: m.K / S }, P, S * m.N));
		if (out) passes.push(r.pass(m.vecReduce, { p: P, r: residual, b: bias, S }, out, m.N));
		return { P, S };
	};
	const normed = (m: Mat, x: View, out: View) => {
		const S = vecSlices(m.K, m.N, split);
		const P = range(b.P, 0, S * m.N * 4);
		passes.push(r.pass(m.vecPartial, { x, wt: whole(m.wt), KS: m.K / S }, P, S * m.N));
		passes.push(r.pass(m.vecReduce, { p: P, c1: m.c1, c2: m.c2, S }, out, m.N));
	};
	passes.push(r.pass(p.embed, { tokens: range(b.tokens, 0, 4), emb: whole(b.embedding) }, one(b.xA, d), d));
	let x = b.xA, next = b.xB;
	dev.layers.forEach((L, l) => {
		const xs = range(L.convOut, 0, E * 4);
		normed(L.inProj, one(x, d), one(b.xz, 2 * E));
		const conv = { xz: one(b.xz, 2 * E), state: workConv(c, b, l), w: L.convWeight, b: L.convBias, T: 1 };
		passes.push(r.pass(p.conv, conv, range(L.convOut, 0, E * 4 + E * (K - 1)), E + (E * (K - 1)) / 4));
		matvec(L.xProj, xs, one(b.dbc, RC), zeros, zeros);
		const dt = matvec(L.dtProj, one(b.dbc, RC), null, zeros, zeros);
		const step = { pdt: dt.P, x: xs, dbc: one(b.dbc, RC), xz: one(b.xz, 2 * E), p: L.scanParams, h0: workSsm(c, b, l), DS: dt.S };
		passes.push(r.pass(p.step, step, range(L.H, 0, E * 4 + E * N), E + (E * N) / 4));
		matvec(L.outProj, range(L.H, 0, E * 4), one(next, d), one(x, d), zeros);
		[x, next] = [next, x];
	});
	normed(dev.head, one(x, d), one(b.logits, V));
	return passes;
}

/** The grouped passes of one decode step (7 a layer; see the top), projections within `split` threads each. */
export function groupedDecodePlan(r: Runner, c: MambaConfig, dev: Uploaded, split: number): Pass[] {
	const p = dev.programs;
	const b = dev.bufs;
	const { dModel: d, dInner: E, dState: N, dtRank: R, dConv: K, vocabSize: V } = c;
	const one = (buf: DeviceBuffer, cols: number) => range(buf, 0, cols * 4); // one block
	const zeros = whole(b.zeros);
	const passes: Pass[] = [];
	// a projection's group partial sums into `out`: where they are and how many slices
	const group = (m: Mat, x: View, out: DeviceBuffer, max: number, folded = false) => {
		const parts = 64 / m.C;
		const S = groupSlices(m.K, m.N, parts, split, max);
		const P = range(out, 0, S * m.N * (folded ? 4 : 1));
		passes.push(r.pass(m.group, { x, wt: whole(m.wt), KS: m.K / S }, P, S * m.N * parts));
		return { P, S };
	};
	passes.push(r.pass(p.embed, { tokens: range(b.tokens, 0, 4), emb: whole(b.embedding) }, one(b.xA, d), d));
	let x = b.xA, next = b.xB;
	dev.layers.forEach((L, l) => {
		const xs = range(L.convOut, 0, E * 4);
		const pin = group(L.inProj, one(x, d), b.Pin, GROUP_SLICES.in, true);
		const conv = { pin: pin.P, cc: L.inProj.cc, state: workConv(c, b, l), w: L.convWeight, b: L.convBias, SI: pin.S };
		passes.push(r.pass(p.convStep, conv, range(L.convOut, 0, E * 4 + E * (K - 1)), E + (E * (K - 1)) / 4));
		const px = group(L.xProj, xs, b.Px, GROUP_SLICES.x);
		const dtParts = 64 / L.dtProj.C;
		const DS = groupSlices(R, E, dtParts, split, GROUP_SLICES.dt);
		const pdt = range(b.Pdt, 0, DS * E);
		passes.push(r.pass(L.dtProj.group, { px: px.P, wt: whole(L.dtProj.wt), KS: R / DS, XS: px.S }, pdt, DS * E * dtParts));
		const step = { pdt, x: xs, px: px.P, pin: pin.P, cc: L.inProj.cc, p: L.scanParams, h0: workSsm(c, b, l), DS, SX: px.S, SI: pin.S };
		passes.push(r.pass(p.stepFused, step, range(L.H, 0, E * 4 + E * N), E + (E * N) / 4));
		const out = group(L.outProj, range(L.H, 0, E * 4), b.P, GROUP_SLICES.out);
		passes.push(r.pass(L.outProj.vecReduce, { p: out.P, r: one(x, d), b: zeros, S: out.S }, one(next, d), d));
		[x, next] = [next, x];
	});
	const head = group(dev.head, one(x, d), b.P, GROUP_SLICES.out, true);
	passes.push(r.pass(dev.head.vecReduce, { p: head.P, c1: dev.head.c1, c2: dev.head.c2, S: head.S }, one(b.logits, V), V));
	return passes;
}

/** The row passes of one decode step (6 a layer, 2 for the head; see the top); x_proj's slices within `split` threads. */
export function rowDecodePlan(r: Runner, c: MambaConfig, dev: Uploaded, split: number): Pass[] {
	const p = dev.programs;
	const b = dev.bufs;
	const { dModel: d, dInner: E, dState: N, dtRank: R, dConv: K, vocabSize: V } = c;
	const RC = R + 2 * N;
	const one = (buf: DeviceBuffer, cols: number) => range(buf, 0, cols * 4); // one block
	const passes: Pass[] = [];
	const plain = (buf: DeviceBuffer) => range(buf, 0, d); // the residual stream, plain
	passes.push(r.pass(p.embedRow, { tokens: range(b.tokens, 0, 4), emb: whole(b.embedding) }, plain(b.xA), d));
	let x = b.xA, next = b.xB;
	dev.layers.forEach((L, l) => {
		const rows = L.rows;
		if (!rows) throw new Error('internal: the row decode plan on a shape without row weights');
		const xs = range(L.convOut, 0, E * 4);
		const pin = range(b.Pin, 0, 2 * E * 4);
		passes.push(r.pass(rows.inProj.program, { x: plain(x), w: whole(rows.inProj.w), nw: rows.norm }, pin, 2 * E * 64));
		const conv = { pin, cc: L.inProj.cc, state: workConv(c, b, l), w: L.convWeight, b: L.convBias, SI: 1 };
		passes.push(r.pass(p.convStep, conv, range(L.convOut, 0, E * 4 + E * (K - 1)), E + (E * (K - 1)) / 4));
		const SX = rowSlices(E, RC, split);
		const px = range(b.Px, 0, SX * RC);
		passes.push(r.pass(rows.xProj.program, { x: xs, w: whole(rows.xProj.w), KS: E / SX }, px, SX * RC * 64));
		const pdt = range(b.Pdt, 0, E);
		passes.push(r.pass(rows.dtProj.program, { px, w: whole(rows.dtProj.w), XS: SX }, pdt, E * 64));
		const step = { pdt, x: xs, px, pin, cc: L.inProj.cc, p: L.scanParams, h0: workSsm(c, b, l), DS: 1, SX, SI: 1 };
		passes.push(r.pass(p.stepFused, step, range(L.H, 0, E * 4 + E * N), E + (E * N) / 4));
		passes.push(r.pass(rows.outProj.program, { x: range(L.H, 0, E * 4), w: whole(rows.outProj.w), r: plain(x) }, plain(next), d * 64));
		[x, next] = [next, x];
	});
	// the head: one slice of [dot, Σx, Σx², 0] per row, then the norm finished with its folded c1 and c2
	const h = dev.headRows;
	if (!h) throw new Error('internal: the row decode plan on a shape without row weights');
	const P = range(b.P, 0, V * 4);
	passes.push(r.pass(h.head.program, { x: plain(x), w: whole(h.head.w), nw: h.norm }, P, V * 64));
	passes.push(r.pass(dev.head.vecReduce, { p: P, c1: dev.head.c1, c2: dev.head.c2, S: 1 }, one(b.logits, V), V));
	return passes;
}
