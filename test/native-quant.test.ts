// The native quantized kernels (native/src/quant*.c) and the fused decode step (native/src/step.c).
//  - Every block type: the C dequantizer equals ggml's formulas written here in TypeScript (test/helpers/ggml.ts);
//    the C reference (dequantize, dot in double) equals a float64 dot of those values; every instruction set this
//    CPU runs, for T = 1, 3, 64, with each epilogue, K = one block and more, N odd, is within the bound that
//    quantizing x to int8 blocks allows: |Σ w (x − x̂)| ≤ Σ |w|·amax(x's block)/254 (half a step per element),
//    plus float rounding. f16 / bf16 keep x in float32: float rounding only.
//  - Real llama-quantize blocks from ../shared/fixtures/gguf, the same way.
//  - A prefill of T tokens equals T single steps bit for bit (each token has its own accumulators).
//  - The fused decode step equals the per-operation path bit for bit (logits and state) on the RMSNorm and
//    LayerNorm fixtures, in float32 and with quantized projections, on every instruction set.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadNative, NativeKernels } from '../src/backend/native.js';
import { loadCheckpoint } from '../src/checkpoint/index.js';
import { Mamba } from '../src/model/mamba.js';
import { randomCheckpoint, rng, shapeConfig } from '../src/model/random.js';
import { columns } from '../kernels/layout.js';
import type { QMatrix, QType } from '../src/tensor/qmatrix.js';
import { quantizeMatrix } from '../src/cli/bench-quant.js';
import { dequantizeRow, ggufTensor, randomQMatrix } from './helpers/ggml.js';

let kernels: NativeKernels | undefined;
try {
	loadNative();
	kernels = NativeKernels.create();
} catch (e) {
	console.log(`native-quant.test: skipped, the native addon is not available: ${e instanceof Error ? e.message : e}`);
}

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const GGUF_DIR = here('../../../shared/fixtures/gguf');
const FIXTURES = here('../../test/fixtures');
const r = rng(2024);
const uniform = (n: number) => Float32Array.from({ length: n }, () => 2 * r() - 1);
const softplus = (v: number) => (v > 20 ? v : Math.log1p(Math.exp(v)));

const TYPES: QType[] = ['q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q4_k', 'q5_k', 'q6_k', 'f16', 'bf16'];
const blockOf = (t: QType) => (t.endsWith('_k') ? 256 : t.startsWith('q') ? 32 : 8);
const usesQ8 = (t: QType) => t.startsWith('q');

interface Expected { want: Float64Array; bound: Float64Array }

/** The float64 result of w·x (T, stride S) with its epilogue, and the error each output may have. */
function expected(w: QMatrix, x: Float32Array, T: number, S: number, mode: 'none' | 'residual' | 'softplus', epi: Float32Array): Expected {
	const want = new Float64Array(T * w.rows), bound = new Float64Array(T * w.rows);
	const rows = Array.from({ length: w.rows }, (_, n) => dequantizeRow(w, n));
	for (let t = 0; t < T; t++) {
		const xt = x.subarray(t * S, t * S + w.cols);
		const amax = Array.from({ length: Math.ceil(w.cols / 32) }, (_, b) => Math.max(...Array.from(xt.subarray(32 * b, 32 * b + 32), Math.abs)));
		for (let n = 0; n < w.rows; n++) {
			let s = 0, abs = 0, q = 0;
			for (let k = 0; k < w.cols; k++) {
				s += rows[n][k] * xt[k];
				abs += Math.abs(rows[n][k] * xt[k]);
				q += Math.abs(rows[n][k]) * amax[k >> 5];
			}
			const i = t * w.rows + n;
			// quantized x: half a step per element (+0.1% for the scale's own rounding); float32 sums: 1e-5 relative
			bound[i] = (usesQ8(w.qtype) ? (q / 254) * 1.001 : 0) + 1e-5 * abs + 1e-6 * (abs + q);
			want[i] = mode === 'residual' ? s + epi[i] : mode === 'softplus' ? softplus(s + epi[n]) : s;
			if (mode === 'residual') bound[i] += 1e-6 * Math.abs(epi[i]);
		}
	}
	return { want, bound };
}

