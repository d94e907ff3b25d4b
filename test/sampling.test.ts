// Sampling (greedy, temperature, top-k, top-p, seeds), stop strings, and UTF-8 (validator, mask, display decoder).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { drawFrom, gumbelArgmax, logitRank, positionNoise, rankBytes, Sampler, StopMatcher } from '../src/engine/sampling.js';
import { decodeUtf8, isValidUtf8, splitUtf8, Utf8Validator } from '../src/engine/utf8.js';

const opts = (o: Partial<{ temperature: number; topK: number; topP: number; seed: number }> = {}) =>
	({ temperature: 1, topK: 0, topP: 1, seed: 1, ...o });

function logitsOf(values: Record<number, number>, fill = -20): Float32Array {
	const z = new Float32Array(256).fill(fill);
	for (const [b, v] of Object.entries(values)) z[Number(b)] = v;
	return z;
}

test('greedy: argmax, ties go to the lowest byte, no randomness', () => {
	const s = new Sampler(opts({ temperature: 0 }));
	const z = logitsOf({ 200: 5, 65: 5, 66: 4 });
	const d = s.distribution(z, 0, 256, null);
	assert.is(d.argmax, 65);
	assert.is(s.sample(d, 0), 65);
	assert.is(d.p[65], 1);
	assert.is(d.p.reduce((a, b) => a + b, 0), 1);
});

test('temperature: softmax(z / T) in float64', () => {
	const s = new Sampler(opts({ temperature: 2 }));
	const d = s.distribution(logitsOf({ 1: 2, 2: 0 }, -Infinity), 0, 256, null);
	const e = Math.exp(1);
	assert.ok(Math.abs(d.p[1] - e / (e + 1)) < 1e-12);
	assert.ok(Math.abs(d.p[2] - 1 / (e + 1)) < 1e-12);
});

test('top-k keeps the k most probable bytes (ties by lower byte), renormalised', () => {
	const s = new Sampler(opts({ topK: 2 }));
	const d = s.distribution(logitsOf({ 10: 3, 20: 2, 5: 2, 30: 1 }), 0, 256, null);
	const kept = [...d.p.keys()].filter((b) => d.p[b] > 0);
	assert.equal(kept, [5, 10]);
	assert.ok(Math.abs(d.p[5] + d.p[10] - 1) < 1e-12);
});

test('top-p keeps the smallest most-probable set reaching p', () => {
	const z = new Float32Array(256).fill(-Infinity);
	const probs = [0.5, 0.3, 0.15, 0.05];
	probs.forEach((p, i) => (z[100 + i] = Math.log(p)));
	const d = new Sampler(opts({ topP: 0.8 })).distribution(z, 0, 256, null);
	assert.ok(d.p[100] > 0 && d.p[101] > 0, 'keeps 0.5 + 0.3');
	assert.is(d.p[102], 0);
	assert.ok(Math.abs(d.p[100] - 0.5 / 0.8) < 1e-6);
	const d2 = new Sampler(opts({ topP: 0.81 })).distribution(z, 0, 256, null);
	assert.ok(d2.p[102] > 0, '0.81 needs the third byte');
});

test('a padded vocabulary never yields a byte above 255; rows are read at their offset', () => {
	const V = 260;
	const z = new Float32Array(2 * V).fill(-5);
	z[V + 258] = 100; // outside the bytes
	z[V + 7] = 3;
	const d = new Sampler(opts({ temperature: 0 })).distribution(z, 1, V, null);
	assert.is(d.argmax, 7);
});

test('drawFrom: inverse CDF in byte order, never a zero-probability byte', () => {
	const p = new Float64Array(256);
	p[3] = 0.25;
	p[9] = 0.75;
	assert.is(drawFrom(p, 0), 3);
	assert.is(drawFrom(p, 0.2499), 3);
	assert.is(drawFrom(p, 0.25), 9);
	assert.is(drawFrom(p, 0.999999999), 9);
	assert.equal(rankBytes(p), [9, 3]);
});

