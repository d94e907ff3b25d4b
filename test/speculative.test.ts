// Speculative decoding: the drafter's tokenizer round-trips any bytes, the verifier's rollback equals recomputation
// from scratch (conv state included), exact greedy speculative output equals plain greedy output byte for byte, and
// exact speculative sampling has plain sampling's output distribution (with a wrong rule shown to fail the same test).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { referenceKernels } from '../src/backend/reference.js';
import { GpuJsKernels } from '../src/backend/gpujs.js';
import { NativeKernels, nativeAvailable } from '../src/backend/native.js';
import type { Kernels } from '../src/backend/types.js';
import { Mamba } from '../src/model/mamba.js';
import type { MambaState } from '../src/model/state.js';
import type { LanguageModel } from '../src/model/types.js';
import { rng } from '../src/model/random.js';
import { generate, Session, type GenerateOptions } from '../src/engine/generate.js';
import { Sampler } from '../src/engine/sampling.js';
import { Utf8Validator } from '../src/engine/utf8.js';
import { ByteLevelTokenizer, bytesToTokenString, tokenStringToBytes } from '../src/engine/tokenizer.js';
import { Drafter } from '../src/engine/drafter.js';
import { pickToken } from '../src/engine/draft-vocab.js';
import type { AcceptRule } from '../src/engine/accept.js';
import { RecordingKernels } from '../src/model/replay.js';
import { byteModel, concat, CORPUS, cycleModel, enc, oracleDrafter, randomDrafter, tinyTokenizer, trainByteBpe } from './engine-fixtures.js';

const cpu = GpuJsKernels.create('cpu');

if (process.env.TIME_TESTS) {
	test.before.each((ctx) => void (ctx.t0 = performance.now()));
	test.after.each((ctx) => console.log(`  ${((performance.now() - (ctx.t0 as number)) / 1000).toFixed(2)} s  ${ctx.__test__}`));
}

// 'fixed': these tests check each drafting setting; the adaptive schedule is tested on its own below
const GREEDY: GenerateOptions = { maxBytes: 100, temperature: 0, topK: 0, topP: 1, seed: 1, stop: [], utf8: true, schedule: 'fixed' };

async function run(model: LanguageModel, prompt: Uint8Array, opts: GenerateOptions, drafter: Drafter | null = null) {
	const out: Uint8Array[] = [];
	let done: Extract<import('../src/engine/events.js').GenerationEvent, { type: 'done' }> | undefined;
	const drafts: number[] = [];
	for await (const ev of generate(model, prompt, opts, drafter)) {
		if (ev.type === 'commit') out.push(ev.bytes);
		if (ev.type === 'draft') drafts.push(ev.bytes.length);
		if (ev.type === 'done') done = ev;
	}
	return { bytes: concat(out), done: done!, drafts };
}

const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);
const show = (b: Uint8Array) => JSON.stringify(new TextDecoder().decode(b));

// ---------------------------------------------------------------------------------------------------------------
// Tokenizer

test('byte↔unicode table: 256 distinct printable characters, round trip', () => {
	const all = Uint8Array.from({ length: 256 }, (_, i) => i);
	const s = bytesToTokenString(all);
	assert.is(new Set(s).size, 256);
	assert.ok(same(tokenStringToBytes(s)!, all));
	assert.is(bytesToTokenString(enc(' ')), 'Ġ');
	assert.is(bytesToTokenString(enc('\n')), 'Ċ');
	assert.is(tokenStringToBytes('日'), null);
});