function within(got: Float32Array, e: Expected, what: string): void {
	assert.is(got.length, e.want.length, what);
	for (let i = 0; i < got.length; i++) {
		const d = Math.abs(got[i] - e.want[i]);
		if (!(d <= e.bound[i])) assert.unreachable(`${what}: output ${i} is ${got[i]}, expected ${e.want[i]} ± ${e.bound[i]}`);
	}
}

if (kernels) {
	const k = kernels;
	const isas = k.info.isas;
	const defaultIsa = k.info.isa;

	test('the addon reports the AVX-512 build where the CPU has F/BW/VL/VNNI', () => {
		assert.ok(isas.includes('generic'));
		if (isas.includes('avx512')) assert.ok(isas.includes('avx2'));
		assert.ok(isas.includes(defaultIsa));
	});

	test('the C dequantizer equals ggml\'s formulas for every block type', () => {
		for (const t of TYPES) {
			const w = randomQMatrix(t, 3, 2 * blockOf(t) * (t.startsWith('q') ? 1 : 4), r);
			for (let n = 0; n < w.rows; n++) {
				const got = k.dequantizeRow(w, n), want = dequantizeRow(w, n);
				for (let i = 0; i < w.cols; i++) {
					if (!(Math.abs(got[i] - want[i]) <= 1e-6 * Math.abs(want[i]) + 1e-9)) assert.unreachable(`${t} row ${n} [${i}]: ${got[i]} vs ${want[i]}`);
				}
			}
		}
	});

	test('the C reference projection equals a float64 dot of the dequantized rows', () => {
		for (const t of TYPES) {
			const w = randomQMatrix(t, 5, 2 * blockOf(t) * (t.startsWith('q') ? 1 : 4), r), T = 3, x = uniform(T * w.cols);
			const want = expected(w, x, T, w.cols, 'none', x);
			const got = k.linearReference(w, x, T);
			for (let i = 0; i < got.length; i++) {
				// float32 rounding of the dequantized weights and of the result
				const tol = 1e-5 * Math.abs(want.want[i]) + 1e-6 * w.cols;
				if (!(Math.abs(got[i] - want.want[i]) <= tol)) assert.unreachable(`${t} [${i}]: ${got[i]} vs ${want.want[i]}`);
			}
		}
	});

	for (const isa of isas) {
		test(`${isa}: every block type, T = 1, 3, 64, each epilogue, within the x-quantization bound`, async () => {
			k.configure({ isa });
			try {
				for (const t of TYPES) {
					for (const [N, blocks] of [[7, 1], [13, 3]]) {
						const K = blockOf(t) * blocks * (t.startsWith('q') ? 1 : 5);
						const w = randomQMatrix(t, N, K, r);
						for (const T of [1, 3, 64]) {
							const S = K + 3, x = uniform(T * S);
							for (const mode of ['none', 'residual', 'softplus'] as const) {
								if (T === 64 && mode !== 'none') continue; // the epilogues do not depend on T
								const epi = mode === 'residual' ? uniform(T * N) : uniform(N);
								const got = await k.linear(w, columns(x, 0, S), T, mode === 'residual' ? { residual: epi } : mode === 'softplus' ? { softplusBias: epi } : {});
								within(got, expected(w, x, T, S, mode, epi), `${isa} ${t} N=${N} K=${K} T=${T} ${mode}`);
							}
						}
					}
				}
			} finally {
				k.configure({ isa: defaultIsa });
			}
		});

		test(`${isa}: a prefill of T tokens equals T single steps bit for bit`, async () => {
			k.configure({ isa });
			try {
				for (const t of TYPES) {
					const w = randomQMatrix(t, 9, 2 * blockOf(t), r), T = 7, x = uniform(T * w.cols);
					const all = await k.linear(w, x, T);
					for (let i = 0; i < T; i++) {
						const one = await k.linear(w, x.subarray(i * w.cols, (i + 1) * w.cols), 1);
						assert.equal(Array.from(one), Array.from(all.subarray(i * w.rows, (i + 1) * w.rows)), `${isa} ${t} token ${i}`);
					}
				}
			} finally {
				k.configure({ isa: defaultIsa });
			}
		});
	}

	// The tiles are up to 4 rows × 4 tokens (plus 512-bit pairs of blocks on AVX-512): T = 1..17 covers every token
	// tail, 13 rows every row tail, an odd number of 32-value blocks the half-empty last pair; each epilogue, since
	// the epilogues run on vectors of a tile's outputs.
	for (const isa of isas) {
		test(`${isa}: T = 1..17 in one call equal T single-token calls bit for bit (every type, shape and epilogue)`, async () => {
			k.configure({ isa });
			try {
				for (const t of TYPES) {
					const Ks = t.endsWith('_k') ? [256, 512] : t.startsWith('q') ? [32, 96, 512] : [8, 40, 520];
					for (const K of Ks) {
						const N = 13, w = randomQMatrix(t, N, K, r), x = uniform(17 * K);
						for (const mode of ['none', 'residual', 'softplus'] as const) {
							const epi = mode === 'residual' ? uniform(17 * N) : uniform(N);
							const opts = (T0: number, T: number) =>
								mode === 'residual' ? { residual: epi.subarray(T0 * N, (T0 + T) * N) } : mode === 'softplus' ? { softplusBias: epi } : {};
							const single: Float32Array[] = [];
							for (let i = 0; i < 17; i++) single.push(await k.linear(w, x.subarray(i * K, (i + 1) * K), 1, opts(i, 1)));
							for (let T = 1; T <= 17; T++) {
								const all = await k.linear(w, x.subarray(0, T * K), T, opts(0, T));
								for (let i = 0; i < T; i++) {
									const got = all.subarray(i * N, (i + 1) * N);
									for (let n = 0; n < N; n++) {
										if (!Object.is(got[n], single[i][n])) assert.unreachable(`${isa} ${t} K=${K} ${mode} T=${T}: token ${i} row ${n} is ${got[n]}, alone ${single[i][n]}`);
									}
								}
							}
						}
					}
				}
			} finally {
				k.configure({ isa: defaultIsa });
			}
		});
	}

	const ggufFiles = ['q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q4_k_m', 'q5_k_m', 'q6_k', 'f16'].map((t) => `${GGUF_DIR}/tiny-${t}.gguf`);
	test('real llama-quantize blocks (../shared/fixtures/gguf) on every instruction set', async () => {
		for (const f of ggufFiles) assert.ok(existsSync(f), `missing fixture ${f}`);
		const seen = new Set<QType>();
		for (const f of ggufFiles) {
			for (const name of ['blk.0.ssm_in.weight', 'blk.1.ssm_out.weight', 'blk.0.ssm_x.weight', 'token_embd.weight']) {
				const w = ggufTensor(f, name);
				if (w.qtype === 'f32') continue;
				seen.add(w.qtype);
				for (const T of [1, 3]) {
					const x = uniform(T * w.cols), e = expected(w, x, T, w.cols, 'none', x);
					for (const isa of isas) {
						k.configure({ isa });
						within(await k.linear(w, x, T), e, `${f} ${name} (${w.qtype}) ${isa} T=${T}`);
					}
					k.configure({ isa: defaultIsa });
				}
			}
		}
		for (const t of ['q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q4_k', 'q5_k', 'q6_k', 'f16'] as QType[]) assert.ok(seen.has(t), `no ${t} tensor seen`);
	});

	test('bad arguments get one clear error', async () => {
		const w = randomQMatrix('q4_k', 2, 256, r);
		const rejects = async (p: Promise<unknown>, re: RegExp) => {
			try { await p; } catch (e) { assert.match(String(e), re); return; }
			assert.unreachable(`expected ${re}`);
		};
		await rejects(k.linear({ ...w, cols: 128 }, uniform(128), 1), /not a multiple of the type's block size 256/);
		await rejects(k.linear({ ...w, rows: 3 }, uniform(256), 1), /W is shorter/);
	});

	/** Mamba's layers with every projection that fits the type replaced by its quantized blocks (test only). */
	function quantizeLayers(m: Mamba, qtype: 'q8_0' | 'q4_0' | 'q4_k' | 'f16'): void {
		type M = { data: Float32Array; rows: number; cols: number };
		const q = (w: M) => (qtype === 'f16' || w.cols % (qtype === 'q4_k' ? 256 : 32) === 0 ? quantizeMatrix(w.data, w.rows, w.cols, qtype) : w);
		const inner = m as unknown as { layers: Record<string, M>[]; head: M };
		for (const l of inner.layers) for (const key of ['inProj', 'xProj', 'dtProj', 'outProj']) l[key] = q(l[key]) as unknown as M;
		inner.head = q(inner.head) as unknown as M;
	}

	/** The same weights twice: one model on the fused native calls, one on the per-operation path; fresh states. */
	function fusedAndPerOp(ckpt: ReturnType<typeof loadCheckpoint>, dtype: 'f32' | 'q8_0' | 'q4_0' | 'q4_k' | 'f16') {
		const fused = new Mamba(ckpt, k), perOp = new Mamba(ckpt, k);
		perOp.fusedStep = false;
		if (dtype !== 'f32') { quantizeLayers(fused, dtype); quantizeLayers(perOp, dtype); }
		return { fused, perOp, sf: fused.newState(), sp: perOp.newState() };
	}

	for (const fixture of ['tiny-hf', 'tiny-ssm-ln']) {
		for (const dtype of ['f32', 'q8_0', 'q4_0', 'f16'] as const) {
			test(`fused decode step = per-operation path, bit for bit (${fixture}, ${dtype}, every instruction set)`, async () => {
				const ckpt = loadCheckpoint(`${FIXTURES}/${fixture}`);
				assert.is(ckpt.config.norm, fixture === 'tiny-hf' ? 'rms' : 'layer');
				const text = new TextEncoder().encode('The fused step: one native call per byte.');
				for (const isa of isas) {
					k.configure({ isa });
					const { fused, perOp, sf, sp } = fusedAndPerOp(ckpt, dtype);
					await fused.forward(text.subarray(0, 5), sf); // prefill: the fused forward of 5 tokens, and per operation
					await perOp.forward(text.subarray(0, 5), sp);
					for (const b of text.subarray(5)) {
						const a = await fused.step(b, sf), p = await perOp.step(b, sp);
						assert.equal(Array.from(a), Array.from(p), `${isa}: logits after byte ${b}`);
					}
					assert.is(sf.position, sp.position);
					for (let l = 0; l < sf.conv.length; l++) {
						assert.equal(Array.from(sf.conv[l]), Array.from(sp.conv[l]), `${isa}: conv state of layer ${l}`);
						assert.equal(Array.from(sf.ssm[l]), Array.from(sp.ssm[l]), `${isa}: ssm state of layer ${l}`);
					}
				}
				k.configure({ isa: defaultIsa });
			});
		}
	}

	for (const dtype of ['f32', 'q8_0', 'q4_k'] as const) {
		test(`fused forward and verify/keep(j) = per-operation path, bit for bit (${dtype}, every instruction set)`, async () => {
			const ckpt = loadCheckpoint(`${FIXTURES}/tiny-hf`);
			const text = new TextEncoder().encode('Verify passes: T bytes in one native call, kept to j.');
			const states = (s: { conv: Float32Array[]; ssm: Float32Array[] }) => [...s.conv, ...s.ssm].map((a) => Array.from(a));
			for (const isa of isas) {
				k.configure({ isa });
				const { fused, perOp, sf, sp } = fusedAndPerOp(ckpt, dtype);
				const a = await fused.forward(text.subarray(0, 9), sf), p = await perOp.forward(text.subarray(0, 9), sp);
				assert.equal(Array.from(a), Array.from(p), `${isa}: prefill logits`);
				assert.equal(states(sf), states(sp), `${isa}: state after the prefill`);
				for (const [T, j] of [[1, 0], [1, 1], [5, 0], [5, 2], [5, 5], [12, 7], [3, 3]]) {
					const at = sf.position;
					const toks = text.subarray(at % 20, (at % 20) + T);
					const vf = await fused.verify(toks, sf), vp = await perOp.verify(toks, sp);
					assert.equal(Array.from(vf.logits), Array.from(vp.logits), `${isa}: verify logits T ${T}`);
					await vf.keep(j);
					await vp.keep(j);
					assert.is(sf.position, at + j);
					assert.equal(states(sf), states(sp), `${isa}: state after keep(${j}) of ${T}`);
					// and it is the state of feeding those j bytes alone
					const fresh = perOp.newState();
					fresh.copyFrom(sp);
					const next = await perOp.forward(text.subarray(0, 2), fresh);
					const again = await fused.forward(text.subarray(0, 2), sf);
					assert.equal(Array.from(again), Array.from(next), `${isa}: logits after keep(${j}) of ${T}`);
					await perOp.forward(text.subarray(0, 2), sp);
					fresh.free();
				}
			}
			k.configure({ isa: defaultIsa });
		});
	}

	// The fused model packs q8_0, q4_0 and q4_k matrices in groups of 16 (AVX-512) or 8 (AVX2) rows when it is built;
	// the per-operation path packs block by block. Random models whose projections take the type (K a multiple of its
	// block), with a partial group for both (x_proj's 38 rows; q4_k: the head's 250): packed against per-operation.
	for (const dtype of ['q8_0', 'q4_0', 'q4_k'] as const) test(`${dtype} packed by the fused model (16 / 8 rows a group, a partial group) = per-operation path, bit for bit`, async () => {
		// q4_k needs K a multiple of 256: d 256, and the head's 250 rows the partial group
		const ckpt = dtype === 'q4_k' ? randomCheckpoint(shapeConfig(256, 1, 250), 7) : randomCheckpoint(shapeConfig(96, 2), 7);
		const text = new TextEncoder().encode('Sixteen rows at a time, and eight, and a partial group of six.');
		const states = (s: { conv: Float32Array[]; ssm: Float32Array[] }) => [...s.conv, ...s.ssm].map((a) => Array.from(a));
		const prefills = new Map<string, number[]>();
		for (const isa of isas) {
			k.configure({ isa });
			const { fused, perOp, sf, sp } = fusedAndPerOp(ckpt as ReturnType<typeof loadCheckpoint>, dtype);
			const prefill = Array.from(await fused.forward(text.subarray(0, 21), sf));
			prefills.set(isa, prefill);
			assert.equal(prefill, Array.from(await perOp.forward(text.subarray(0, 21), sp)), `${isa}: prefill`);
			for (const b of text.subarray(21, 30)) assert.equal(Array.from(await fused.step(b, sf)), Array.from(await perOp.step(b, sp)), `${isa}: step ${b}`);
			const vf = await fused.verify(text.subarray(30, 41), sf), vp = await perOp.verify(text.subarray(30, 41), sp);
			assert.equal(Array.from(vf.logits), Array.from(vp.logits), `${isa}: verify of 11`);
			await vf.keep(4);
			await vp.keep(4);
			assert.equal(states(sf), states(sp), `${isa}: state after keep(4)`);
		}
		k.configure({ isa: defaultIsa });
		// both builds compute an output as Σ over blocks of (exact integer sum)·d_w·d_x, in block order
		if (prefills.has('avx2') && prefills.has('avx512')) assert.equal(prefills.get('avx512'), prefills.get('avx2'), `avx512 = avx2 on ${dtype}`);
		else console.log(`native-quant.test: avx512 = avx2 on ${dtype} not checked, this CPU runs ${isas.join(', ')}`);
	});

	test('keep(j) of a fused verify pass equals feeding the j bytes, and is allowed once', async () => {
		const ckpt = loadCheckpoint(`${FIXTURES}/tiny-hf`);
		const m = new Mamba(ckpt, k), ref = new Mamba(ckpt, k);
		ref.fusedStep = false;
		const text = new TextEncoder().encode('abcdefghij');
		const s = m.newState(), r = ref.newState();
		await m.forward(Uint8Array.of(10), s);
		await ref.forward(Uint8Array.of(10), r);
		const v = await m.verify(text, s);
		await v.keep(4);
		await ref.forward(text.subarray(0, 4), r);
		for (let l = 0; l < s.conv.length; l++) {
			assert.equal(Array.from(s.conv[l]), Array.from(r.conv[l]), `conv state of layer ${l}`);
			assert.equal(Array.from(s.ssm[l]), Array.from(r.ssm[l]), `ssm state of layer ${l}`);
		}
		let threw = false;
		try { await v.keep(2); } catch { threw = true; }
		assert.ok(threw, 'a verification is kept once');
	});

	test('the fused step reads its state arguments, not a copy: a restored snapshot replays the same logits', async () => {
		const ckpt = loadCheckpoint(`${FIXTURES}/tiny-hf`);
		const m = new Mamba(ckpt, k), s = m.newState();
		await m.forward(Uint8Array.of(72, 105), s);
		const snap = s.clone();
		const first = await m.step(33, s);
		await m.step(34, s);
		s.copyFrom(snap);
		assert.equal(Array.from(await m.step(33, s)), Array.from(first));
	});

	test('stepModel rejects a wrong handle and wrong state arrays', () => {
		const addon = loadNative();
		assert.throws(() => addon.stepModel({}, new Float32Array(4), [], [], new Float32Array(4)), /expected a handle from createModel/);
	});
}

test.run();
