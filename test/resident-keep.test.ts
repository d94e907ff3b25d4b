// Rolling the GPU-resident model back after a verify pass (src/model/resident/records.ts) on the CPU runner: the two
// rollback kernels against their references (scanReference, nextConvState), verify + keep(j) against feeding the j
// tokens alone (state and next logits, on the resident model and on the host model), what a keep costs in device
// commands, the safety nets (a forward between verify and keep, a pass longer than the records) and the contract.
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadCheckpoint } from '../src/checkpoint/index.js';
import { referenceKernels } from '../src/backend/reference.js';
import { CpuRunner, whole, type Command, type View } from '../src/backend/resident/runner.js';
import { Mamba } from '../src/model/mamba.js';
import { ResidentMamba } from '../src/model/resident.js';
import { convStride, DeviceState, ssmStride } from '../src/model/resident/device-state.js';
import { recordCapacity, VERIFY_MAX } from '../src/model/resident/records.js';
import { aligned } from '../src/model/resident/split.js';
import { randomCheckpoint, rng, shapeConfig } from '../src/model/random.js';
import type { Checkpoint, MambaConfig } from '../src/model/types.js';
import { columns, rows, toBlocked } from '../kernels/layout.js';
import { convStateKeep, nextConvState } from '../kernels/conv.js';
import { scanKeep, scanReference } from '../kernels/scan.js';

const FIXTURES = path.resolve('test/fixtures');
const r = rng(77);
const uniform = (n: number, lo = -1, hi = 1) => Float32Array.from({ length: n }, () => lo + (hi - lo) * r());

/** A CPU runner that counts the passes and copies it runs (in submissions and on their own). */
class CountingRunner extends CpuRunner {
	passes = 0;
	copies = 0;
	private inRun = false;
	override async run(commands: Command[], read?: View): Promise<Float32Array | null> {
		for (const c of commands) if ('pass' in c) this.passes++;
		else this.copies++;
		this.inRun = true;
		try {
			return await super.run(commands, read);
		} finally {
			this.inRun = false;
		}
	}
	override copy(from: View, to: View): void {
		if (!this.inRun) this.copies++;
		super.copy(from, to);
	}
	reset(): void {
		this.passes = this.copies = 0;
	}
}

/** `fn` rejects with an error matching `want` (a pattern, or an error class). */
async function rejects(fn: () => Promise<unknown>, want: RegExp | Function): Promise<void> {
	try {
		await fn();
	} catch (e) {
		if (want instanceof RegExp) assert.match(String((e as Error).message), want);
		else assert.instance(e, want);
		return;
	}
	assert.unreachable(`did not reject (${want})`);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
	assert.is(a.length, b.length);
	let m = 0;
	for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
	return Number.isNaN(m) ? Infinity : m;
}

// ---- the kernels against their references ------------------------------------------------------------------------

const runner = new CpuRunner();
async function pass(fn: Function, constants: Record<string, number>, args: Record<string, Float32Array | number>, out: number, threads: number) {
	const kinds = Object.fromEntries(Object.entries(args).map(([k, v]) => [k, typeof v === 'number' ? 'scalar' : 'array'] as const));
	const bound = Object.fromEntries(Object.entries(args).map(([k, v]) => {
		if (typeof v === 'number') return [k, v];
		const b = whole(runner.alloc(v.length));
		runner.upload(b, v);
		return [k, b];
	}));
	const o = whole(runner.alloc(out));
	return (await runner.run([{ pass: runner.pass(await runner.program(fn, constants, kinds), bound, o, threads) }], o))!;
}

