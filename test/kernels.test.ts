// Every kernel family's fast forms against its plain reference (kernels/*.ts), one kernel at a time, on random
// inputs of awkward sizes: the host gpu.js kernels on gpu.js's cpu backend, and the blocked kernels of the
// GPU-resident forward on the CPU runner (the same functions the WebGPU runner compiles), in the blocked layout
// with padded positions. The native kernels are checked the same way in native.test.ts; the models as a whole
// against PyTorch in golden.test.ts and resident.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GpuJsKernels } from '../src/backend/gpujs.js';
import { CpuRunner, whole, type ProgramOptions } from '../src/backend/resident/runner.js';
import { rng } from '../src/model/random.js';
import { columns, fromBlocked, rows, splitDbc, splitXz, toBlocked } from '../kernels/layout.js';
import {
	matmulPartial, matmulReduce, matmulTile, matvecNormPartial, matvecNormReduce, matvecPartial, matvecReduce, projectionReference, softplus, Epi,
} from '../kernels/projection.js';
import { normApplyBlocked, normCombine, normReference, normSlices } from '../kernels/norms.js';
import { convAndState, convReference, nextConvState } from '../kernels/conv.js';
import { scanBlocks, scanCarry, scanGroups, scanOutputBlocked, scanReference, scanStarts, scanStep } from '../kernels/scan.js';
import { embedGather } from '../kernels/embedding.js';
import { logProbReference } from '../kernels/softmax.js';

const r = rng(2024);
const uniform = (n: number, lo = -1, hi = 1) => Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
const gpu = GpuJsKernels.create('cpu');

/** max |got − want| / (atol + rtol·|want|) over the elements: ≤ 1 passes. */
function close(got: ArrayLike<number>, want: ArrayLike<number>, what: string, atol = 1e-5, rtol = 1e-4): void {
	assert.is(got.length, want.length, `${what}: length`);
	let worst = 0;
	for (let i = 0; i < got.length; i++) {
		const e = Math.abs(got[i] - want[i]) / (atol + rtol * Math.abs(want[i]));
		worst = Number.isNaN(e) ? Infinity : Math.max(worst, e);
	}
	assert.ok(worst <= 1, `${what}: ${worst.toFixed(2)} of the tolerance`);
}

const transpose = (w: Float32Array, N: number, K: number) => {
	const t = new Float32Array(N * K);
	for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) t[k * N + n] = w[n * K + k];
	return t;
};

// ---- the host gpu.js kernels ----------------------------------------------------------------------------------

test('host projection (both kernels, every epilogue, a view of x) matches the reference', async () => {
	for (const [N, K, T, S, offset] of [[7, 8, 1, 8, 0], [13, 12, 5, 20, 3], [6, 3, 9, 11, 0], [9, 5, 2, 5, 0]]) {
		const w = { data: uniform(N * K), rows: N, cols: K };
		const x = columns(uniform(T * S + offset, -2, 2), offset, S);
		const res = uniform(T * N), bias = uniform(N, -25, 25);
		for (const epi of [undefined, { residual: res }, { softplusBias: bias }]) {
			close(await gpu.linear(w, x, T, epi), projectionReference(w, x, T, epi), `N=${N} K=${K} T=${T} S=${S} ${Object.keys(epi ?? {})}`);
		}
	}
});

test('host norms (RMS and Layer) match the reference', async () => {
	for (const [T, d] of [[1, 8], [5, 24], [3, 7]]) {
		const x = uniform(T * d, -3, 3), w = uniform(d, 0.5, 1.5);
		for (const b of [undefined, uniform(d)]) {
			close(await gpu.norm({ x, w, b }, { T, d, eps: 1e-5 }), normReference({ x, w, b }, { T, d, eps: 1e-5 }), `T=${T} d=${d} ${b ? 'layer' : 'rms'}`);
		}
	}
});

test('host conv matches the reference, earlier positions from the state', async () => {
	for (const [T, E, k] of [[1, 8, 4], [6, 5, 4], [3, 4, 2]]) {
		const xz = uniform(T * 2 * E, -2, 2), state = uniform(E * (k - 1), -2, 2), w = uniform(E * k), b = uniform(E);
		const args = { x: splitXz(xz, E).x, state, w, b };
		close(await gpu.convSilu(args, { T, E, k }), convReference(args, { T, E, k }), `T=${T} E=${E} k=${k}`);
	}
});

