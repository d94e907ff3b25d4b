// The native CPU backend (native/src, built by node-gyp): every kernel against the plain references in kernels/*.ts
// on random inputs of awkward sizes (K and E not multiples of 8, T = 1 and T = 64, strides wider than K), on every
// instruction set this CPU can run (the portable build and AVX2+FMA); then the whole model against the reference
// kernels, and its prefill against its own byte-by-byte stepping. Skipped, with a note, when the addon is not built.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadNative, NativeKernels } from '../src/backend/native.js';
import { referenceKernels } from '../src/backend/reference.js';
import { parseBackend, selectBackend } from '../src/backend/select.js';
import { Mamba } from '../src/model/mamba.js';
import { randomCheckpoint, rng, shapeConfig } from '../src/model/random.js';
import { projectionReference } from '../kernels/projection.js';
import { columns, rows, splitDbc, splitXz } from '../kernels/layout.js';
import { normReference } from '../kernels/norms.js';
import { convReference } from '../kernels/conv.js';
import { scanReference } from '../kernels/scan.js';
import { logProbReference } from '../kernels/softmax.js';

let kernels: NativeKernels | undefined;
try {
	loadNative();
	kernels = NativeKernels.create();
} catch (e) {
	console.log(`native.test: skipped, the native addon is not available: ${e instanceof Error ? e.message : e}`);
}

const r = rng(12345);
const uniform = (n: number, lo = -1, hi = 1) => Float32Array.from({ length: n }, () => lo + (hi - lo) * r());

/** max over i of |got − want| / (atol + rtol·scale[i]) — ≤ 1 passes. */
function worst(got: ArrayLike<number>, want: ArrayLike<number>, atol: number, rtol: number, scale?: ArrayLike<number>): number {
	assert.is(got.length, want.length);
	let m = 0;
	for (let i = 0; i < got.length; i++) {
		const d = Math.abs(got[i] - want[i]);
		if (!(d <= Infinity)) return Infinity; // NaN
		m = Math.max(m, d / (atol + rtol * (scale ? scale[i] : Math.abs(want[i]))));
	}
	return m;
}

async function rejects(fn: () => Promise<unknown>, pattern: RegExp): Promise<void> {
	try {
		await fn();
	} catch (e) {
		assert.match(String(e instanceof Error ? e.message : e), pattern);
		return;
	}
	assert.unreachable(`expected a rejection matching ${pattern}`);
}

const maxAbsDiff = (a: Float32Array, b: Float32Array) => {
	assert.is(a.length, b.length);
	let m = 0;
	for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
	return m;
};