test('scanKeep (every layer\'s h after J recorded steps, one pass) matches scanReference over J steps', async () => {
	for (const [L, T, E, N, R] of [[3, 9, 5, 4, 3], [2, 16, 3, 16, 1], [1, 4, 8, 5, 2]]) {
		const RC = R + 2 * N, TB = Math.ceil(T / 4);
		const hS = aligned(E * N), xS = aligned(TB * E * 4 + 7), dS = aligned(TB * E * 4), bS = aligned(TB * RC * 4), pS = aligned(E * N + 2 * E);
		const layers = Array.from({ length: L }, () => ({
			delta: uniform(T * E, 0.01, 0.8), x: uniform(T * E, -2, 2), dbc: uniform(T * RC, -1.5, 1.5),
			A: Float32Array.from({ length: E * N }, (_, i) => -(1 + (i % N)) * (0.5 + r())), h0: uniform(E * N),
		}));
		const delta = new Float32Array(L * dS), x = new Float32Array(L * xS), dbc = new Float32Array(L * bS);
		const p = new Float32Array(L * pS), h0 = new Float32Array(L * hS);
		layers.forEach((s, l) => {
			delta.set(toBlocked(s.delta, T, E), l * dS);
			x.set(toBlocked(s.x, T, E), l * xS);
			dbc.set(toBlocked(s.dbc, T, RC), l * bS);
			p.set(s.A, l * pS);
			h0.set(s.h0, l * hS);
		});
		const constants = { E, N, RC, Bc: R, hStride: hS, xStride: xS, dStride: dS, bStride: bS, pStride: pS, TMAX: 16 };
		for (const J of [0, 1, 3, 4, T - 1, T]) {
			const out = await pass(scanKeep, constants, { delta, x, dbc, p, h0, J }, L * hS, (L * hS) / 4);
			layers.forEach((s, l) => {
				const h = s.h0.slice();
				const dims = { T: J, E, N };
				const B = columns(s.dbc, R, RC), C = columns(s.dbc, R + N, RC);
				scanReference({ delta: s.delta, x: s.x, B, C, z: rows(new Float32Array(T * E), E), A: s.A, D: new Float32Array(E), h }, dims);
				const got = out.subarray(l * hS, l * hS + E * N);
				assert.ok(maxAbsDiff(got, h) <= 1e-5, `L=${L} T=${T} E=${E} N=${N} J=${J} layer ${l}: ${maxAbsDiff(got, h)}`);
				assert.ok(out.subarray(l * hS + E * N, (l + 1) * hS).every((v) => v === 0), 'the stride padding is zero');
			});
		}
	}
});

test('convStateKeep (every layer\'s conv state after J recorded inputs, one pass) equals nextConvState', async () => {
	for (const [L, T, E, k] of [[3, 9, 8, 4], [2, 13, 4, 4], [2, 6, 12, 3]]) {
		const TB = Math.ceil(T / 4), cS = aligned(E * (k - 1)), zS = aligned(TB * 2 * E * 4);
		const layers = Array.from({ length: L }, () => ({ xz: uniform(T * 2 * E, -2, 2), state: uniform(E * (k - 1), -2, 2) }));
		const xz = new Float32Array(L * zS), state = new Float32Array(L * cS);
		layers.forEach((s, l) => {
			xz.set(toBlocked(s.xz, T, 2 * E), l * zS);
			state.set(s.state, l * cS);
		});
		for (let J = 0; J <= T; J++) {
			const out = await pass(convStateKeep, { E, K: k, cStride: cS, zStride: zS }, { xz, state, J }, L * cS, (L * cS) / 4);
			layers.forEach((s, l) => {
				const want = nextConvState({ x: columns(s.xz, 0, 2 * E), state: s.state }, { T: J, E, k });
				assert.equal(out.subarray(l * cS, l * cS + E * (k - 1)), want, `L=${L} T=${T} E=${E} k=${k} J=${J} layer ${l}`);
			});
		}
	}
});

// ---- verify + keep(j) on the model -------------------------------------------------------------------------------

/** Shapes: the fused-decode shape, a fixture, and one whose E·N and E·(k−1) leave padding in the state strides. */
const models: [string, () => Checkpoint][] = [
	['random d64 L2', () => randomCheckpoint({ ...shapeConfig(64, 2), norm: 'layer', tied: false }, 11)],
	['tiny-ssm-ln', () => loadCheckpoint(path.join(FIXTURES, 'tiny-ssm-ln'))],
	['random E20 N5', () => randomCheckpoint({ ...shapeConfig(16, 3), dInner: 20, dState: 5, dtRank: 3 } as MambaConfig, 12)],
];

const prefix = [72, 101, 108, 108, 111, 44, 32]; // fed before each pass: the state is not zero
const tokensOf = (T: number) => Array.from({ length: T }, (_, i) => (31 * i + 7) % 256);

async function hostOf(m: Mamba, tokens: number[]) {
	const s = m.newState();
	const logits = await m.forward(tokens, s);
	return { state: s, last: logits.subarray(logits.length - m.config.vocabSize) };
}