test('host scan (y and the carried state) matches the reference, B, C and z read as views', async () => {
	for (const [T, E, N, R] of [[1, 4, 8, 2], [7, 5, 4, 3], [3, 6, 16, 1]]) {
		const dbc = uniform(T * (R + 2 * N), -1.5, 1.5), xz = uniform(T * 2 * E, -3, 3);
		const { B, C } = splitDbc(dbc, R, N);
		const A = Float32Array.from({ length: E * N }, (_, i) => -(1 + (i % N)) * (0.5 + r()));
		const h0 = uniform(E * N);
		const args = { delta: uniform(T * E, 0.01, 0.8), x: uniform(T * E, -2, 2), B, C, z: splitXz(xz, E).z, A, D: uniform(E) };
		const hGot = h0.slice(), hWant = h0.slice();
		close(await gpu.scan({ ...args, h: hGot }, { T, E, N }), scanReference({ ...args, h: hWant }, { T, E, N }), `y T=${T} E=${E} N=${N}`);
		close(hGot, hWant, `h T=${T} E=${E} N=${N}`);
	}
});

test('host logProb matches the reference', async () => {
	const T = 6, V = 256, logits = uniform(T * V, -6, 6), target = [0, 255, 3, 97, 128, 1];
	close(await gpu.logProb(logits, T, V, target), logProbReference(logits, T, V, target), 'logProb', 1e-5, 1e-5);
});

// ---- the blocked kernels on the CPU runner ---------------------------------------------------------------------

const runner = new CpuRunner();

/** One pass of `fn` over `threads` threads; arrays are uploaded, numbers are scalars. Returns the output. */
async function pass(fn: Function, constants: Record<string, number>, args: Record<string, Float32Array | number>, out: number, threads: number, options: ProgramOptions = {}) {
	const kinds = Object.fromEntries(Object.entries(args).map(([k, v]) => [k, typeof v === 'number' ? 'scalar' : 'array'] as const));
	const bound = Object.fromEntries(Object.entries(args).map(([k, v]) => {
		if (typeof v === 'number') return [k, v];
		const b = whole(runner.alloc(v.length));
		runner.upload(b, v);
		return [k, b];
	}));
	const o = whole(runner.alloc(out));
	return (await runner.run([{ pass: runner.pass(await runner.program(fn, constants, kinds, options), bound, o, threads) }], o))!;
}

test('blocked matmul (split-K partial sums, then the reduction with each epilogue) matches the reference', async () => {
	// (N, K, XC, S slices, T): K a multiple of 4 (the unrolled loop) and not (dt_proj reading R of XC columns)
	for (const [N, K, XC, S, T] of [[12, 16, 16, 2, 5], [8, 24, 30, 3, 8], [10, 3, 11, 2, 6], [5, 7, 7, 4, 1]]) {
		const TB = Math.ceil(T / 4), KS = Math.ceil(K / S);
		const W = uniform(N * K), x = uniform(T * XC, -2, 2), res = uniform(T * N), bias = uniform(N, -25, 25);
		const P = await pass(matmulPartial, { K, N, XC, U: K % 4 ? 1 : 4 }, { x: toBlocked(x, T, XC), wt: transpose(W, N, K), TB, KS }, S * TB * N * 4, S * TB * N);
		const w = { data: W, rows: N, cols: K }, xv = columns(x, 0, XC);
		const cases: [Epi, Float32Array, Float32Array][] = [
			[Epi.None, projectionReference(w, xv, T), new Float32Array(N)],
			[Epi.Residual, projectionReference(w, xv, T, { residual: res }), new Float32Array(N)],
			[Epi.Softplus, projectionReference(w, xv, T, { softplusBias: bias }), bias],
			[Epi.Bias, projectionReference(w, xv, T).map((v, i) => v + bias[i % N]), bias],
		];
		for (const [epi, want, b] of cases) {
			const y = await pass(matmulReduce, { N, epi, tile: 0, tileBlocks: 0 }, { p: P, r: toBlocked(res, T, N), b, TB, S }, TB * N * 4, TB * N);
			close(fromBlocked(y, T, N), want, `N=${N} K=${K} XC=${XC} S=${S} T=${T} epi ${epi}`);
		}
	}
});