test('tokenizer: arbitrary bytes round-trip (invalid UTF-8, BOM, lone surrogates, special-token text)', () => {
	const tok = tinyTokenizer();
	const r = rng(3);
	const cases = [
		enc('It was a dark and stormy night; the rain fell'),
		enc('Ünïcödé — “quotes” 日本語 ✓'),
		Uint8Array.from([0xff, 0xfe, 0x41, 0xc3, 0x28, 0xe2, 0x82, 0xed, 0xa0, 0x80, 0xf0, 0x9f, 0x98]),
		Uint8Array.from([0xef, 0xbb, 0xbf, 0x68, 0x69]),
		enc('text <|endoftext|> more'),
		Uint8Array.from({ length: 500 }, () => Math.floor(r() * 256)),
		new Uint8Array(0),
	];
	for (const bytes of cases) {
		const pieces = tok.tokenize(bytes);
		assert.is(pieces.reduce((n, p) => n + p.length, 0), bytes.length);
		assert.ok(pieces.every((p) => p.id >= 0), 'every byte has a token');
		assert.ok(same(tok.detokenize(pieces.map((p) => p.id)), bytes), show(bytes));
	}
	// Valid text goes through the library's BPE (merged tokens), not byte by byte.
	const pieces = tok.tokenize(enc(' the the the'));
	assert.ok(pieces.length <= 3, `merged: ${pieces.length} tokens`);
});

test('tokenizer: add_prefix_space and special tokens do not break round trips', () => {
	const tok = new ByteLevelTokenizer(trainByteBpe(CORPUS, 50, { addPrefixSpace: true, special: true }));
	for (const s of ['hello world', ' leading', 'x<|endoftext|>y']) {
		const b = enc(s);
		const pieces = tok.tokenize(b);
		assert.ok(same(concat(pieces.map((p) => tok.bytesOf(p.id)!)), b), s);
	}
	assert.is(tok.tokenBytes[tok.size - 1], null, 'the special token is never drafted');
});

test('pickToken heals the tail: only tokens agreeing with the unfed bytes', () => {
	const tok = tinyTokenizer();
	const logits = new Float32Array(tok.size);
	const the = tok.tokenize(enc(' the'));
	assert.is(the.length, 1, "' the' is one token");
	const theId = the[0].id;
	const xId = tok.byteToken[0x78];
	logits[xId] = 10; // the favourite, but inconsistent with the tail ' t'
	logits[theId] = 5;
	assert.is(pickToken(logits, tok.tokenBytes, enc(' t'), 0), theId);
	assert.is(pickToken(logits, tok.tokenBytes, new Uint8Array(0), 0), xId);
	assert.is(pickToken(logits, tok.tokenBytes, enc(' t'), 2), xId, 'tail fully covered');
});

// ---------------------------------------------------------------------------------------------------------------
// Rollback

function assertStatesEqual(a: MambaState, b: MambaState, what: string) {
	assert.is(a.position, b.position, `${what}: position`);
	for (let l = 0; l < a.conv.length; l++) {
		assert.ok(a.conv[l].every((v, i) => v === b.conv[l][i]), `${what}: conv state of layer ${l}`);
		assert.ok(a.ssm[l].every((v, i) => v === b.ssm[l][i]), `${what}: ssm state of layer ${l}`);
	}
}

const rollbackBackends: [string, Kernels][] = [['reference', referenceKernels], ['cpu', cpu]];
// one thread: no worker pool left spinning through the rest of the file
if (nativeAvailable()) rollbackBackends.push(['native', NativeKernels.create({ threads: 1 })]);
for (const [name, kernels] of rollbackBackends) {
	test(`rollback by replay equals recomputation from scratch, conv state included (${name})`, async () => {
		const rec = new RecordingKernels(kernels);
		const model = byteModel(rec, 21, 16, 3, 8); // chunk 8: a 20-byte draft spans three chunks
		const plain = byteModel(kernels, 21, 16, 3, 8);
		const prefix = enc('Once upon a time');
		const draft = enc(' there lived a king.');
		for (const j of [0, 1, 3, 7, 8, 9, 16, 19, 20]) {
			const s = model.newState();
			await model.forward(prefix, s);
			const start = s.position;
			rec.start();
			await model.forward(draft, s);
			rec.stop();
			assert.ok(await rec.rollback(s, start, draft.length, j), `records usable (j=${j})`);
			rec.clear();
			const fresh = plain.newState();
			await plain.forward(concat([prefix, draft.subarray(0, j)]), fresh);
			assertStatesEqual(s, fresh, `j=${j}`);
			// and the next step agrees exactly
			const a = await model.step(0x20, s);
			const b = await plain.step(0x20, fresh);
			assert.ok(a.every((v, i) => v === b[i]), `next logits (j=${j})`);
		}
	});
}

