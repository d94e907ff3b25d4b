// The GPU-resident forward (src/model/resident.ts) run by the CPU runner: the same kernel functions and the same
// recorded plans the WebGPU runner submits, executed thread by thread in JavaScript. Checked against PyTorch's
// logits (the golden fixtures) and the host forward on the reference kernels, for chunks, the fused decode plan,
// the recurrent state, the engine (speculative decoding and session snapshots) and the WebGPU limits and WGSL
// translation that the GPU machine would otherwise be first to find.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadCheckpoint } from '../src/checkpoint/index.js';
import { referenceKernels } from '../src/backend/reference.js';
import { CpuRunner, checkBindings, MAX_STORAGE_BUFFERS, whole } from '../src/backend/resident/runner.js';
import { Mamba } from '../src/model/mamba.js';
import { MambaState } from '../src/model/state.js';
import { ResidentMamba } from '../src/model/resident.js';
import { DeviceState } from '../src/model/resident/device-state.js';
import { normSliceCount, slices, vecSlices } from '../src/model/resident/split.js';
import { randomCheckpoint, shapeConfig } from '../src/model/random.js';
import type { Checkpoint, MambaConfig } from '../src/model/types.js';
import { generate, Session, type GenerateOptions } from '../src/engine/generate.js';
import { decodeSnapshot, encodeSnapshot } from '../src/engine/snapshot.js';
import { Drafter } from '../src/engine/drafter.js';
import {
	matmulPartial, matmulReduce, matvecGroup, matvecGroupSummed, matvecNormGroup, matvecNormPartial, matvecNormReduce, matvecPartial, matvecReduce,
	matvecRow, matvecRowNorm, matvecRowResidual, matvecRowSummed, matmulRow, matmulTile, projectionReference,
} from '../kernels/projection.js';
import { wideSource, wideWGSL } from '../src/backend/resident/wide.js';
import { integerSum, intIndexWGSL } from '../src/backend/resident/int-index.js';
import { groupSumWGSL } from '../src/backend/resident/group-sum.js';
import { bfloat16Bits, halfBits, halvesWGSL, sixteenBits } from '../src/backend/resident/halves.js';
import { floatToHalf } from '../src/tensor/dtypes.js';
import { half } from '../src/tensor/dequant.js';
import { normApplyBlocked, normCombine, normSlices } from '../kernels/norms.js';
import { convAndState, convStateKeep, convStep } from '../kernels/conv.js';
import { scanBlocks, scanCarry, scanGroups, scanKeep, scanOutputBlocked, scanStarts, scanStep, scanStepFused } from '../kernels/scan.js';
import { embedGather, embedRow } from '../kernels/embedding.js';

const FIXTURES = path.resolve('test/fixtures');
const input = new Uint8Array(readFileSync(path.join(FIXTURES, 'input.txt')));
const resident = (c: Checkpoint, chunk = 16) => ResidentMamba.create(c, new CpuRunner(), referenceKernels, chunk);

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
	assert.is(a.length, b.length);
	let m = 0;
	for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
	return Number.isNaN(m) ? Infinity : m;
}

function pytorchLogits(name: string): Float32Array {
	const raw = readFileSync(path.join(FIXTURES, name, 'logits.bin'));
	return new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
}

/** Logits of `bytes` fed as uneven pieces (chunks, remainders, single steps) on one state. */
async function piecewise(m: ResidentMamba, bytes: Uint8Array, cuts: number[]): Promise<Float32Array> {
	const V = m.config.vocabSize;
	const out = new Float32Array(bytes.length * V);
	const s = m.newState();
	let at = 0;
	for (const n of [...cuts, bytes.length]) {
		const end = Math.min(n, bytes.length);
		if (end <= at) continue;
		const part = bytes.subarray(at, end);
		out.set(part.length === 1 ? await m.step(part[0], s) : await m.forward(part, s), at * V);
		at = end;
	}
	assert.is(s.position, bytes.length);
	return out;
}