test('seeds: the same seed gives the same draws, another seed other draws', () => {
	const z = logitsOf({ 1: 1, 2: 1, 3: 1, 4: 1, 5: 1 }, -Infinity);
	const draw = (seed: number) => {
		const s = new Sampler(opts({ seed }));
		return Array.from({ length: 40 }, (_, i) => s.sample(s.distribution(z, 0, 256, null), i));
	};
	assert.equal(draw(7), draw(7));
	assert.not.equal(draw(7), draw(8));
	const counts = new Map<number, number>();
	for (const b of draw(3).concat(draw(4), draw(5))) counts.set(b, (counts.get(b) ?? 0) + 1);
	assert.is(counts.size, 5, 'all five equally likely bytes appear');
});

test('a position\'s draw depends only on (seed, position, distribution): not on what was drawn before', () => {
	const z = logitsOf({ 1: 1, 2: 0.5, 3: 0 }, -Infinity);
	const a = new Sampler(opts({ seed: 9 })), b = new Sampler(opts({ seed: 9 }));
	const d = a.distribution(z, 0, 256, null);
	for (let i = 0; i < 50; i++) a.sample(d, i); // a has drawn 50 positions, b none
	for (const pos of [50, 51, 1000, 2 ** 40]) assert.is(a.sample(d, pos), b.sample(d, pos));
	assert.equal(Array.from(positionNoise(9, 5)), Array.from(positionNoise(9, 5)));
	assert.not.equal(Array.from(positionNoise(9, 5)), Array.from(positionNoise(9, 6)));
	assert.not.equal(Array.from(positionNoise(9, 5)), Array.from(positionNoise(10, 5)));
});

test('Gumbel-max draws over positions follow p (and a wrong rule, argmax p + G, does not)', () => {
	const p = new Float64Array(256);
	[0.5, 0.25, 0.15, 0.07, 0.03].forEach((v, i) => (p[40 + i] = v));
	const N = 20000;
	const counts = new Float64Array(256), wrong = new Float64Array(256);
	for (let pos = 0; pos < N; pos++) {
		const g = positionNoise(3, pos);
		counts[gumbelArgmax(p, g)]++;
		let best = 40;
		for (let b = 40; b < 45; b++) if (p[b] + g[b] > p[best] + g[best]) best = b;
		wrong[best]++;
	}
	let worst = 0, worstWrong = 0;
	for (let b = 40; b < 45; b++) {
		const sd = Math.sqrt((p[b] * (1 - p[b])) / N);
		worst = Math.max(worst, Math.abs(counts[b] / N - p[b]) / sd);
		worstWrong = Math.max(worstWrong, Math.abs(wrong[b] / N - p[b]) / sd);
	}
	assert.ok(worst < 5, `Gumbel-max frequencies vs p: ${worst.toFixed(2)} standard deviations`);
	assert.ok(worstWrong > 10, `the wrong rule must be detectable: ${worstWrong.toFixed(2)}`);
});

test('logitRank ranks among allowed bytes', () => {
	const d = new Sampler(opts({ temperature: 0 })).distribution(logitsOf({ 65: 3, 66: 3, 67: 1 }), 0, 256, null);
	assert.is(logitRank(d, 65), 0);
	assert.is(logitRank(d, 66), 1);
	assert.is(logitRank(d, 67), 2);
});

test('stop strings: detected at their last byte, across pushes, any of several', () => {
	const m = new StopMatcher(['\n\n', 'END']);
	const feed = (s: string) => [...new TextEncoder().encode(s)].map((b) => m.push(b));
	assert.equal(feed('abE'), [false, false, false]);
	assert.equal(feed('ND'), [false, true]);
	assert.equal(feed('x\n\n'), [false, false, true]);
	const none = new StopMatcher([]);
	assert.is(none.active, false);
	assert.is(none.push(10), false);
	const uni = new StopMatcher(['é']);
	assert.equal([0x41, 0xc3, 0xa9].map((b) => uni.push(b)), [false, false, true]);
});

// ---------------------------------------------------------------------------------------------------------------

const hex = (s: string) => Uint8Array.from(s.split(' ').map((h) => parseInt(h, 16)));

