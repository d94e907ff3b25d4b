// Issue 17, kind 7, in process: perplexity's memory is bounded by what was asked. A stand-in model (uniform
// logits, no weights) records the largest forward it is asked for, so the bounds are checked exactly rather than
// by watching a process: no forward longer than the model's chunk whatever --window is, and no per-byte or
// per-bucket tally without --curve (the heap stays flat over millions of scored bytes with --bucket 1).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MAX_CURVE_BUCKETS, scoreStream, type ScoreOptions } from '../src/engine/perplexity.js';
import type { LanguageModel, ModelState } from '../src/model/types.js';
import { userErrorAsync } from './helpers/hostile.js';

function standIn() {
	const V = 256;
	let longest = 0;
	const state = (): ModelState => ({ position: 0, byteLength: 0, clone: state, copyFrom() {}, toHost: () => Promise.reject(new Error('unused')), free() {} });
	const model = {
		config: { vocabSize: V }, chunk: 64, checkpoint: { name: 'stand-in' }, newState: state,
		logProbs: async (_l: Float32Array, targets: ArrayLike<number>) => new Float64Array(targets.length).fill(-Math.log(V)),
		async forward(tokens: ArrayLike<number>) {
			longest = Math.max(longest, tokens.length);
			return new Float32Array(tokens.length * V);
		},
	} as unknown as LanguageModel;
	return { model, longest: () => longest };
}

async function* bytes(total: number, piece = 1 << 16) {
	for (let at = 0; at < total; at += piece) yield new Uint8Array(Math.min(piece, total - at)).fill(0x61);
}

async function score(model: LanguageModel, total: number, o: Partial<ScoreOptions>, known = true) {
	const gen = scoreStream(model, 'f', known ? total : null, bytes(total), { curve: false, bucket: 1, window: null, backend: 'x', model: 'm', progressEveryBytes: 1 << 16, ...o });
	for (;;) {
		const r = await gen.next();
		if (r.done) return r.value;
	}
}

test('--window far beyond the file: capped at its length, every forward at most one chunk', async () => {
	const m = standIn();
	const r = await score(m.model, 200_000, { window: 1_000_000_000 });
	assert.is(r.scored, 199_999);
	assert.ok(m.longest() <= 64, `a forward of ${m.longest()} bytes`);
	const s = standIn();
	await score(s.model, 5_000, { window: 1_000_000_000 }, false); // stdin: length unknown, still chunked
	assert.ok(s.longest() <= 64);
});

test('no tally per bucket without --curve: --bucket 1 over 3 MB keeps the heap flat', async () => {
	const m = standIn();
	global.gc?.();
	const before = process.memoryUsage().heapUsed;
	const r = await score(m.model, 3_000_000, { bucket: 1, curve: false });
	const grown = process.memoryUsage().heapUsed - before;
	assert.is(r.scored, 2_999_999);
	assert.is(r.curve, undefined);
	assert.ok(grown < 64 * 2 ** 20, `heap grew ${(grown / 2 ** 20).toFixed(0)} MB`);
});

test('--curve buckets are capped: refused up front for a known length, as soon as passed for a stream', async () => {
	await userErrorAsync(() => score(standIn().model, MAX_CURVE_BUCKETS + 10, { curve: true, bucket: 1 }), /more than 1000000 buckets/);
	await userErrorAsync(() => score(standIn().model, MAX_CURVE_BUCKETS + 10, { curve: true, bucket: 1 }, false), /more than 1000000 buckets/);
	const r = await score(standIn().model, 10_000, { curve: true, bucket: 1000 });
	assert.is(r.curve?.length, 10);
});

test.run();