for (const name of ['tiny-hf', 'tiny-hf-untied', 'tiny-ssm-ln', 'tiny-hf-bf16', 'tiny-hf-f16']) {
	test(`${name}: resident logits match PyTorch, whatever the pieces`, async () => {
		const m = await resident(loadCheckpoint(path.join(FIXTURES, name)));
		assert.ok(m.fusedDecode && m.decodeKind === 'rows', 'single steps run the row decode plan');
		// the F16 and BF16 checkpoints' matrices are float16 values: the device keeps them in 16 bits
		assert.is(m.halfMatrices.half, name.endsWith('16') ? m.halfMatrices.of : 0);
		const want = pytorchLogits(name);
		assert.ok(maxAbsDiff(await m.forward(input, m.newState()), want) <= 1e-4, 'one forward');
		const diff = maxAbsDiff(await piecewise(m, input, [1, 2, 7, 30, 31, 50]), want);
		assert.ok(diff <= 1e-4, `pieces: max abs diff ${diff}`);
		m.chunkKind = 'rows'; // chunks on the row weights (matmulRow) give the same
		const rowDiff = maxAbsDiff(await piecewise(m, input, [1, 2, 7, 30, 31, 50]), want);
		assert.ok(rowDiff <= 1e-4, `row chunks: max abs diff ${rowDiff}`);
		m.chunkKind = 'tiles'; // and the partial sums 4 rows × 16 positions a thread (matmulTile; x_proj's 35 rows stay matmulPartial)
		const tiles = m.plan(16).filter((p) => p.program.name === 'matmulTile').length;
		assert.is(tiles, 3 * m.config.nLayer + 1, 'in_proj, dt_proj, out_proj and the head');
		const tileDiff = maxAbsDiff(await piecewise(m, input, [1, 2, 7, 30, 31, 50]), want);
		assert.ok(tileDiff <= 1e-4, `tile chunks: max abs diff ${tileDiff}`);
	});
}

test('perplexity on a resident model: bits per byte match PyTorch', async () => {
	const { scoreStream } = await import('../src/engine/perplexity.js');
	const dir = path.join(FIXTURES, 'tiny-ssm-ln');
	const want = (JSON.parse(readFileSync(path.join(dir, 'expected.json'), 'utf8')) as { bits_per_byte: number }).bits_per_byte;
	const m = await resident(loadCheckpoint(dir));
	async function* once() {
		yield input;
	}
	const gen = scoreStream(m, 'input.txt', input.length, once(), { curve: false, bucket: 1024, window: null, backend: '', model: '' });
	let n = await gen.next();
	while (!n.done) n = await gen.next();
	assert.ok(Math.abs(n.value.bits_per_byte - want) <= 1e-5, `${n.value.bits_per_byte} vs ${want}`);
});

/** Random small models the fused decode plan runs on (d, d_inner, dt_rank and d_state multiples of 4). */
function fusable(norm: 'rms' | 'layer', tied: boolean, seed: number): Checkpoint {
	const c: MambaConfig = { ...shapeConfig(64, 2), norm, tied };
	return randomCheckpoint(c, seed);
}

for (const [norm, tied] of [['rms', true], ['layer', false]] as const) {
	test(`fused decode (${norm} norm, ${tied ? 'tied' : 'untied'}): steps match the host forward on reference kernels`, async () => {
		const c = fusable(norm, tied, 5);
		const m = await resident(c);
		assert.ok(m.fusedDecode, 'this shape takes the fused decode plan');
		const host = new Mamba(c, referenceKernels);
		const bytes = input.subarray(0, 24);
		const want = await host.forward(bytes, host.newState());
		const diff = maxAbsDiff(await piecewise(m, bytes, [5, 6, 7, 8, 9, 10, 11, 20, 21, 22, 23]), want);
		assert.ok(diff <= 1e-4, `max abs diff ${diff}`);
		assert.is(m.decodeKind, 'rows', 'the row plan by default');
		assert.is(m.plan(1).length, 6 * c.config.nLayer + 3, '6 passes a layer, the embedding and the head');
		for (const kind of ['split-K', 'grouped'] as const) {
			m.decodeKind = kind; // the other plans give the same
			assert.is(m.plan(1).length, (kind === 'grouped' ? 7 : 9) * c.config.nLayer + 3, `${kind}: passes a layer, the embedding and the head`);
			assert.ok(maxAbsDiff(await piecewise(m, bytes, [5, 6, 7, 8, 9, 10, 11, 20, 21]), want) <= 1e-4, `${kind} decode plan`);
		}
		m.decodeKind = 'rows';
		m.fusedDecode = false; // the chunk plan with T = 1 gives the same
		assert.ok(maxAbsDiff(await piecewise(m, bytes, [5, 6, 7, 8]), want) <= 1e-4);
	});
}