test('rollback refuses records that do not match the state (falls back)', async () => {
	const rec = new RecordingKernels(referenceKernels);
	const model = byteModel(rec, 21, 16, 2);
	const s = model.newState();
	rec.start();
	await model.forward(enc('abc'), s);
	rec.stop();
	assert.is(await rec.rollback(model.newState(), 0, 3, 1), false, 'another state object');
	assert.is(await rec.rollback(s, 0, 4, 1), false, 'wrong length');
});

// ---------------------------------------------------------------------------------------------------------------
// Exact greedy speculative decoding == plain greedy decoding

const PROMPTS = ['It was a dark and stormy night', 'The ', '', 'Ünïcödé — \u201cquotes\u201d'];

const models: [string, () => Mamba][] = [
	['cycle model, reference kernels', () => cycleModel(referenceKernels, 1)],
	['cycle model, cpu kernels', () => cycleModel(cpu, 3, 16, 2, 16)],
	['random model, cpu kernels', () => byteModel(cpu, 11)],
];

for (const [mname, makeModel] of models) {
	test(`exact greedy: speculative output == plain output (${mname})`, async () => {
		const model = makeModel();
		let accepted = 0;
		let tested = 0;
		for (const p of PROMPTS) {
			const prompt = enc(p);
			const plain = await run(model, prompt, GREEDY);
			assert.is(plain.bytes.length, GREEDY.maxBytes);
			const context = prompt.length > 0 ? prompt : enc('\n');
			const reference = concat([context, plain.bytes]);
			const drafters: [string, Drafter, Partial<GenerateOptions>][] = [
				['random drafter', randomDrafter(referenceKernels, 5), {}],
				['random drafter, boundary schedule', randomDrafter(referenceKernels, 5), { resume: 'boundary' }],
				['oracle drafter', oracleDrafter(reference, 4), {}],
				['oracle drafter, boundary schedule', oracleDrafter(reference, 4), { resume: 'boundary' }],
				['oracle drafter m=1', oracleDrafter(reference, 3), { draftSubwords: 1 }],
				['oracle drafter m=6, no confidence cut', oracleDrafter(reference, 5), { draftSubwords: 6, draftConfidence: 0 }],
			];
			for (const [dname, drafter, o] of drafters) {
				const spec = await run(model, prompt, { ...GREEDY, ...o }, drafter);
				assert.ok(same(spec.bytes, plain.bytes), `${dname}, prompt ${JSON.stringify(p)}:\n plain ${show(plain.bytes)}\n spec  ${show(spec.bytes)}`);
				const st = spec.done.stats.speculative!;
				assert.ok(st.accepted <= st.tested && st.tested <= st.drafted);
				accepted += st.accepted;
				tested += st.tested;
			}
			// top:1 with greedy decoding is the exact rule too
			const top1 = await run(model, prompt, { ...GREEDY, accept: { kind: 'top', k: 1 } }, oracleDrafter(concat([context, plain.bytes])));
			assert.ok(same(top1.bytes, plain.bytes), 'top:1');
		}
		assert.ok(accepted > 0 && accepted < tested, `acceptance is nontrivial: ${accepted}/${tested}`);
	});
}

test('exact greedy with stop strings and a byte budget ending inside a draft: same as plain', async () => {
	const model = cycleModel(referenceKernels, 1);
	const prompt = enc('The ');
	const long = await run(model, prompt, { ...GREEDY, maxBytes: 200 });
	const text = long.bytes;
	const reference = concat([prompt, text]);
	// a stop string that occurs in the plain output, starting mid-way
	const stopAt = 37;
	const stop = new TextDecoder().decode(text.subarray(stopAt, stopAt + 3));
	const plainStop = await run(model, prompt, { ...GREEDY, maxBytes: 200, stop: [stop] });
	assert.is(plainStop.done.reason, 'stop');
	const end = new TextDecoder().decode(plainStop.bytes);
	assert.ok(end.endsWith(stop), 'the stop string is part of the output');
	assert.is(end.indexOf(stop), end.length - stop.length, 'ends right after the first occurrence');
	for (const corrupt of [3, 50]) {
		const spec = await run(model, prompt, { ...GREEDY, maxBytes: 200, stop: [stop] }, oracleDrafter(reference, corrupt));
		assert.ok(same(spec.bytes, plainStop.bytes), `stop: ${show(spec.bytes)}`);
		assert.is(spec.done.reason, 'stop');
		for (const n of [1, 2, 7, 33]) {
			const a = await run(model, prompt, { ...GREEDY, maxBytes: n });
			const b = await run(model, prompt, { ...GREEDY, maxBytes: n }, oracleDrafter(reference, corrupt));
			assert.ok(same(a.bytes, b.bytes) && b.bytes.length === n, `maxBytes ${n}`);
			assert.is(b.done.reason, 'max-bytes');
		}
	}
});

