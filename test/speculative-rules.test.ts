// The acceptance rules checked exactly, by enumeration over small vocabularies: for a drafted byte x ~ q, accepted
// with acceptProbability and otherwise replaced by a draw from the residual, the output byte's distribution must be
// the byte model's p to 1e-12. A wrong rule (√p instead of p, √(p/q) instead of p/q) must fail the same check: a
// sampling test of N = 3,000 could not tell √p from p. Then the drafter's recorded q: each sampled draft byte must
// be distributed as the q it reports (the rule is only exact if it is).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { referenceKernels } from '../src/backend/reference.js';
import { rng } from '../src/model/random.js';
import { acceptByte, acceptProbability, replacementByte, residual, type AcceptRule } from '../src/engine/accept.js';
import { DraftContext } from '../src/engine/drafter.js';
import type { ByteDistribution, Sampler } from '../src/engine/sampling.js';
import { enc, randomDrafter } from './engine-fixtures.js';

const EXACT: AcceptRule = { kind: 'exact' };

/** A distribution over bytes 0..n−1 (the rest 0), with some zeros when `holes`. */
function randomDist(r: () => number, n: number, holes: boolean): Float64Array {
	const p = new Float64Array(256);
	let sum = 0;
	for (let b = 0; b < n; b++) {
		p[b] = holes && r() < 0.3 ? 0 : r() ** 2;
		sum += p[b];
	}
	if (sum === 0) p[0] = sum = 1;
	for (let b = 0; b < n; b++) p[b] /= sum;
	return p;
}

function dist(p: Float64Array): ByteDistribution {
	let argmax = 0;
	for (let b = 1; b < 256; b++) if (p[b] > p[argmax]) argmax = b;
	const logits = new Float32Array(256).map((_, b) => (p[b] > 0 ? Math.log(p[b]) : -Infinity));
	return { logits, allowed: Uint8Array.from(p, (v) => (v > 0 ? 1 : 0)), p, argmax };
}

type Accept = (d: ByteDistribution, x: number, q: Float64Array | null) => number;
type Residual = (d: ByteDistribution, x: number, q: Float64Array | null) => Float64Array;

/** P(output = b) when the draft byte is x ~ q (q null: the draft is `fixed`), enumerated exactly. */
function outputDistribution(d: ByteDistribution, q: Float64Array | null, fixed: number, accept: Accept, resid: Residual): Float64Array {
	const out = new Float64Array(256);
	for (let x = 0; x < 256; x++) {
		const qx = q ? q[x] : x === fixed ? 1 : 0;
		if (qx === 0) continue;
		const a = accept(d, x, q);
		out[x] += qx * a;
		if (a >= 1) continue;
		const r = resid(d, x, q);
		let total = 0;
		for (let b = 0; b < 256; b++) total += r[b];
		for (let b = 0; b < 256; b++) out[b] += (qx * (1 - a) * r[b]) / total;
	}
	return out;
}