for (const [fn, R, B] of [[matmulTile, 4, 4]] as const) test(`${fn.name} (${R} rows × ${4 * B} positions a thread, ${4 * R * B} outputs) and the reduction of its planes match the reference`, async () => {
	// (N, K, XC, S slices, blocks): N a multiple of R, T of 4B; K not a multiple of S (the last slice short); XC > K (dt_proj)
	for (const [n, K, XC, S, nb] of [[4, 16, 16, 2, 1], [2, 24, 30, 3, 2], [3, 7, 7, 4, 1], [1, 40, 40, 1, 3]]) {
		const N = n * R, T = nb * 4 * B, TB = T / 4, KS = Math.ceil(K / S);
		const W = uniform(N * K), x = uniform(T * XC, -2, 2), res = uniform(T * N), bias = uniform(N, -25, 25);
		const P = await pass(fn, { K, N, XC }, { x: toBlocked(x, T, XC), wt: transpose(W, N, K), TB, KS }, S * TB * N * 4, (S * TB * N) / (R * B), { outputs: 4 * R * B });
		const w = { data: W, rows: N, cols: K }, xv = columns(x, 0, XC);
		const cases: [Epi, Float32Array, Float32Array][] = [
			[Epi.Residual, projectionReference(w, xv, T, { residual: res }), new Float32Array(N)],
			[Epi.Softplus, projectionReference(w, xv, T, { softplusBias: bias }), bias],
		];
		for (const [epi, want, b] of cases) {
			const y = await pass(matmulReduce, { N, epi, tile: R, tileBlocks: B }, { p: P, r: toBlocked(res, T, N), b, TB, S }, TB * N * 4, TB * N);
			close(fromBlocked(y, T, N), want, `N=${N} K=${K} XC=${XC} S=${S} T=${T} epi ${epi}`);
		}
	}
	// a wide kernel must return exactly its outputs
	const wrong = await pass(fn, { K: 8, N: R, XC: 8 }, { x: new Float32Array(32 * B), wt: new Float32Array(8 * R), TB: B, KS: 8 }, 4 * R * B, 1, { outputs: 32 })
		.then(() => 'ran', (e: Error) => e.message);
	assert.match(wrong, new RegExp(`returned ${4 * R * B} values, not 32`));
	// and its output view must hold every plane (the WebGPU runner refuses the same)
	const short = await pass(fn, { K: 8, N: R, XC: 8 }, { x: new Float32Array(32 * B), wt: new Float32Array(8 * R), TB: B, KS: 8 }, 4 * R * B - 1, 1, { outputs: 4 * R * B })
		.then(() => 'ran', (e: Error) => e.message);
	assert.match(short, /output view too small/);
});

test('blocked matvec (decode: one position, many slices) matches the reference', async () => {
	for (const [N, K, S] of [[12, 32, 4], [7, 16, 1], [9, 64, 8]]) {
		const KS = K / S;
		const W = uniform(N * K), x = uniform(K, -2, 2), res = uniform(N), bias = uniform(N, -25, 25);
		const P = await pass(matvecPartial, { K, N, XC: K, U: 4 }, { x: toBlocked(x, 1, K), wt: transpose(W, N, K), KS }, S * N, S * N);
		const w = { data: W, rows: N, cols: K };
		for (const [epi, e] of [[Epi.None, undefined], [Epi.Residual, { residual: res }], [Epi.Softplus, { softplusBias: bias }]] as const) {
			const y = await pass(matvecReduce, { N, epi }, { p: P, r: toBlocked(res, 1, N), b: bias, S }, N * 4, N);
			close(fromBlocked(y, 1, N), projectionReference(w, x, 1, e), `N=${N} K=${K} S=${S} epi ${epi}`);
		}
	}
});

