// The acceptance rules checked exactly. exact: at each text position the output is the byte plain decoding emits there
// (the argmax, or the Gumbel-max draw with the position's noise, which follows p: sampling.test.ts), so a drafted byte
// is kept iff it is that byte and the replacement is that byte — whatever was drafted, the text equals plain
// decoding's. A sampled draft draws with the same noise from the drafter's q, which makes the two agree with the
// Gumbel coupling's probability (>= (1 − TV) / (1 + TV); 1 when q = p). Then the drafter's recorded q: each sampled
// draft byte must be distributed as the q it reports.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { referenceKernels } from '../src/backend/reference.js';
import { rng } from '../src/model/random.js';
import { acceptByte, replacementByte, type AcceptRule } from '../src/engine/accept.js';
import { DraftContext } from '../src/engine/drafter.js';
import { gumbelArgmax, positionNoise, Sampler } from '../src/engine/sampling.js';
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

const maxDiff = (a: Float64Array, b: Float64Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

function logits(r: () => number, n: number): Float32Array {
	const z = new Float32Array(256).fill(-Infinity);
	for (let b = 0; b < n; b++) z[b] = 3 * r();
	return z;
}

test('exact: a drafted byte is kept iff it is the byte plain decoding emits at that position, which replaces it', () => {
	const r = rng(7);
	for (const temperature of [0, 0.8]) {
		const s = new Sampler({ temperature, topK: 0, topP: 1, seed: 4 });
		let kept = 0;
		for (let i = 0; i < 400; i++) {
			const d = s.distribution(logits(r, 2 + (i % 6)), 0, 256, null);
			const pos = 1000 + i, plain = s.sample(d, pos);
			for (let b = 0; b < 8; b++) {
				const ok = acceptByte(EXACT, s, d, b, pos);
				assert.is(ok, b === plain, `position ${pos}, drafted ${b}`);
				if (ok) kept++;
				else assert.is(replacementByte(s, d, pos), plain);
			}
		}
		assert.ok(kept > 0);
	}
});

test('the Gumbel coupling: a draft drawn from q with the verifier\'s noise agrees at least (1 − TV)/(1 + TV) of the time', () => {
	const r = rng(8);
	for (let i = 0; i < 12; i++) {
		const p = randomDist(r, 3 + (i % 5), i % 3 === 0);
		const q = i % 4 === 0 ? p.slice() : randomDist(r, 3 + (i % 5), false);
		let tv = 0;
		for (let b = 0; b < 256; b++) tv += Math.abs(p[b] - q[b]) / 2;
		const N = 4000;
		let agree = 0;
		for (let pos = 0; pos < N; pos++) {
			const g = positionNoise(i, pos);
			if (gumbelArgmax(p, g) === gumbelArgmax(q, g)) agree++;
		}
		const bound = (1 - tv) / (1 + tv), sd = Math.sqrt(0.25 / N);
		if (maxDiff(p, q) === 0) assert.is(agree, N, 'q = p: always');
		else assert.ok(agree / N > bound - 4 * sd, `case ${i}: agreement ${agree / N} vs bound ${bound}`);
	}
});

test('top:K keeps a drafted byte while it is among the K highest logits; the replacement is plain decoding\'s byte', () => {
	const s = new Sampler({ temperature: 0.8, topK: 0, topP: 1, seed: 2 });
	const z = new Float32Array(256).fill(-Infinity);
	z[1] = 2;
	z[2] = 1;
	z[3] = 0;
	const d = s.distribution(z, 0, 256, null);
	assert.ok(acceptByte({ kind: 'top', k: 2 }, s, d, 2, 0));
	assert.not.ok(acceptByte({ kind: 'top', k: 2 }, s, d, 3, 0));
	assert.is(replacementByte(s, d, 7), s.sample(d, 7));
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
		const N = 12000;
		const r = rng(11);
		// For draft position i: the mean of the reported q_i(c) must match the frequency of drafting c (E[q_i] = P(b_i)).
		const mean = [new Float64Array(256), new Float64Array(256)];
		const freq = [new Float64Array(256), new Float64Array(256)];
		const reached = [0, 0];
		let firstQ: Float64Array | null = null;
		for (let n = 0; n < N; n++) {
			ctx.restore(snap);
			const d = await ctx.draft({ subwords: 6, maxBytes: 2, minConfidence: 0, temperature: 1.3, uniform: r, noise: (i) => positionNoise(n, i) });
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
		const d = await ctx.draft({ subwords: 1, maxBytes: 16, minConfidence: 0, temperature: 1, uniform: r, noise: (i) => positionNoise(n, i) });
		if (d.proposal.length === 0) sampledEmpty++;
	}
	ctx.restore(snap);
	const g = await ctx.draft({ subwords: 1, maxBytes: 16, minConfidence: 0, temperature: 0 });
	assert.ok(g.proposal.length > 0, 'greedy: a proposal');
	assert.is(sampledEmpty, 0, 'sampled: every draft proposes at least one byte');
	ctx.free();
});

test.run();