test('16-bit weights: a checkpoint of float16 values runs the row plan on 16-bit buffers and matches the host forward', async () => {
	const c = randomCheckpoint(shapeConfig(64, 2), 7, { sixteen: 'f16' });
	const m = await resident(c);
	assert.equal(m.halfMatrices, { half: 9, bf16: 0, of: 9 });
	const host = new Mamba(c, referenceKernels);
	const bytes = input.subarray(0, 12);
	const diff = maxAbsDiff(await piecewise(m, bytes, [3, 4, 5, 6, 7, 8, 9, 10, 11]), await host.forward(bytes, host.newState()));
	assert.ok(diff <= 1e-4, `max abs diff ${diff}`);
	// float32 values are never rounded: the same shape with float32 weights keeps them in 32 bits
	assert.equal((await resident(fusable('rms', true, 7))).halfMatrices, { half: 0, bf16: 0, of: 9 });
	// a 16-bit buffer bound where a kernel reads floats (or the other way round) is refused when the pass is recorded
	const r = new CpuRunner();
	const prog = await r.program(matvecRow, { K: 4, N: 1 }, { x: 'array', w: 'array', KS: 'scalar' }, { groupSum: 1 });
	const w16 = r.alloc(4, 'f16');
	assert.throws(() => r.pass(prog, { x: whole(r.alloc(16)), w: whole(w16), KS: 4 }, whole(r.alloc(1)), 64), /w bound to a f16 buffer, not float32/);
	const progBf = await r.program(matvecRow, { K: 4, N: 1 }, { x: 'array', w: 'array', KS: 'scalar' }, { groupSum: 1, halves: { w: 'bf16' } });
	assert.throws(() => r.pass(progBf, { x: whole(r.alloc(16)), w: whole(w16), KS: 4 }, whole(r.alloc(1)), 64), /w bound to a f16 buffer, not bf16/);
});

test('a wider shape (d 1030: x_proj in 2 slices, K past one loop step, odd dt_rank) steps and chunks as the host forward', async () => {
	// the row kernels' unrolled pairs (k + 128 … k + 896), their second loop step and x_proj's slices only run at this
	// width; its logits reach ~600, so float32 sums in another order differ by up to ~2e-4 (a wrong pair of weights
	// in any of the four kernels: 4e-3 to 80)
	for (const half of [false, true]) {
		const c = randomCheckpoint(shapeConfig(1030, 1), 21, half ? { sixteen: 'f16' } : {});
		const m = await resident(c);
		assert.is(m.decodeKind, 'rows');
		assert.is(m.halfMatrices.half, half ? 5 : 0);
		const host = new Mamba(c, referenceKernels);
		const bytes = input.subarray(0, 12);
		const want = await host.forward(bytes, host.newState());
		const steps = maxAbsDiff(await piecewise(m, bytes, [5, 6, 7, 8, 9, 10, 11]), want);
		assert.ok(steps <= 5e-4, `${half ? 'f16' : 'f32'} steps: max abs diff ${steps}`);
		m.chunkKind = 'rows';
		const chunks = maxAbsDiff(await piecewise(m, bytes, [4, 11]), want);
		assert.ok(chunks <= 5e-4, `${half ? 'f16' : 'f32'} row chunks: max abs diff ${chunks}`);
		m.chunkKind = 'tiles'; // a chunk of 16 runs in_proj, dt_proj and the head as tiles; d 1030 is no multiple of 4: out_proj stays matmulPartial
		const twenty = input.subarray(0, 20);
		const tiles = maxAbsDiff(await piecewise(m, twenty, [16]), await host.forward(twenty, host.newState()));
		assert.ok(tiles <= 5e-4, `${half ? 'f16' : 'f32'} tile chunks: max abs diff ${tiles}`);
	}
});