if (kernels) {
	const k = kernels;
	const defaults = k.info;
	console.log(`native.test: instruction sets ${defaults.isas.join(', ')}; default ${defaults.isa}, ${defaults.threads} threads`);

	for (const isa of defaults.isas) {
		const use = () => k.configure({ isa });

		// (N, K, T, S): K not a multiple of 8, T = 1, 2, 3, 5, 64, strides wider than K, one-element shapes.
		const linearShapes: [number, number, number, number][] = [
			[1, 1, 1, 1], [7, 13, 1, 13], [4, 8, 1, 8], [37, 29, 5, 31], [130, 257, 64, 260], [64, 64, 64, 64],
			[3, 17, 2, 40], [12, 100, 3, 100], [25, 9, 64, 9], [1000, 33, 1, 33], [9, 1, 4, 3],
		];
		test(`native ${isa}: linear (no epilogue, residual, softplus) matches the reference`, async () => {
			use();
			for (const [N, K, T, S] of linearShapes) {
				// x is a view at an odd offset that ends right after the last row's K columns
				const W = uniform(N * K), x = uniform(3 + (T - 1) * S + K, -2, 2).subarray(3), res = uniform(T * N, -3, 3);
				const bias = Float32Array.from({ length: N }, (_, i) => [-30, -4, 0, 3, 19.9, 20.5, 40][i % 7] + r());
				const w = { data: W, rows: N, cols: K };
				const xv = columns(x, 0, S);
				const at = `N=${N} K=${K} T=${T} S=${S}`;
				// Σ|w·x| per output bounds the rounding error of any summation order.
				const mag = new Float64Array(T * N);
				for (let t = 0; t < T; t++) {
					for (let i = 0; i < N; i++) {
						let m = 1;
						for (let j = 0; j < K; j++) m += Math.abs(W[i * K + j] * x[t * S + j]);
						mag[t * N + i] = m;
					}
				}
				const plain = await k.linear(w, xv, T);
				const e = worst(plain, projectionReference(w, xv, T), 0, 2e-6, mag);
				assert.ok(e <= 1, `${at}: ${e} of the tolerance`);
				const withRes = await k.linear(w, xv, T, { residual: res });
				assert.ok(worst(withRes, projectionReference(w, xv, T, { residual: res }), 0, 2e-6, mag) <= 1, `residual ${at}`);
				for (let i = 0; i < T * N; i++) assert.is(withRes[i], Math.fround(plain[i] + res[i]), `residual ${at} [${i}]`);
				// softplus: against softplus (in float64) of the same pre-activation, tightly, and the reference loosely
				const sp = await k.linear(w, xv, T, { softplusBias: bias });
				const spOfPlain = Float32Array.from({ length: T * N }, (_, i) => {
					const v = Math.fround(plain[i] + bias[i % N]);
					return v > 20 ? v : Math.log1p(Math.exp(v));
				});
				assert.ok(worst(sp, spOfPlain, 1e-37, 1e-6) <= 1, `softplus ${at}: ${worst(sp, spOfPlain, 1e-37, 1e-6)}`);
				assert.ok(worst(sp, projectionReference(w, xv, T, { softplusBias: bias }), 0, 2e-6, mag) <= 1, `softplus vs reference ${at}`);
			}
		});

		test(`native ${isa}: norm (RMS and Layer) matches the reference`, async () => {
			use();
			for (const [T, d] of [[1, 1], [1, 7], [3, 1024], [64, 33], [2, 8]]) {
				const x = uniform(T * d, -3, 3), w = uniform(d, 0.5, 1.5), b = uniform(d);
				for (const bias of [undefined, b]) {
					const got = await k.norm({ x, w, b: bias }, { T, d, eps: 1e-5 });
					const want = normReference({ x, w, b: bias }, { T, d, eps: 1e-5 });
					assert.ok(worst(got, want, 1e-6, 1e-6) <= 1, `T=${T} d=${d} ${bias ? 'layer' : 'rms'}`);
				}
			}
		});

		test(`native ${isa}: convSilu matches the reference`, async () => {
			use();
			for (const [T, E, kw] of [[1, 8, 4], [1, 13, 4], [64, 37, 4], [5, 16, 2], [3, 9, 1], [64, 2048, 4], [2, 3, 3]]) {
				const xz = uniform(T * 2 * E, -3, 3), state = uniform(E * (kw - 1), -3, 3);
				const w = uniform(E * kw), b = uniform(E, -0.5, 0.5);
				const args = { x: splitXz(xz, E).x, state, w, b }, dims = { T, E, k: kw };
				const got = await k.convSilu(args, dims);
				const want = convReference(args, dims);
				// the x half given alone, (T, E) rows: copied into the layout the C kernel reads
				assert.equal(await k.convSilu({ ...args, x: rows(Float32Array.from({ length: T * E }, (_, i) => xz[Math.floor(i / E) * 2 * E + (i % E)]), E) }, dims), got);
				assert.ok(worst(got, want, 1e-6, 1e-6) <= 1, `T=${T} E=${E} k=${kw}: ${worst(got, want, 1e-6, 1e-6)}`);
			}
		});

		test(`native ${isa}: scan (y and the carried state) matches the reference`, async () => {
			use();
			// (T, E, N, R): the vector path (N a multiple of 8), the scalar path (N = 5), E odd, R = 0
			for (const [T, E, N, R] of [[1, 8, 16, 4], [64, 13, 16, 3], [5, 9, 8, 2], [7, 10, 5, 1], [3, 4, 24, 0], [64, 96, 16, 6], [1, 1, 16, 1]]) {
				const S = R + 2 * N;
				const delta = uniform(T * E, 0.001, 0.6), xs = uniform(T * E, -2, 2), dbc = uniform(T * S, -1.5, 1.5);
				const xz = uniform(T * 2 * E, -5, 5);
				const A = Float32Array.from({ length: E * N }, (_, i) => -(1 + (i % N)) * (0.8 + 0.4 * r()));
				const D = uniform(E, 0.5, 1.5), h0 = uniform(E * N, -1, 1);
				const hGot = h0.slice(), hWant = h0.slice(), hPacked = h0.slice();
				const { B, C } = splitDbc(dbc, R, N);
				const args = { delta, x: xs, B, C, z: splitXz(xz, E).z, A, D };
				const got = await k.scan({ ...args, h: hGot }, { T, E, N });
				const want = scanReference({ ...args, h: hWant }, { T, E, N });
				assert.ok(worst(got, want, 1e-5, 1e-5) <= 1, `y T=${T} E=${E} N=${N} R=${R}: ${worst(got, want, 1e-5, 1e-5)}`);
				assert.ok(worst(hGot, hWant, 1e-5, 1e-5) <= 1, `h T=${T} E=${E} N=${N} R=${R}`);
				// C before B and z alone are not the C kernel's layout: repacked, the same result
				const CB = new Float32Array(T * 2 * N);
				for (let t = 0; t < T; t++) for (let n = 0; n < N; n++) {
					CB[t * 2 * N + n] = C.data[t * S + R + N + n];
					CB[t * 2 * N + N + n] = B.data[t * S + R + n];
				}
				const zAlone = Float32Array.from({ length: T * E }, (_, i) => xz[Math.floor(i / E) * 2 * E + E + (i % E)]);
				const packed = await k.scan({ ...args, B: columns(CB, N, 2 * N), C: columns(CB, 0, 2 * N), z: rows(zAlone, E), h: hPacked }, { T, E, N });
				assert.equal(packed, got, `repacked T=${T} E=${E} N=${N} R=${R}`);
				assert.equal(hPacked, hGot);
			}
		});

		test(`native ${isa}: logProb matches the reference`, async () => {
			use();
			for (const [T, V] of [[1, 256], [5, 256], [3, 7]]) {
				const logits = uniform(T * V, -8, 8), target = Array.from({ length: T }, (_, t) => (t * 37) % V);
				const got = await k.logProb(logits, T, V, target);
				const want = logProbReference(logits, T, V, target);
				assert.ok(worst(got, want, 1e-9, 1e-9) <= 1, `T=${T} V=${V}`);
			}
		});

		// The model: 92 bytes in chunks of 16 (T = 16 and 12) and of 64 (T = 64 and 28), RMS and LayerNorm.
		const bytes = [...new TextEncoder().encode('It was a dark and stormy night; the rain fell in torrents — except at occasional intervals.')];
		for (const norm of ['rms', 'layer'] as const) {
			for (const [d, R, chunk] of [[24, 3, 16], [40, 3, 64]] as const) {
				test(`native ${isa}: ${norm} model d=${d} (chunk ${chunk}) matches the reference; its prefill matches its steps`, async () => {
					use();
					const ckpt = randomCheckpoint({ ...shapeConfig(d, 3), norm, dtRank: R }, 7);
					const ref = new Mamba(ckpt, referenceKernels, chunk);
					const m = new Mamba(ckpt, k, chunk);
					const want = await ref.forward(bytes, ref.newState());
					const got = await m.forward(bytes, m.newState());
					assert.ok(maxAbsDiff(want, got) <= 1e-4, `native vs reference: max diff ${maxAbsDiff(want, got)}`);
					const s = m.newState();
					const stepped = new Float32Array(got.length);
					for (let t = 0; t < bytes.length; t++) stepped.set(await m.step(bytes[t], s), t * 256);
					assert.ok(maxAbsDiff(got, stepped) <= 1e-5, `prefill vs steps: max diff ${maxAbsDiff(got, stepped)}`);
				});
			}
		}
	}

	test('native: one thread and all threads give identical logits', async () => {
		k.configure({ isa: defaults.isa });
		const ckpt = randomCheckpoint({ ...shapeConfig(40, 2), dtRank: 3 }, 5);
		const bytes = Array.from({ length: 70 }, (_, i) => (i * 31) % 256);
		const m = new Mamba(ckpt, k, 64);
		k.configure({ threads: 1 });
		const one = await m.forward(bytes, m.newState());
		k.configure({ threads: Math.max(2, defaults.threads) });
		const many = await m.forward(bytes, m.newState());
		k.configure({ threads: defaults.threads });
		assert.is(maxAbsDiff(one, many), 0);
	});

	test('native: arrays shorter than their shapes throw instead of reading past the end', async () => {
		k.configure({ isa: defaults.isa });
		const w = { data: new Float32Array(12), rows: 4, cols: 4 }; // needs 16
		await rejects(() => k.linear(w, new Float32Array(4), 1), /shorter/);
		const w2 = { data: new Float32Array(16), rows: 4, cols: 4 };
		await rejects(() => k.linear(w2, new Float32Array(7), 2), /shorter/);
		await rejects(() => k.linear(w2, new Float32Array(4), 1, { residual: new Float32Array(3) }), /shorter/);
		await rejects(() => k.norm({ x: new Float32Array(3), w: new Float32Array(4) }, { T: 1, d: 4, eps: 1e-5 }), /shorter/);
		const dbc = new Float32Array(3 + 2 * 16); // (1, R + 2N) with R = 3
		await rejects(() => k.scan(
			{ delta: new Float32Array(8), x: new Float32Array(3), ...splitDbc(dbc, 3, 16), z: splitXz(new Float32Array(16), 8).z,
				A: new Float32Array(128), D: new Float32Array(8), h: new Float32Array(128) },
			{ T: 1, E: 8, N: 16 },
		), /shorter/);
		await rejects(() => k.logProb(new Float32Array(4), 1, 4, [4]), /vocabulary/);
	});

	test('native: `--backend native` and `auto` choose it (auto prefers only a working webgpu)', async () => {
		assert.is(parseBackend('native'), 'native');
		const chosen = await selectBackend('native');
		assert.is(chosen.kernels.name, 'native');
		const auto = await selectBackend('auto');
		if (auto.kernels.name !== 'webgpu') assert.is(auto.kernels.name, 'native', auto.notes.join('; '));
	});
}

test.run();
