// --repeat-penalty, --repeat-last-n and --min-p (sampling.ts) against a plain reference of llama.cpp's rules, and
// through the engine: the penalty sees the prompt and every committed byte, so speculative decoding in exact mode
// (greedy) still gives plain decoding's bytes, and a looping greedy model stops looping.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { referenceKernels } from '../src/backend/reference.js';
import { generate, Session, type GenerateOptions } from '../src/engine/generate.js';
import { applyMinP, MAX_REPEAT_LAST_N, penalizeRepeats, RecentBytes, Sampler } from '../src/engine/sampling.js';
import { rng } from '../src/model/random.js';
import { cycleModel, enc, oracleDrafter } from './engine-fixtures.js';

/** The whole distribution the obvious way: penalty on logits, softmax at T, top-k, top-p, min-p. */
function reference(z: Float32Array, recent: number[], o: { T: number; R: number; topK: number; topP: number; minP: number }): Float64Array {
	const l = Array.from(z, (v, b) => (recent.includes(b) ? Math.fround(v > 0 ? v / o.R : v * o.R) : v)); // f32 logits
	const max = Math.max(...l);
	let p = l.map((v) => Math.exp(v / o.T - max / o.T));
	const sum = p.reduce((a, b) => a + b, 0);
	p = p.map((v) => v / sum);
	const order = p.map((_, b) => b).sort((a, b) => p[b] - p[a] || a - b);
	let keep = o.topK > 0 ? o.topK : 256;
	let acc = 0;
	for (let i = 0; i < keep; i++) if ((acc += p[order[i]]) >= o.topP) { keep = i + 1; break; }
	const kept = new Set(order.slice(0, keep));
	p = p.map((v, b) => (kept.has(b) ? v : 0));
	const s2 = p.reduce((a, b) => a + b, 0);
	p = p.map((v) => v / s2);
	const pmax = Math.max(...p);
	p = p.map((v) => (v >= o.minP * pmax ? v : 0));
	const s3 = p.reduce((a, b) => a + b, 0);
	return Float64Array.from(p, (v) => v / s3);
}

test('penalty and min-p match the reference on random logits', () => {
	const r = rng(7);
	for (let trial = 0; trial < 30; trial++) {
		const z = Float32Array.from({ length: 256 }, () => (r() - 0.5) * 12);
		const recent = new RecentBytes();
		const history = Array.from({ length: 1 + Math.floor(r() * 200) }, () => Math.floor(r() * 256));
		recent.pushAll(Uint8Array.from(history));
		const lastN = [0, 1, 16, 64, -1][trial % 5];
		const o = { T: 0.3 + r() * 1.5, R: 1 + r(), topK: trial % 3 === 0 ? 40 : 0, topP: trial % 4 === 0 ? 0.9 : 1, minP: [0, 0.05, 0.2][trial % 3] };
		const s = new Sampler({ temperature: o.T, topK: o.topK, topP: o.topP, seed: 1, minP: o.minP, repeatPenalty: o.R, repeatLastN: lastN }, recent);
		const got = s.distribution(z, 0, 256, null).p;
		const want = reference(z, lastN < 0 ? history.slice(-MAX_REPEAT_LAST_N) : lastN === 0 ? [] : history.slice(-lastN), o);
		for (let b = 0; b < 256; b++) assert.ok(Math.abs(got[b] - want[b]) < 1e-9, `trial ${trial} byte ${b}: ${got[b]} vs ${want[b]}`);
	}
});

test('penalty: positive logits divided, negative multiplied; min-p keeps the top byte; the ring keeps the last bytes', () => {
	const z = Float32Array.from({ length: 256 }, (_, b) => (b === 1 ? 2 : b === 2 ? -2 : 0));
	const out = penalizeRepeats(z, Uint8Array.of(1, 2), 2);
	assert.is(out[1], 1);
	assert.is(out[2], -4);
	assert.is(z[1], 2); // the logits themselves are untouched
	const p = Float64Array.from([0.5, 0.3, 0.15, 0.05]);
	applyMinP(p, 0.4);
	assert.equal(Array.from(p).map((v) => +v.toFixed(4)), [0.625, 0.375, 0, 0]);
	const ring = new RecentBytes();
	ring.pushAll(Uint8Array.from({ length: MAX_REPEAT_LAST_N + 10 }, (_, i) => i & 255));
	assert.equal(Array.from(ring.last(3)), [(MAX_REPEAT_LAST_N + 7) & 255, (MAX_REPEAT_LAST_N + 8) & 255, (MAX_REPEAT_LAST_N + 9) & 255]);
	assert.is(ring.last(Infinity).length, MAX_REPEAT_LAST_N);
});

const model = cycleModel(referenceKernels, 1);
const GREEDY: GenerateOptions = { maxBytes: 120, temperature: 0, topK: 0, topP: 1, seed: 1, stop: [], utf8: true };

async function bytesOf(gen: AsyncGenerator<import('../src/engine/events.js').GenerationEvent>): Promise<Uint8Array> {
	const parts: number[] = [];
	for await (const ev of gen) if (ev.type === 'commit') parts.push(...ev.bytes);
	return Uint8Array.from(parts);
}

/** Whether b repeats with this period from the start. */
const periodic = (b: Uint8Array, period: number) => b.subarray(period).every((x, i) => x === b[i]);

test('a greedy loop is broken by the penalty; speculative exact gives the same bytes as plain', async () => {
	// The cycle model's greedy output is one 29-byte cycle over and over.
	const plain = await bytesOf(generate(model, enc('the '), GREEDY));
	assert.ok(periodic(plain, 29));
	const penalised = { ...GREEDY, repeatPenalty: 3, repeatLastN: 64 };
	const pen = await bytesOf(generate(model, enc('the '), penalised));
	assert.not.ok(periodic(pen, 29));
	const mild = await bytesOf(generate(model, enc('the '), { ...penalised, repeatLastN: 0 }));
	assert.equal(Array.from(mild), Array.from(plain)); // a window of 0 bytes penalises nothing
	const spec = await bytesOf(generate(model, enc('the '), { ...penalised, accept: { kind: 'exact' } }, oracleDrafter(pen, 5)));
	assert.equal(Array.from(spec), Array.from(pen));
});

test('the penalty sees the prompt: a session continues like one long prompt', async () => {
	const opts = { ...GREEDY, maxBytes: 40, repeatPenalty: 2, repeatLastN: 32 };
	const one = await bytesOf(generate(model, enc('stone tree'), opts));
	const s = new Session(model);
	await s.append(enc('stone '));
	await s.append(enc('tree'));
	const two = await bytesOf(s.generate(opts));
	assert.equal(Array.from(two), Array.from(one));
	const fresh = await bytesOf(generate(model, enc('tree'), opts));
	assert.not.equal(Array.from(fresh), Array.from(one)); // 'stone ' mattered through the penalty or the state
});

test.run();