test('the default plans: chunks of 256 for large models, rows for verify passes, split-K to 64 tokens, tiles above', async () => {
	assert.is(ResidentMamba.preferredChunk(shapeConfig(1792, 48)), 256);
	assert.is(ResidentMamba.preferredChunk(shapeConfig(1024, 53)), 256);
	assert.is(ResidentMamba.preferredChunk(shapeConfig(512, 11)), 64, 'the shipped model\'s shape keeps what was measured');
	const m = await resident(fusable('rms', true, 3), 256);
	assert.is(m.chunkKind, 'auto');
	assert.equal([8, 32, 33, 64, 128, 256].map((T) => m.planKind(T)), ['rows', 'rows', 'split-K', 'split-K', 'tiles', 'tiles']);
	assert.ok(m.plan(128).some((p) => p.program.name === 'matmulTile') && !m.plan(64).some((p) => p.program.name === 'matmulTile'));
	// d_model 1024 (the 353M and 972M shapes' kind): row chunks were measured slower there, so verify passes stay split-K
	const wide = await resident(randomCheckpoint(shapeConfig(1024, 1), 2), 64);
	assert.equal([8, 32, 64].map((T) => wide.planKind(T)), ['split-K', 'split-K', 'split-K']);
});

test('decodeIntIndex: the decode plan\'s kernels are compiled with integer index sums', async () => {
	const c = fusable('layer', false, 4);
	const [plain, ii] = [await resident(c), await ResidentMamba.create(c, new CpuRunner(), referenceKernels, 16, { decodeIntIndex: true })];
	const names = (m: ResidentMamba) => m.plan(1).filter((p) => p.program.intIndex).map((p) => p.program.name);
	assert.equal(names(plain), []);
	assert.equal(new Set(names(ii)), new Set(['embedRow', 'matvecRowNorm', 'convStep', 'matvecRow', 'matvecRowSummed', 'scanStepFused', 'matvecRowResidual', 'matvecNormReduce']));
	// CpuRunner runs the kernel functions themselves, so this shows the option reaches the programs; the rewrite's
	// WGSL is checked in the translation test and its results on the GPU by bench/webgpu.ts --decode
});

test('chunks of 256 (the webgpu prefill length) with each chunk plan match the host forward', async () => {
	const c = fusable('rms', true, 11);
	const host = new Mamba(c, referenceKernels);
	const bytes = Uint8Array.from({ length: 300 }, (_, i) => input[i % input.length]);
	const want = await host.forward(bytes, host.newState());
	const m = await resident(c, 256);
	for (const kind of ['split-K', 'tiles', 'rows'] as const) {
		m.chunkKind = kind;
		const diff = maxAbsDiff(await piecewise(m, bytes, [256]), want);
		assert.ok(diff <= 1e-4, `${kind}: max abs diff ${diff}`);
	}
});

test('BF16 weights with values no float16 holds stay 16-bit as bfloat16, and match the host forward', async () => {
	const c = randomCheckpoint(shapeConfig(64, 2), 8, { sixteen: 'bf16' });
	// a bfloat16 value below float16's subnormal step (here 1.5·2^-24) is no float16: such a matrix goes bfloat16
	for (const l of c.weights.layers) for (const w of [l.inProj, l.xProj, l.dtProj, l.outProj]) w[3] = 1.5 * 2 ** -24;
	const m = await resident(c);
	assert.equal(m.halfMatrices, { half: 9, bf16: 8, of: 9 }, 'every matrix 16-bit: 8 bfloat16, the head float16');
	const host = new Mamba(c, referenceKernels);
	const bytes = input.subarray(0, 12);
	const want = await host.forward(bytes, host.newState());
	const diff = maxAbsDiff(await piecewise(m, bytes, [3, 4, 5, 6, 7, 8, 9, 10, 11]), want);
	assert.ok(diff <= 1e-4, `max abs diff ${diff}`);
	m.chunkKind = 'rows';
	assert.ok(maxAbsDiff(await piecewise(m, bytes, [5]), want) <= 1e-4, 'row chunks');
	assert.equal(sixteenBits(Float32Array.of(1, 1.5 * 2 ** -24))?.kind, 'bf16');
	assert.equal(sixteenBits(Float32Array.of(1, 1.5 * 2 ** -20))?.kind, 'f16', 'a float16 subnormal');
	assert.equal(sixteenBits(Float32Array.of(1, 0.5))?.kind, 'f16');
	assert.is(sixteenBits(Float32Array.of(1, 0.1)), null);
	assert.equal(Array.from(bfloat16Bits(Float32Array.of(-2, 1.5 * 2 ** -24))!), [0xc000, 0x33c0]);
	assert.is(bfloat16Bits(Float32Array.of(1, Infinity)), null);
});