test('UTF-8 validator: well-formed sequences per Unicode Table 3-7', () => {
	for (const ok of ['41', 'c2 80', 'df bf', 'e0 a0 80', 'ed 9f bf', 'ee 80 80', 'f0 90 80 80', 'f4 8f bf bf', 'e2 82 ac']) {
		assert.ok(isValidUtf8(hex(ok)), ok);
	}
	for (const bad of ['80', 'bf', 'c0 80', 'c1 bf', 'e0 80 80', 'e0 9f bf', 'ed a0 80', 'f0 80 80 80', 'f0 8f bf bf', 'f4 90 80 80', 'f5 80 80 80', 'ff', 'c2', 'e2 82', 'c2 41']) {
		assert.not.ok(isValidUtf8(hex(bad)), bad);
	}
});

test('UTF-8 mask: what may come next', () => {
	const allowedAfter = (prefix: string) => {
		const v = new Utf8Validator();
		if (prefix) v.pushAll(hex(prefix));
		return Array.from({ length: 256 }, (_, b) => v.allowed(b));
	};
	const lead = allowedAfter('');
	for (const b of [0x00, 0x41, 0x7f, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4]) assert.ok(lead[b], `lead ${b.toString(16)}`);
	for (const b of [0x80, 0xbf, 0xc0, 0xc1, 0xf5, 0xff]) assert.not.ok(lead[b], `lead ${b.toString(16)}`);
	const afterE0 = allowedAfter('e0');
	assert.not.ok(afterE0[0x9f]);
	assert.ok(afterE0[0xa0]);
	assert.not.ok(afterE0[0x41], 'a lead byte where a continuation is needed');
	const afterED = allowedAfter('ed');
	assert.ok(afterED[0x9f]);
	assert.not.ok(afterED[0xa0], 'no surrogates');
	const afterF4 = allowedAfter('f4');
	assert.ok(afterF4[0x8f]);
	assert.not.ok(afterF4[0x90], 'nothing above U+10FFFF');
	const afterF0 = allowedAfter('f0');
	assert.not.ok(afterF0[0x8f]);
	assert.ok(afterF0[0x90]);
	const mid = allowedAfter('e2 82');
	assert.ok(mid[0x80] && mid[0xbf]);
	assert.not.ok(mid[0x20]);
	const done = allowedAfter('e2 82 ac');
	assert.ok(done[0x20] && !done[0x80]);
});

test('UTF-8 mask in the sampler: masked bytes get probability 0', () => {
	const v = new Utf8Validator();
	v.push(0xe2); // a continuation byte is needed
	const z = logitsOf({ 0x41: 10, 0x82: 1, 0xc0: 50 });
	const greedy = new Sampler(opts({ temperature: 0 })).distribution(z, 0, 256, v);
	assert.is(greedy.argmax, 0x82);
	const d = new Sampler(opts()).distribution(z, 0, 256, v);
	assert.is(d.p[0x41], 0);
	assert.is(d.p[0xc0], 0);
	for (let b = 0; b < 256; b++) if (d.p[b] > 0) assert.ok(b >= 0x80 && b <= 0xbf);
	const fresh = new Sampler(opts()).distribution(z, 0, 256, new Utf8Validator());
	assert.is(fresh.p[0xc0], 0, 'C0 is never allowed');
	assert.is(fresh.p[0x82], 0, 'no stray continuation');
});

test('validator resynchronises after invalid bytes like a decoder', () => {
	const v = new Utf8Validator();
	assert.is(v.push(0xe2), true);
	assert.is(v.push(0x41), false); // breaks the character; 0x41 itself is a fine ASCII byte
	assert.ok(v.atBoundary);
	assert.is(v.push(0xc3), true);
	assert.ok(!v.atBoundary);
});

test('display decoding shows invalid bytes as U+FFFD and keeps a BOM', () => {
	assert.is(decodeUtf8(hex('41 ff 42')), 'A\uFFFDB');
	assert.is(decodeUtf8(hex('41 f0 9f')), 'A\uFFFD');
	assert.is(decodeUtf8(hex('ef bb bf 41')), '\uFEFFA', 'a BOM is text, not stripped');
});

test('splitUtf8: valid runs and single invalid bytes cover the input', () => {
	const b = hex('41 42 ff e2 82 ac c3 41 e2 82');
	const parts = splitUtf8(b);
	assert.equal(parts.map((p) => [p.valid, p.start, p.end]), [
		[true, 0, 2], [false, 2, 3], [true, 3, 6], [false, 6, 7], [true, 7, 8], [false, 8, 9], [false, 9, 10],
	]);
});

test.run();