for (const [name, make] of models) {
	test(`${name}: verify + keep(j) leaves the state and next logits of feeding the j tokens alone`, async () => {
		const ck = make();
		const runner = new CountingRunner();
		const m = await ResidentMamba.create(ck, runner, referenceKernels, 16);
		const host = new Mamba(ck, referenceKernels);
		assert.is(m.recordCapacity, 16);
		for (const T of [1, 2, 5, 8, 13, 16]) {
			for (const j of new Set([0, 1, T >> 1, T - 1, T])) {
				if (j > T) continue;
				const toks = tokensOf(T);
				const s = m.newState();
				await m.forward(prefix, s);
				const v = await m.verify(toks, s);
				runner.reset();
				await v.keep(j);
				// a rollback is the two replay passes and two copies, keeping everything too (the pass ran padded)
				assert.equal([runner.passes, runner.copies], [2, 2], `T=${T} j=${j}: commands of keep`);
				assert.is(s.position, prefix.length + j);
				const alone = m.newState();
				await m.forward([...prefix, ...toks.slice(0, j)], alone);
				const [got, want] = [await s.toHost(), await alone.toHost()];
				const hw = await hostOf(host, [...prefix, ...toks.slice(0, j), 99]);
				for (let l = 0; l < m.config.nLayer; l++) {
					assert.ok(maxAbsDiff(got.ssm[l], want.ssm[l]) <= 1e-5, `T=${T} j=${j} ssm ${l}: ${maxAbsDiff(got.ssm[l], want.ssm[l])}`);
					// a chunk of j and one of T split their projections differently: deeper layers' inputs differ by rounding
					assert.ok(maxAbsDiff(got.conv[l], want.conv[l]) <= 1e-5, `T=${T} j=${j} conv ${l}: ${maxAbsDiff(got.conv[l], want.conv[l])}`);
				}
				const next = await m.step(99, s);
				assert.ok(maxAbsDiff(next, await m.step(99, alone)) <= 1e-4, `T=${T} j=${j}: next logits against the resident model`);
				assert.ok(maxAbsDiff(next, hw.last as Float32Array) <= 1e-4, `T=${T} j=${j}: next logits against the host model`);
			}
		}
	});
}

for (const chunks of ['split-K', 'tiles', 'rows'] as const) test(`speculative rounds on one state (each verify pass recorded while the one before ran) keep what a forward would (${chunks} chunks)`, async () => {
	const ck = models[0][1]();
	const m = await ResidentMamba.create(ck, new CpuRunner(), referenceKernels, 16);
	m.chunkKind = chunks;
	const host = new Mamba(ck, referenceKernels);
	const s = m.newState(), hs = host.newState();
	await m.forward(prefix, s);
	await host.forward(prefix, hs);
	// sizes 8, 8, 16, 16, 8, 8 and plain steps between: the recorded pass is used, dropped, recorded again
	const rounds: [number, number][] = [[5, 2], [7, 7], [12, 3], [16, 16], [3, 0], [6, 4]];
	for (const [i, [T, j]] of rounds.entries()) {
		const toks = tokensOf(T).map((t) => (t + 13 * i) % 256);
		const v = await m.verify(toks, s);
		const want = await host.verify(toks, hs);
		assert.ok(maxAbsDiff(v.logits, want.logits) <= 1e-4, `round ${i}: logits`);
		await v.keep(j);
		await want.keep(j);
		assert.is(s.position, hs.position, `round ${i}: position`);
		// two steps in a row record a third ahead, which the step after the last rounds runs (after their passes)
		if (i === 3) for (const b of [42, 43]) assert.ok(maxAbsDiff(await m.step(b, s), await host.step(b, hs)) <= 1e-4, 'a step between rounds');
	}
	assert.ok(maxAbsDiff(await m.step(99, s), await host.step(99, hs)) <= 1e-4, 'the next logits after the rounds');
});

test('verify logits equal a forward\'s, and the verify plan leaves every later forward as it was', async () => {
	const ck = models[0][1]();
	const m = await ResidentMamba.create(ck, new CpuRunner(), referenceKernels, 16);
	const host = new Mamba(ck, referenceKernels);
	const toks = tokensOf(11);
	const s = m.newState();
	await m.forward(prefix, s);
	const v = await m.verify(toks, s);
	const hs = host.newState();
	await host.forward(prefix, hs);
	assert.ok(maxAbsDiff(v.logits, await host.forward(toks, hs)) <= 1e-4);
	await v.keep(11);
	// a plain chunk and a fused step after the pass read their own buffers, not the records
	const want = await host.forward([5, 6, 7, 8, 9], hs);
	const got = new Float32Array(want.length);
	got.set(await m.forward([5, 6, 7, 8], s));
	got.set(await m.step(9, s), 4 * m.config.vocabSize);
	assert.ok(maxAbsDiff(got, want) <= 1e-4);
});