test('halfBits: the float16 bits of values that are float16s, null for any that is not', () => {
	const exact = Float32Array.from([0, -0, 1, -2.5, 65504, 6.103515625e-5, 5.960464477539063e-8, -3.0517578125e-5, 0.0999755859375]);
	const bits = halfBits(exact);
	assert.ok(bits);
	assert.equal(Array.from(bits!, half), Array.from(exact));
	assert.equal(Array.from(bits!), Array.from(exact, floatToHalf));
	for (const v of [0.1, 65520, 1e-9, 2.9802322387695312e-8, 1 + 2 ** -11, Infinity, NaN]) assert.is(halfBits(Float32Array.of(1, v)), null, `${v}`);
});

test('the device state: toHost equals the host forward state; clone, copyFrom and host uploads round-trip', async () => {
	const c = fusable('rms', true, 9);
	const m = await resident(c);
	const host = new Mamba(c, referenceKernels);
	const hs = host.newState();
	await host.forward(input.subarray(0, 19), hs);
	const s = m.newState();
	await m.forward(input.subarray(0, 18), s);
	const snap = s.clone();
	await m.step(input[18], s);
	const got = await s.toHost();
	assert.is(got.position, 19);
	for (let l = 0; l < c.config.nLayer; l++) {
		assert.ok(maxAbsDiff(got.ssm[l], hs.ssm[l]) <= 1e-5, `ssm ${l}`);
		assert.ok(maxAbsDiff(got.conv[l], hs.conv[l]) <= 1e-6, `conv ${l}`);
	}
	// the snapshot was not touched by the step; restoring it and stepping again gives the same state
	assert.is(snap.position, 18);
	s.copyFrom(snap);
	await m.step(input[18], s);
	assert.ok(maxAbsDiff((await s.toHost()).ssm[0], got.ssm[0]) === 0);
	// a host state uploaded into a device state
	const fresh = m.newState();
	fresh.copyFrom(hs);
	assert.ok(maxAbsDiff((await fresh.toHost()).conv[1], hs.conv[1]) === 0);
	assert.is(fresh.byteLength, hs.byteLength);
	assert.ok(fresh instanceof DeviceState && !((fresh as unknown) instanceof MambaState));
});

test('engine on resident models: exact greedy speculative == plain greedy; session snapshots survive save/load', async () => {
	const byte = await resident(loadCheckpoint(path.join(FIXTURES, 'tiny-hf')));
	const d = await resident(loadCheckpoint(path.join(FIXTURES, 'tiny-drafter')));
	const drafter = new Drafter(d, Drafter.tokenizerOf(d));
	const opts: GenerateOptions = { maxBytes: 40, temperature: 0, topK: 0, topP: 1, seed: 1, stop: [], utf8: false, accept: { kind: 'exact' }, draftSubwords: 3 };
	const collect = async (dr: Drafter | null) => {
		const out: number[] = [];
		let verified = 0;
		for await (const ev of generate(byte, new TextEncoder().encode('It was a dark'), opts, dr)) {
			if (ev.type === 'commit') out.push(...ev.bytes);
			if (ev.type === 'done') verified = ev.stats.speculative?.verifyPasses ?? 0;
		}
		return { out, verified };
	};
	const plain = await collect(null);
	const spec = await collect(drafter);
	assert.equal(spec.out, plain.out);
	assert.ok(spec.verified > 0, 'the drafter was used');
	// save (host copy) and load into a fresh session: the continuation is the same
	const a = new Session(byte, drafter);
	await a.append(new TextEncoder().encode('CHAPTER I.'));
	const saved = encodeSnapshot(await a.hostSnapshot());
	const b = new Session(byte, drafter);
	b.restore(decodeSnapshot(saved));
	const next = async (s: Session) => {
		const out: number[] = [];
		for await (const ev of s.generate({ ...opts, maxBytes: 12 })) if (ev.type === 'commit') out.push(...ev.bytes);
		return out;
	};
	assert.equal(await next(b), await next(a));
});