const maxDiff = (a: Float64Array, b: Float64Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

const rule: Accept = (d, x, q) => acceptProbability(EXACT, false, d, x, q);
const rest: Residual = (d, x, q) => residual(EXACT, false, d, x, q);

test('speculative sampling (accept min(1, p/q), residual max(0, p − q)) gives p exactly', () => {
	const r = rng(7);
	let cases = 0;
	for (let i = 0; i < 400; i++) {
		const n = 2 + (i % 6);
		const p = randomDist(r, n, i % 3 === 0);
		const q = i % 7 === 0 ? p.slice() : randomDist(r, n + (i % 2), i % 4 === 0); // q may cover bytes p excludes
		const d = dist(p);
		const out = outputDistribution(d, q, -1, rule, rest);
		assert.ok(maxDiff(out, p) < 1e-12, `case ${i}: max |out − p| = ${maxDiff(out, p)}`);
		cases++;
	}
	assert.is(cases, 400);
});

test('a deterministic draft (q a point mass: accept with p(b), residual p without b) gives p exactly', () => {
	const r = rng(8);
	for (let i = 0; i < 200; i++) {
		const p = randomDist(r, 2 + (i % 5), i % 2 === 0);
		const d = dist(p);
		for (const fixed of [0, 1, 3]) {
			const out = outputDistribution(d, null, fixed, rule, rest);
			assert.ok(maxDiff(out, p) < 1e-12, `case ${i}, draft ${fixed}: ${maxDiff(out, p)}`);
		}
	}
});

test('wrong rules fail the same check: accept with √p, with √(p/q), or replace from p itself', () => {
	const r = rng(9);
	const p = randomDist(r, 4, false);
	const q = randomDist(r, 4, false);
	const d = dist(p);
	const sqrtP: Accept = (dd, x) => Math.sqrt(dd.p[x]);
	assert.ok(maxDiff(outputDistribution(d, null, 1, sqrtP, rest), p) > 1e-3, '√p with a deterministic draft');
	const sqrtRatio: Accept = (dd, x, qq) => Math.min(1, Math.sqrt(dd.p[x] / qq![x]));
	assert.ok(maxDiff(outputDistribution(d, q, -1, sqrtRatio, rest), p) > 1e-3, '√(p/q)');
	const fromP: Residual = (dd) => dd.p;
	assert.ok(maxDiff(outputDistribution(d, q, -1, rule, fromP), p) > 1e-3, 'replacement drawn from p, not the residual');
});

test('acceptByte and replacementByte follow acceptProbability and residual with the sampler\'s numbers', () => {
	const p = new Float64Array(256);
	p[1] = 0.2;
	p[2] = 0.8;
	const q = new Float64Array(256);
	q[1] = 0.5;
	q[2] = 0.5;
	const d = dist(p);
	const at = (u: number) => ({ greedy: false, uniform: () => u, sample: () => 2 }) as unknown as Sampler;
	// accept 1 with 0.2 / 0.5 = 0.4
	assert.ok(acceptByte(EXACT, at(0.39), d, 1, q));
	assert.not.ok(acceptByte(EXACT, at(0.41), d, 1, q));
	assert.ok(acceptByte(EXACT, at(0.99), d, 2, q), 'p ≥ q: always');
	// residual after rejecting 1: max(0, p − q) = {2: 0.3}
	assert.is(replacementByte(EXACT, at(0.01), d, 1, q), 2);
	assert.equal(Array.from(residual(EXACT, false, d, 1, q).subarray(0, 3)), [0, 0, 0.30000000000000004]);
	// greedy and top:K do not draw
	assert.is(acceptProbability(EXACT, true, d, 2, q), 1);
	assert.is(acceptProbability(EXACT, true, d, 1, q), 0);
	assert.is(acceptProbability({ kind: 'top', k: 1 }, false, d, 1, q), 0);
	assert.is(acceptProbability({ kind: 'top', k: 2 }, false, d, 1, q), 1);
});

// ---------------------------------------------------------------------------------------------------------------
// The drafter's q is the distribution its sampled bytes actually follow

const setups: [string, (ctx: DraftContext) => Promise<void>][] = [
	// the first sync feeds everything: the draft starts at a token boundary (no tail)
	['at a token boundary', async (ctx) => { ctx.append(enc('Once upon a time there')); await ctx.sync(); }],
	// later syncs keep the last token as the tail, which drafting re-derives
	['healing an unfinished word', async (ctx) => { ctx.append(enc('Once upon a time')); await ctx.sync(); ctx.append(enc(' the')); await ctx.sync(); }],
];
for (const [name, setup] of setups) {
	test(`sampled drafts follow the q they report (${name})`, async () => {
		const drafter = randomDrafter(referenceKernels, 3);
		const ctx = new DraftContext(drafter);
		await setup(ctx);
		const snap = ctx.snapshot();
		const N = 3000;
		const r = rng(11);
		// For draft position i: the mean of the reported q_i(c) must match the frequency of drafting c (E[q_i] = P(b_i)).
		const mean = [new Float64Array(256), new Float64Array(256)];
		const freq = [new Float64Array(256), new Float64Array(256)];
		const reached = [0, 0];
		let firstQ: Float64Array | null = null;
		for (let n = 0; n < N; n++) {
			ctx.restore(snap);
			const d = await ctx.draft({ subwords: 6, maxBytes: 2, minConfidence: 0, temperature: 1.3, uniform: r });
			assert.ok(d.q !== null && d.q.length === d.proposal.length);
			if (n === 0) firstQ = d.q![0];
			for (let i = 0; i < d.proposal.length; i++) {
				const q = d.q![i];
				let sum = 0;
				for (let b = 0; b < 256; b++) sum += q[b];
				assert.ok(Math.abs(sum - 1) < 1e-9, 'q sums to 1');
				assert.ok(q[d.proposal[i]] > 0, 'the drafted byte has probability under q');
				for (let b = 0; b < 256; b++) mean[i][b] += q[b];
				freq[i][d.proposal[i]]++;
				reached[i]++;
			}
		}
		assert.ok(reached[1] > N / 4, `two-byte drafts: ${reached[1]}`);
		let worst = 0;
		for (let i = 0; i < 2; i++) {
			for (let b = 0; b < 256; b++) {
				const m = reached[i];
				const pHat = mean[i][b] / m;
				const f = freq[i][b] / m;
				const sd = Math.sqrt(Math.max(pHat * (1 - pHat), 1e-6) / m);
				worst = Math.max(worst, Math.abs(f - pHat) / sd);
			}
		}
		assert.ok(worst < 5, `frequencies vs reported q: worst ${worst.toFixed(2)} standard deviations`);
		if (name === 'at a token boundary') {
			// with no tail the first byte's q is exactly the token distribution's first-byte marginal
			const tok = drafter.tokenizer;
			const s = drafter.model.newState();
			const ids = tok.tokenize(enc('Once upon a time there')).map((piece) => piece.id);
			const rows = await drafter.model.forward(ids, s);
			const z = rows.subarray((ids.length - 1) * drafter.model.config.vocabSize, ids.length * drafter.model.config.vocabSize);
			const want = new Float64Array(256);
			let max = -Infinity;
			for (let id = 0; id < tok.size; id++) if (tok.tokenBytes[id]?.length) max = Math.max(max, z[id]);
			let total = 0;
			for (let id = 0; id < tok.size; id++) {
				const b = tok.tokenBytes[id];
				if (!b || b.length === 0) continue;
				const e = Math.exp((z[id] - max) / 1.3);
				want[b[0]] += e;
				total += e;
			}
			for (let b = 0; b < 256; b++) want[b] /= total;
			assert.ok(maxDiff(firstQ!, want) < 1e-9, `first byte's q vs the token marginal: ${maxDiff(firstQ!, want)}`);
			s.free();
		}
		ctx.free();
	});
}


test('a one-subword draft that heals a tail still proposes bytes: re-deriving the tail is not counted (greedy and sampled)', async () => {
	const drafter = randomDrafter(referenceKernels, 3);
	const ctx = new DraftContext(drafter);
	ctx.append(enc('Once upon a time'));
	await ctx.sync();
	ctx.append(enc(' the'));
	await ctx.sync(); // the tail is the last token (' the' or part of it): drafting re-derives it first
	const snap = ctx.snapshot();
	const r = rng(5);
	let sampledEmpty = 0;
	for (let n = 0; n < 200; n++) {
		ctx.restore(snap);
		const d = await ctx.draft({ subwords: 1, maxBytes: 16, minConfidence: 0, temperature: 1, uniform: r });
		if (d.proposal.length === 0) sampledEmpty++;
	}
	ctx.restore(snap);
	const g = await ctx.draft({ subwords: 1, maxBytes: 16, minConfidence: 0, temperature: 0 });
	assert.ok(g.proposal.length > 0, 'greedy: a proposal');
	assert.is(sampledEmpty, 0, 'sampled: every draft proposes at least one byte');
	ctx.free();
});

test.run();