test('after speculative generation the session state equals a fresh state fed the same text', async () => {
	const model = cycleModel(referenceKernels, 1);
	const prompt = enc('It was');
	const plain = await run(model, prompt, { ...GREEDY, maxBytes: 60 });
	const s = new Session(model, oracleDrafter(concat([prompt, plain.bytes]), 3));
	await s.append(prompt);
	const out: Uint8Array[] = [];
	for await (const ev of s.generate({ ...GREEDY, maxBytes: 60 })) if (ev.type === 'commit') out.push(ev.bytes);
	const fresh = new Session(model);
	await fresh.append(concat([prompt, ...out]));
	// both continue identically, and their states are identical once the pending byte is consumed
	const next = async (x: Session) => {
		const o: Uint8Array[] = [];
		for await (const ev of x.generate({ ...GREEDY, maxBytes: 30 })) if (ev.type === 'commit') o.push(ev.bytes);
		return concat(o);
	};
	const a = await next(s);
	const b = await next(fresh);
	assert.ok(same(a, b));
	assert.is(s.position, fresh.position);
});

// ---------------------------------------------------------------------------------------------------------------
// Exact speculative sampling has plain sampling's distribution

test('exact sampling: the first two bytes follow the plain sampling distribution; top:3 does not', async () => {
	const model = byteModel(referenceKernels, 11); // p(first byte) ≈ 0.82, 0.07 (a UTF-8 lead byte), 0.014, …
	const prompt = enc('The ');
	const opts: GenerateOptions = { maxBytes: 2, temperature: 1, topK: 8, topP: 0.98, seed: 0, stop: [], utf8: true, schedule: 'fixed' };
	// The exact distribution of (b1, b2), enumerated from the model with the same processing.
	const V = 256;
	const sampler = new Sampler(opts);
	const st = model.newState();
	const rows = await model.forward(prompt, st);
	const mask = new Utf8Validator();
	mask.pushAll(prompt);
	const p1 = sampler.distribution(rows, prompt.length - 1, V, mask).p;
	const exact = new Map<number, number>();
	for (let b1 = 0; b1 < 256; b1++) {
		if (p1[b1] < 1e-5) continue;
		const s2 = st.clone();
		const m2 = mask.clone();
		m2.push(b1);
		const p2 = sampler.distribution(await model.step(b1, s2), 0, V, m2).p;
		for (let b2 = 0; b2 < 256; b2++) if (p2[b2] > 0) exact.set(b1 * 256 + b2, p1[b1] * p2[b2]);
	}
	// The drafter proposes the greedy path (and a wrong byte every third call): both acceptance and rejection occur.
	const greedy = await run(model, prompt, { ...GREEDY, maxBytes: 8 });
	const N = 3000;
	const sample = async (rule: AcceptRule | null, corruptEvery = 3) => {
		const drafter = rule ? oracleDrafter(concat([prompt, greedy.bytes]), corruptEvery) : null;
		const session = new Session(model, drafter);
		await session.append(prompt);
		const snap = session.snapshot();
		const counts = new Map<number, number>();
		let accepted = 0;
		let tested = 0;
		for (let seed = 1; seed <= N; seed++) {
			session.restore(snap);
			const out: number[] = [];
			for await (const ev of session.generate({ ...opts, seed, accept: rule ?? undefined })) {
				if (ev.type === 'commit') out.push(...ev.bytes);
				if (ev.type === 'done' && ev.stats.speculative) {
					accepted += ev.stats.speculative.accepted;
					tested += ev.stats.speculative.tested;
				}
			}
			const key = out[0] * 256 + out[1];
			counts.set(key, (counts.get(key) ?? 0) + 1);
		}
		return { counts, accepted, tested };
	};
	// Pearson chi-square over the cells expected ≥ 5 times plus one cell for the rest.
	const chi2 = (counts: Map<number, number>) => {
		let x = 0;
		let restObs = N;
		let restExp = N;
		let cells = 0;
		for (const [key, p] of exact) {
			const e = p * N;
			if (e < 5) continue;
			const o = counts.get(key) ?? 0;
			x += (o - e) ** 2 / e;
			restObs -= o;
			restExp -= e;
			cells++;
		}
		if (restExp >= 1) {
			x += (restObs - restExp) ** 2 / restExp;
			cells++;
		}
		return { x, df: cells - 1 };
	};
	// Deterministic (fixed seeds), and loose: a correct rule lands near df; the bound is df + 8·sqrt(2·df) (8 sigma).
	const bound = (df: number) => df + 8 * Math.sqrt(2 * df);
	const plain = await sample(null);
	const c0 = chi2(plain.counts);
	assert.ok(c0.df >= 4, `enough cells (${c0.df + 1})`);
	assert.ok(c0.x < bound(c0.df), `plain sampling vs the exact distribution: chi2 ${c0.x.toFixed(1)}, df ${c0.df}`);
	const spec = await sample({ kind: 'exact' });
	const c1 = chi2(spec.counts);
	assert.ok(spec.accepted > N / 4 && spec.accepted < spec.tested, `acceptance ${spec.accepted}/${spec.tested}`);
	assert.ok(c1.x < bound(c1.df), `exact speculative sampling: chi2 ${c1.x.toFixed(1)}, df ${c1.df}`);
	// The paper's rule keeps the drafter's favourite whenever it is in the top 3: a different distribution.
	const wrong = await sample({ kind: 'top', k: 3 }, 1000);
	const c2 = chi2(wrong.counts);
	assert.ok(c2.x > 4 * bound(c2.df), `top:3 must be detected: chi2 ${c2.x.toFixed(1)}, df ${c2.df}`);
	if (process.env.SHOW_CHI2) console.log(`  chi2 plain ${c0.x.toFixed(1)}, exact ${c1.x.toFixed(1)}, top:3 ${c2.x.toFixed(1)} (df ${c0.df}, ${c1.df}, ${c2.df}; bound ${bound(c1.df).toFixed(1)})`);
});