test('split-K and norm slice counts divide their lengths', () => {
	for (const K of [24, 64, 384, 1024, 1792, 3584]) {
		for (const N of [48, 144, 256, 3584, 7168]) {
			for (const TB of [1, 4, 16]) {
				const S = slices(TB, K, N, 1 << 20);
				assert.ok(S >= 1 && (K % 4 !== 0 || K % (4 * S) === 0) && S * TB * N <= Math.max(1 << 20, TB * N));
			}
			const V = vecSlices(K, N, 1 << 18);
			assert.ok(K % (4 * V) === 0 && V <= 64);
		}
	}
	for (const d of [24, 64, 384, 1024, 1792, 2560]) {
		const S = normSliceCount(d);
		assert.ok(d % S === 0 && (S === 1 || d / S >= 8) && S <= 32);
	}
});

test('shapes the resident forward cannot index exactly are refused with the reason', () => {
	assert.is(ResidentMamba.unsupported(shapeConfig(1792, 48)), null); // MambaByte-972M
	const why = ResidentMamba.unsupported({ ...shapeConfig(2560, 64), vocabSize: 50280 }); // mamba-2.8b
	assert.match(why ?? '', /2\^24/);
	assert.match(ResidentMamba.unsupported({ ...shapeConfig(64, 2), dInner: 130, dConv: 4 }) ?? '', /multiple of 4/);
});

test('every resident kernel binds at most WebGPU\'s 8 storage buffers, and more is refused', async () => {
	await resident(fusable('layer', false, 1)); // builds every program through checkBindings
	assert.throws(() => checkBindings('wide', Array(MAX_STORAGE_BUFFERS).fill('array')), /8/);
});