test('blocked norm with the weights folded into the next projection (decode) matches norm, then projection', async () => {
	for (const [N, K, S] of [[12, 32, 4], [6, 16, 2]]) {
		const W = uniform(N * K), x = uniform(K, -3, 3), nw = uniform(K, 0.5, 1.5);
		for (const nb of [undefined, uniform(K)]) {
			// W' = W·diag(w), c1 = W' 1, c2 = W b
			const Wf = W.map((v, i) => v * nw[i % K]);
			const c1 = Float32Array.from({ length: N }, (_, n) => Wf.subarray(n * K, (n + 1) * K).reduce((a, v) => a + v, 0));
			const c2 = Float32Array.from({ length: N }, (_, n) => (nb ? W.subarray(n * K, (n + 1) * K).reduce((a, v, k) => a + v * nb[k], 0) : 0));
			const P = await pass(matvecNormPartial, { K, N, XC: K, U: 4 }, { x: toBlocked(x, 1, K), wt: transpose(Wf, N, K), KS: K / S }, S * N * 4, S * N);
			const y = await pass(matvecNormReduce, { N, D: K, eps: 1e-5, layer: nb ? 1 : 0 }, { p: P, c1, c2, S }, N * 4, N);
			const u = normReference({ x, w: nw, b: nb }, { T: 1, d: K, eps: 1e-5 });
			close(fromBlocked(y, 1, N), projectionReference({ data: W, rows: N, cols: K }, u, 1), `N=${N} K=${K} S=${S} ${nb ? 'layer' : 'rms'}`, 1e-4, 1e-4);
		}
	}
});

test('blocked norms (slices, combined, applied) match the reference', async () => {
	for (const [T, d, S] of [[5, 32, 4], [1, 16, 2], [8, 24, 1]]) {
		const TB = Math.ceil(T / 4), x = uniform(T * d, -3, 3).map((v, i) => v + (i % 3)), w = uniform(d, 0.5, 1.5), b0 = uniform(d);
		for (const layer of [0, 1]) {
			const constants = { D: d, S, eps: 1e-5, layer };
			const xb = toBlocked(x, T, d);
			const parts = await pass(normSlices, constants, { x: xb }, TB * S * 8, TB * S * 2);
			const stats = await pass(normCombine, constants, { p: parts }, TB * 8, TB * 2);
			const b = layer ? b0 : new Float32Array(d);
			const u = await pass(normApplyBlocked, constants, { x: xb, stats, w, b }, TB * d * 4, TB * d);
			close(fromBlocked(u, T, d), normReference({ x, w, b: layer ? b : undefined }, { T, d, eps: 1e-5 }), `T=${T} d=${d} S=${S} layer ${layer}`);
		}
	}
});

test('blocked conv (its output and the next conv state in one pass) matches the reference', async () => {
	for (const [T, E, k] of [[1, 8, 4], [6, 12, 4], [13, 4, 4], [2, 8, 3]]) {
		const TB = Math.ceil(T / 4);
		const xz = uniform(T * 2 * E, -2, 2), state = uniform(E * (k - 1), -2, 2), w = uniform(E * k), b = uniform(E);
		const out = await pass(convAndState, { E, K: k }, { xz: toBlocked(xz, T, 2 * E), state, w, b, T }, TB * E * 4 + E * (k - 1), TB * E + (E * (k - 1)) / 4);
		const args = { x: splitXz(xz, E).x, state, w, b };
		close(fromBlocked(out.subarray(0, TB * E * 4), T, E), convReference(args, { T, E, k }), `x' T=${T} E=${E} k=${k}`);
		assert.equal(out.subarray(TB * E * 4), nextConvState(args, { T, E, k }), `state T=${T} E=${E} k=${k}`);
	}
});

/** Random scan inputs with dbc (T, R + 2N) and xz (T, 2E) as the forward makes them. */
function scanInputs(T: number, E: number, N: number, R: number) {
	const dbc = uniform(T * (R + 2 * N), -1.5, 1.5), xz = uniform(T * 2 * E, -3, 3);
	const A = Float32Array.from({ length: E * N }, (_, i) => -(1 + (i % N)) * (0.5 + r()));
	const D = uniform(E), bdt = uniform(E, -2, 1);
	return { dbc, xz, A, D, bdt, p: Float32Array.from([...A, ...D, ...bdt]), x: uniform(T * E, -2, 2), h0: uniform(E * N) };
}