// ---------------------------------------------------------------------------------------------------------------
// Shipped files, when present

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const shippedModel = path.join(root, 'checkpoints', 'byte-model');
const shippedDraft = path.join(root, 'checkpoints', 'subword-drafter');
const tinyDrafterDir = path.join(root, 'test', 'fixtures', 'tiny-drafter');

test('fixture tiny-drafter (random subword Mamba + tokenizer.json): exact greedy == plain', async () => {
	if (!existsSync(path.join(tinyDrafterDir, 'config.json'))) {
		console.log('  (skipped: test/fixtures/tiny-drafter is not there yet)');
		return;
	}
	const { openModel } = await import('../src/app/open.js');
	const d = await openModel(tinyDrafterDir, referenceKernels);
	const drafter = new Drafter(d.model, Drafter.tokenizerOf(d.model));
	const model = cycleModel(referenceKernels, 1);
	for (const p of PROMPTS) {
		const plain = await run(model, enc(p), { ...GREEDY, maxBytes: 60 });
		const spec = await run(model, enc(p), { ...GREEDY, maxBytes: 60 }, drafter);
		assert.ok(same(plain.bytes, spec.bytes), p);
	}
	// our tokenization of input.txt is what Python's tokenizers produced
	const { readFileSync } = await import('node:fs');
	const expected = JSON.parse(readFileSync(path.join(tinyDrafterDir, 'expected.json'), 'utf8')) as { token_ids: number[] };
	const input = new Uint8Array(readFileSync(path.join(root, 'test', 'fixtures', 'input.txt')));
	assert.equal(drafter.tokenizer.tokenize(input).map((x) => x.id), expected.token_ids);
	const r = rng(9);
	const bytes = Uint8Array.from({ length: 300 }, () => Math.floor(r() * 256));
	assert.ok(same(drafter.tokenizer.detokenize(drafter.tokenizer.tokenize(bytes).map((x) => x.id)), bytes), 'random bytes round-trip');
});