// gpu.js translates a kernel to WGSL before it needs a device; the same translation runs on the GPU machine.
test('every blocked kernel translates to WGSL', () => {
	const { WebGPUKernel } = createRequire(import.meta.url)('gpu.js/src/backend/web-gpu/kernel.js') as {
		WebGPUKernel: new (src: string, s: object) => {
			setupConstants(): void; setupArguments(a: unknown[]): void; validateSettings(a: unknown[]): void;
			translateSource(): void; computeParamsLayout(): unknown; assembleWGSL(): string; paramsLayout: unknown; returnType: string;
		};
	};
	const all: Record<string, Function> = {
		matmulPartial, matmulReduce, matvecNormPartial, matvecNormReduce, matvecPartial, matvecReduce,
		normApplyBlocked, normCombine, normSlices, convAndState, scanOutputBlocked, scanStarts, scanStep, embedGather,
		scanKeep, convStateKeep, // the verify pass's rollback (src/model/resident/records.ts)
		matvecGroup, matvecNormGroup, matvecGroupSummed, convStep, scanStepFused, embedRow, // the grouped and row decode plans
		matvecRow, matvecRowNorm, matvecRowResidual, matvecRowSummed, matmulRow, // the row decode plan and row chunks
		matmulTile, // tile chunks: 64 outputs a thread (src/backend/resident/wide.ts)
		scanBlocks, scanGroups, scanCarry, // the scan of long chunks
	};
	const wide: Record<string, number> = { matmulTile: 64 };
	const intIndexed = new Set(['matmulPartial', 'matmulTile', 'matmulReduce']);
	const grouped = new Set(['matvecGroup', 'matvecNormGroup', 'matvecGroupSummed']);
	const rowKernels = new Set(['matvecRow', 'matvecRowNorm', 'matvecRowResidual', 'matvecRowSummed', 'matmulRow']);
	const constants = {
		K: 64, N: 32, XC: 64, U: 4, epi: 3, tile: 4, tileBlocks: 4, C: 16, P: 4, XN: 36, D: 64, S: 4, eps: 1e-5, layer: 1, E: 32, RC: 36, Bc: 4, Cc: 20, TMAX: 16,
		hStride: 1024, xStride: 640, dStride: 512, bStride: 576, pStride: 1088, cStride: 128, zStride: 1024,
	};
	let n = 0;
	for (const [name, fn] of Object.entries(all)) {
		const params = (fn.toString().match(/^function\s*\w*\(([^)]*)\)/)?.[1] ?? '').split(',').map((p) => p.trim()).filter(Boolean);
		// arrays are the parameters gpu.js sees indexed; scalars are the upper-case ones (TB, KS, S, T, DS)
		const args = params.map((p) => (/^[A-Z]{1,2}$/.test(p) && !['A', 'D', 'H'].includes(p) ? 1.5 : new Float32Array(4)));
		const w = wide[name] ? wideSource(fn, wide[name]) : null;
		const k = new WebGPUKernel(w?.source ?? fn.toString(), { output: [64], constants, precision: 'single', loopMaxIterations: 1 << 24 });
		k.setupConstants();
		k.setupArguments(args);
		k.validateSettings(args);
		k.translateSource();
		k.paramsLayout = k.computeParamsLayout();
		let wgsl = k.assembleWGSL();
		if (w) {
			// each thread writes its values, value j in plane j (result[j * threads + i]), and nothing else
			wgsl = wideWGSL(wgsl, w.names);
			for (let j = 0; j < wide[name]; j++) assert.match(wgsl, new RegExp(`result\\[${j} \\* i32\\(params.outputX\\) \\+ data_index\\] = user_${w.names[j]};`), `${name} output ${j}`);
			assert.is(wgsl.match(/result\[/g)?.length, wide[name], name);
		}
		// every kernel's index sums can be rewritten (the decode kernels are, with UploadOptions.decodeIntIndex)
		assert.match(intIndexWGSL(wgsl), /get_user_\w+\(0, 0, /, name);
		if (intIndexed.has(name)) {
			// integer index sums (src/backend/resident/int-index.ts): x's 4 or 16 loads a step convert one index, not each
			const before = wgsl.match(/i32\(/g)!.length;
			wgsl = intIndexWGSL(wgsl);
			assert.not.match(wgsl, /get_user_x\(0, 0, i32\(\(user_xi\+/, name);
			assert.ok(wgsl.match(/i32\(/g)!.length >= before, name); // conversions written out: each term its own
		}
		if (rowKernels.has(name)) {
			// 16-bit weights (src/backend/resident/halves.ts), then a group sum over the whole workgroup
			const components = (k as unknown as { componentCount: number }).componentCount === 1 ? 1 : 4;
			const bf16 = halvesWGSL(wgsl, { w: 'bf16' });
			assert.match(bf16, /bitcast<f32>\(select\(word << 16u, word & 0xffff0000u, \(i & 1u\) == 1u\)\)/, name);
			// as WebGpuRunner.program assembles them with decodeIntIndex: integer indices, then 16 bits, then the group sum
			const all3 = groupSumWGSL(halvesWGSL(intIndexWGSL(wgsl), { w: 'f16' }), 1, components);
			assert.match(all3, /unpack2x16float\(user_w\[i >> 1u\]\)/, name);
			assert.is(all3.match(/workgroupBarrier\(\);/g)?.length, 7, name);
			wgsl = groupSumWGSL(halvesWGSL(wgsl, { w: 'f16' }), 1, components);
			assert.match(wgsl, /var<storage, read> user_w : array<u32>;/, name);
			assert.match(wgsl, /unpack2x16float\(user_w\[i >> 1u\]\)/, name);
			assert.is(wgsl.match(/workgroupBarrier\(\);/g)?.length, 7, name);
		}
		if (grouped.has(name)) {
			// the group-sum rewrite (src/backend/resident/group-sum.ts): no result write left in the body, one barrier per fold
			wgsl = groupSumWGSL(wgsl, 16, (k as unknown as { componentCount: number }).componentCount === 1 ? 1 : 4);
			assert.match(wgsl, /fn groupBody\(data_index : i32\) -> vec4<f32>/, name);
			assert.is(wgsl.match(/workgroupBarrier\(\);/g)?.length, 3, name);
			assert.not.match(wgsl.slice(wgsl.indexOf('fn groupBody'), wgsl.indexOf('@compute')), /result\[|return;/, name);
		}
		assert.match(wgsl, /@compute @workgroup_size\(64, 1, 1\)/, name);
		assert.not.match(wgsl, /undefined|NaN/, `${name}: ${wgsl}`);
		n++;
	}
	assert.ok(n >= 31, `${n} kernels`);
	assert.throws(() => wideSource(function f() { return [1, 2]; }, 8), /lists 2 values; 8 local variables/);
	// an index sum split at its top-level + and −, literals as integers, products and quotients converted whole
	assert.is(integerSum('((user_xi+(1.0*user_XC4))+2.0)'), '((i32(user_xi) + i32(1.0*user_XC4)) + 2)');
	assert.is(integerSum('(((user_k+1.0)*user_N)-user_n)'), '(i32((user_k+1.0)*user_N) - i32(user_n))');
	assert.is(integerSum('(-user_a+floor((user_q/4.0)))'), '(i32(-user_a) + i32(floor((user_q/4.0))))');
	assert.is(integerSum('user_wi'), 'i32(user_wi)');
	// a name ending in digit-e is no exponent, a closing bracket ends an operand, and 2.5e-3's minus is the exponent's
	assert.is(integerSum('user_a-user_x2e-1.0'), '((i32(user_a) - i32(user_x2e)) - 1)');
	assert.is(integerSum('user_a-b[0]-1.0'), '((i32(user_a) - i32(b[0])) - 1)');
	assert.is(integerSum('(2.5e-3+user_x)'), '(i32(2.5e-3) + i32(user_x))');
	assert.throws(() => intIndexWGSL('fn main() {}'), /no getter call/);
	assert.throws(() => wideSource(function f() { return [1, 2, 3, 4]; }, 6), /not a multiple of 4/);
	assert.throws(() => wideWGSL('fn main() {}', ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']), /0 result writes/);
	assert.throws(() => halvesWGSL('fn main() {}', { w: 'f16' }), /no read-only binding user_w/);
	assert.throws(() => groupSumWGSL('fn main() {}', 16, 1), /not a 1-D gpu.js kernel/);
	assert.throws(() => groupSumWGSL('', 12, 1), /power of two/);
});

test('a group sum (C columns per workgroup) sums each column over its parts: matvecGroup against the reference', async () => {
	const r = new CpuRunner();
	const K = 40, N = 24; // C = 8 columns, 8 parts; KS not a multiple of 4 parts, and a last partial iteration
	const W = Float32Array.from({ length: N * K }, (_, i) => Math.sin(i * 0.37));
	const xRow = Float32Array.from({ length: K }, (_, i) => Math.cos(i * 0.11));
	const wt = r.alloc(K * N), x = r.alloc(K * 4), out = r.alloc(64 * N);
	const wT = new Float32Array(K * N);
	for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) wT[k * N + n] = W[n * K + k];
	r.upload({ buf: wt, offset: 0, length: K * N }, wT);
	r.upload({ buf: x, offset: 0, length: K * 4 }, Float32Array.from({ length: K * 4 }, (_, i) => (i % 4 === 0 ? xRow[i / 4] : 99)));
	const want = projectionReference({ data: W, rows: N, cols: K }, xRow, 1);
	for (const S of [1, 2, 4]) {
		const p = await r.program(matvecGroup, { K, N, C: 8, P: 8 }, { x: 'array', wt: 'array', KS: 'scalar' }, { groupSum: 8 });
		const view = { buf: out, offset: 0, length: S * N };
		await r.run([{ pass: r.pass(p, { x: { buf: x, offset: 0, length: K * 4 }, wt: { buf: wt, offset: 0, length: K * N }, KS: K / S }, view, S * N * 8) }]);
		const got = await r.read(view);
		const sum = new Float32Array(N).map((_, n) => got.subarray(0).filter((_, i) => i % N === n).reduce((a, b) => a + b, 0));
		assert.ok(maxAbsDiff(sum, want) <= 1e-5, `S = ${S}`);
	}
	let refused = '';
	await r.program(matvecGroup, {}, { x: 'array', wt: 'array', KS: 'scalar' }, { groupSum: 12 }).catch((e: Error) => (refused = e.message));
	assert.match(refused, /power of two/);
});

test.run();