test('a forward between verify and keep, a second verify, and a pass longer than the records still roll back right', async () => {
	const ck = models[0][1]();
	const runner = new CountingRunner();
	const m = await ResidentMamba.create(ck, runner, referenceKernels, 16);
	const toks = tokensOf(9);
	const want = async (n: number) => {
		const s = m.newState();
		await m.forward([...prefix, ...toks.slice(0, n)], s);
		return s.toHost();
	};
	const same = async (s: DeviceState, n: number, what: string) => {
		const [got, w] = [await s.toHost(), await want(n)];
		assert.is(got.position, w.position, what);
		for (let l = 0; l < m.config.nLayer; l++) {
			assert.ok(maxAbsDiff(got.ssm[l], w.ssm[l]) <= 1e-5, `${what}: ssm ${l}`);
			assert.ok(maxAbsDiff(got.conv[l], w.conv[l]) <= 1e-5, `${what}: conv ${l}`);
		}
	};
	// another state fed on the same model overwrites the work buffers and records: keep refeeds instead
	const a = m.newState(), other = m.newState();
	await m.forward(prefix, a);
	const va = await m.verify(toks, a);
	await m.forward([1, 2, 3], other);
	await m.step(4, other);
	runner.reset();
	await va.keep(3);
	assert.ok(runner.passes > 2, 'a refeed, not a replay');
	await same(a, 3, 'after an interleaved forward');
	// two live passes on two states: the first is preserved by the second
	const b = m.newState(), c2 = m.newState();
	await m.forward(prefix, b);
	await m.forward(prefix, c2);
	const vb = await m.verify(toks, b);
	const vc = await m.verify(toks.slice(0, 6), c2);
	await vc.keep(4);
	await vb.keep(2);
	await same(c2, 4, 'the second of two passes');
	await same(b, 2, 'the first of two passes');
	// longer than the records (16 at chunk 16): a device copy and a refeed
	const long = tokensOf(20);
	const d = m.newState();
	await m.forward(prefix, d);
	const vd = await m.verify(long, d);
	await vd.keep(17);
	const w = m.newState();
	await m.forward([...prefix, ...long.slice(0, 17)], w);
	assert.ok(maxAbsDiff((await d.toHost()).ssm[1], (await w.toHost()).ssm[1]) <= 1e-5, 'a pass longer than the records');
	assert.is(d.position, prefix.length + 17);
});

test('keep is callable once, in range; a failed keep still releases the pass', async () => {
	const m = await ResidentMamba.create(models[0][1](), new CpuRunner(), referenceKernels, 16);
	const s = m.newState();
	const v = await m.verify([1, 2, 3], s);
	await v.keep(1);
	await rejects(() => v.keep(1), /kept once/);
	const w = await m.verify([1, 2, 3], s);
	await rejects(() => w.keep(4), RangeError);
	await rejects(() => w.keep(0), /kept once/);
	assert.is(s.position, 4, 'a failed keep leaves the pass fed');
	// the failed pass left nothing live: a new pass rolls back by replay
	const x = await m.verify([4, 5], s);
	await x.keep(0);
	assert.is(s.position, 4);
	await rejects(() => m.verify([1, 300], s), /outside the vocabulary/);
	const y = await m.verify([7], s);
	await y.keep(0);
	assert.is(s.position, 4);
});

test('records fit gpu.js\'s exact f32 indices: the capacity per shape', () => {
	const c972 = shapeConfig(1792, 48);
	assert.is(recordCapacity(c972, 64), VERIFY_MAX);
	assert.is(recordCapacity(c972, 16), 16);
	assert.is(recordCapacity(shapeConfig(1024, 53), 64), VERIFY_MAX); // the 353M shape
	for (const c of [c972, shapeConfig(1024, 400), shapeConfig(2560, 64), shapeConfig(4096, 128)]) {
		const T = recordCapacity(c, 64);
		assert.ok(T % 4 === 0 && T <= VERIFY_MAX);
		const L = c.nLayer, E = c.dInner;
		if (T > 0) assert.ok(L * aligned(T * 2 * E) < 1 << 24 && L * ssmStride(c) < 1 << 24 && L * convStride(c) < 1 << 24);
	}
	assert.ok(recordCapacity(shapeConfig(1024, 400), 64) < VERIFY_MAX, 'many layers record fewer positions');
	assert.is(recordCapacity(shapeConfig(4096, 128), 64), 0); // L·E·N past 2^24: verify refeeds
});

test.run();
