// Scoring: the streamed, chunked pass equals the definition computed directly, whatever the read sizes; the
// sliding window gives each byte the context the definition promises; word perplexity follows docs/metrics.md.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Mamba } from '../src/model/mamba.js';
import { randomCheckpoint, shapeConfig } from '../src/model/random.js';
import { referenceKernels } from '../src/backend/reference.js';
import { GpuJsKernels } from '../src/backend/gpujs.js';
import { scoreStream, type ScoreOptions } from '../src/engine/perplexity.js';
import { logProbReference } from '../kernels/softmax.js';
import type { PerplexityResult } from '../src/engine/events.js';

const ckpt = randomCheckpoint({ ...shapeConfig(16, 2), dtRank: 2 }, 3);
const text = new TextEncoder().encode('The quick brown fox jumps over the lazy dog.\nPack my box with five dozen liquor jugs! ');

async function* pieces(bytes: Uint8Array, size: number) {
	for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function score(model: Mamba, bytes: Uint8Array, size: number, o: Partial<ScoreOptions> = {}): Promise<PerplexityResult> {
	const gen = scoreStream(model, 'x', bytes.length, pieces(bytes, size), { curve: true, bucket: 32, window: null, backend: 'b', model: 'm', ...o });
	for (;;) {
		const n = await gen.next();
		if (n.done) return n.value;
	}
}

/** −log2 p(b_t | b_from..b_{t−1}) from a fresh state, by the definition. */
async function bitsOf(model: Mamba, bytes: Uint8Array, from: number, t: number): Promise<number> {
	const ctx = bytes.subarray(from, t);
	const logits = await model.forward(ctx, model.newState());
	const last = logits.subarray((ctx.length - 1) * 256, ctx.length * 256);
	return -logProbReference(last, 1, 256, [bytes[t]])[0] / Math.LN2;
}

test('streamed bits per byte equals the direct definition for any read size', async () => {
	const model = new Mamba(ckpt, referenceKernels, 16);
	const logits = await model.forward(text.subarray(0, text.length - 1), model.newState());
	const lp = logProbReference(logits, text.length - 1, 256, text.subarray(1));
	const want = -lp.reduce((a, b) => a + b, 0) / Math.LN2 / (text.length - 1);
	for (const size of [1, 7, 16, 17, 1000]) {
		const r = await score(model, text, size);
		assert.is(r.scored, text.length - 1);
		assert.ok(Math.abs(r.bits_per_byte - want) < 1e-9, `size ${size}: ${r.bits_per_byte} vs ${want}`);
	}
});

test('gpu.js cpu scoring matches the reference kernels', async () => {
	const a = await score(new Mamba(ckpt, referenceKernels, 16), text, 9);
	const b = await score(new Mamba(ckpt, GpuJsKernels.create('cpu'), 16), text, 9);
	assert.ok(Math.abs(a.bits_per_byte - b.bits_per_byte) < 1e-5);
});

test('word perplexity = exp(bpb · ln2 · bytes / words); the curve covers every scored byte', async () => {
	const r = await score(new Mamba(ckpt, referenceKernels, 16), text, 13);
	const words = new TextDecoder().decode(text).split(/\s+/).filter(Boolean).length;
	assert.ok(Math.abs(r.word_perplexity - Math.exp((r.bits_per_byte * Math.LN2 * text.length) / words)) < 1e-6);
	const curve = r.curve!;
	assert.is(curve[0].start, 0);
	assert.is(curve[curve.length - 1].end, text.length);
	const total = curve.reduce((s, c) => s + c.bits_per_byte * (c.end - c.start - (c.start === 0 ? 1 : 0)), 0);
	assert.ok(Math.abs(total / (text.length - 1) - r.bits_per_byte) < 1e-9);
});

test('sliding window: each byte is scored once, from at most W−1 and at least ⌈W/2⌉−1 bytes of context', async () => {
	const model = new Mamba(ckpt, referenceKernels, 16);
	const W = 10;
	const bytes = text.subarray(0, 37);
	const r = await score(model, bytes, 5, { window: W });
	assert.is(r.scored, bytes.length - 1);
	// Recompute by the rule: segments start every W/2; a byte is scored in the first segment that reaches it
	// after the previous segment's end.
	let want = 0;
	for (let t = 1; t < bytes.length; t++) {
		const from = t < W ? 0 : Math.floor((t - W) / (W / 2)) * (W / 2) + W / 2;
		assert.ok(t - from <= W - 1);
		want += await bitsOf(model, bytes, from, t);
	}
	assert.ok(Math.abs(r.bits_per_byte - want / (bytes.length - 1)) < 1e-9, `${r.bits_per_byte} vs ${want / (bytes.length - 1)}`);
});

test('0 and 1 byte inputs score nothing', async () => {
	const model = new Mamba(ckpt, referenceKernels, 16);
	for (const n of [0, 1]) {
		const r = await score(model, text.subarray(0, n), 4);
		assert.is(r.scored, 0);
		assert.is(r.bytes, n);
	}
});

test.run();