test('exact sampling: speculative output == plain output with the same seed, whatever the drafter and draft lengths', async () => {
	const model = byteModel(cpu, 11);
	const SAMPLED: GenerateOptions = { maxBytes: 40, temperature: 0.9, topK: 0, topP: 0.95, seed: 5, stop: [], utf8: true };
	const texts = new Set<string>();
	for (const p of PROMPTS) {
		const prompt = enc(p);
		const context = prompt.length > 0 ? prompt : enc('\n');
		for (const seed of [1, 2, 3]) {
			const plain = await run(model, prompt, { ...SAMPLED, seed });
			const drafters: [string, Drafter, Partial<GenerateOptions>][] = [
				['random drafter (sampled drafts)', randomDrafter(referenceKernels, 5), {}],
				['random drafter, m=1, fixed', randomDrafter(referenceKernels, 6), { draftSubwords: 1, schedule: 'fixed' }],
				['random drafter, m=5, fixed', randomDrafter(referenceKernels, 7), { draftSubwords: 5, schedule: 'fixed', draftConfidence: 0 }],
				['oracle drafter of the plain text', oracleDrafter(concat([context, plain.bytes]), 4), { schedule: 'fixed' }],
			];
			for (const [dname, drafter, o] of drafters) {
				const spec = await run(model, prompt, { ...SAMPLED, seed, ...o }, drafter);
				assert.ok(same(spec.bytes, plain.bytes), `${dname}, seed ${seed}, prompt ${JSON.stringify(p)}:\n plain ${show(plain.bytes)}\n spec  ${show(spec.bytes)}`);
			}
			texts.add(show(plain.bytes));
		}
	}
	assert.ok(texts.size > PROMPTS.length, `other seeds, other texts: ${texts.size} distinct`);
});

test('shipped pair: exact greedy speculative output == plain greedy output', async () => {
	// The shipped pair is part of the repository (model.gguf + tokenizer.json): its absence is a failure, not a skip.
	const { isCheckpointDir } = await import('../src/app/sources.js');
	assert.ok(isCheckpointDir(shippedModel) && isCheckpointDir(shippedDraft), 'checkpoints/byte-model and checkpoints/subword-drafter');
	const { openModel } = await import('../src/app/open.js');
	const kernels = nativeAvailable() ? NativeKernels.create({ threads: 1 }) : cpu; // the fastest that is here
	const byte = await openModel(shippedModel, kernels);
	const d = await openModel(shippedDraft, kernels);
	const drafter = new Drafter(d.model, Drafter.tokenizerOf(d.model));
	for (const p of ['It was a dark and stormy night', 'CHAPTER I.\n\n', 'The old man said, \u201c']) {
		const plain = await run(byte.model, enc(p), { ...GREEDY, maxBytes: 48 });
		const spec = await run(byte.model, enc(p), { ...GREEDY, maxBytes: 48 }, drafter);
		assert.ok(same(plain.bytes, spec.bytes), `${p}:\n plain ${show(plain.bytes)}\n spec  ${show(spec.bytes)}`);
		assert.ok(spec.done.stats.speculative!.accepted > 0, 'the shipped drafter gets bytes accepted');
		const sampled = { ...GREEDY, maxBytes: 48, temperature: 0.8, seed: 3 };
		const plainT = await run(byte.model, enc(p), sampled);
		const specT = await run(byte.model, enc(p), sampled, drafter);
		assert.ok(same(plainT.bytes, specT.bytes), `t 0.8, ${p}:\n plain ${show(plainT.bytes)}\n spec  ${show(specT.bytes)}`);
	}
});

test.run();