test('blocked scan (block-start states, then the outputs) matches the reference', async () => {
	// T = 70: 18 blocks in 3 groups of 8, the last block of 2 positions
	for (const [T, E, N, R] of [[1, 4, 8, 2], [7, 5, 4, 3], [16, 3, 16, 1], [9, 2, 4, 4], [70, 3, 4, 2]]) {
		const TB = Math.ceil(T / 4), RC = R + 2 * N;
		const s = scanInputs(T, E, N, R);
		const delta = uniform(T * E, 0.01, 0.8);
		const constants = { E, N, RC, Bc: R, Cc: R + N, TMAX: 72 };
		const blocked = { delta: toBlocked(delta, T, E), x: toBlocked(s.x, T, E), dbc: toBlocked(s.dbc, T, RC), p: s.p };
		const H = await pass(scanStarts, constants, { ...blocked, h0: s.h0, T }, (TB + 1) * E * N, (TB + 1) * E * N);
		// long chunks: each block alone, the blocks 8 at a time, then the state carried across both, gives the same block starts
		const ends = await pass(scanBlocks, constants, { ...blocked, T }, TB * E * N * 2, TB * E * N);
		const NG = Math.ceil(TB / 8);
		const groups = await pass(scanGroups, constants, { blocks: ends, TB }, NG * E * N * 2, NG * E * N);
		close(await pass(scanCarry, constants, { blocks: ends, groups, h0: s.h0 }, (TB + 1) * E * N, (TB + 1) * E * N), H, `block starts carried, T=${T}`);
		const y = await pass(scanOutputBlocked, constants, { ...blocked, H, xz: toBlocked(s.xz, T, 2 * E) }, TB * E * 4, TB * E);
		const { B, C } = splitDbc(s.dbc, R, N);
		const h = s.h0.slice();
		const want = scanReference({ delta, x: s.x, B, C, z: splitXz(s.xz, E).z, A: s.A, D: s.D, h }, { T, E, N });
		close(fromBlocked(y, T, E), want, `y T=${T} E=${E} N=${N} R=${R}`);
		close(H.subarray(TB * E * N), h, `h after the chunk, T=${T} E=${E} N=${N} R=${R}`);
	}
});

test('blocked scan step (decode: dt_proj reduction, softplus, y and the new state in one pass) matches the reference', async () => {
	for (const [E, N, R, DS] of [[8, 8, 4, 2], [4, 16, 2, 1], [12, 4, 1, 3]]) {
		const RC = R + 2 * N;
		const s = scanInputs(1, E, N, R);
		const pdt = uniform(DS * E, -1, 1);
		const constants = { E, N, RC, Bc: R, Cc: R + N, TMAX: 16 };
		const args = { pdt, x: toBlocked(s.x, 1, E), dbc: toBlocked(s.dbc, 1, RC), xz: toBlocked(s.xz, 1, 2 * E), p: s.p, h0: s.h0, DS };
		const out = await pass(scanStep, constants, args, E * 4 + E * N, E + (E * N) / 4);
		const delta = Float32Array.from({ length: E }, (_, e) => {
			let v = s.bdt[e];
			for (let j = 0; j < DS; j++) v += pdt[j * E + e];
			return softplus(v);
		});
		const { B, C } = splitDbc(s.dbc, R, N);
		const h = s.h0.slice();
		const want = scanReference({ delta, x: s.x, B, C, z: splitXz(s.xz, E).z, A: s.A, D: s.D, h }, { T: 1, E, N });
		close(fromBlocked(out.subarray(0, E * 4), 1, E), want, `y E=${E} N=${N} R=${R} DS=${DS}`);
		close(out.subarray(E * 4), h, `h E=${E} N=${N} R=${R} DS=${DS}`);
	}
});

test('blocked embedding gather gives the rows of the tokens', async () => {
	const V = 11, d = 6, tokens = [3, 0, 10, 7, 7, 2];
	const emb = uniform(V * d), T = tokens.length, TB = Math.ceil(T / 4);
	const ids = new Float32Array(TB * 4);
	ids.set(tokens);
	const out = await pass(embedGather, { D: d }, { tokens: ids, emb }, TB * d * 4, TB * d);
	const want = new Float32Array(T * d);
	tokens.forEach((tok, t) => want.set(emb.subarray(tok * d, (tok + 1) * d), t * d));
	assert.equal(fromBlocked(out, T, d), want);
});

test('the blocked layout: toBlocked and fromBlocked invert each other, rows keep their views', () => {
	const x = uniform(7 * 3);
	assert.equal(fromBlocked(toBlocked(x, 7, 3), 7, 3), x);
	assert.is(toBlocked(x, 7, 3).length, 2 * 3 * 4);
	assert.equal(rows(x, 3), { data: x, offset: 0, stride: 3 });
});

test.run();
