// The generation engine: events, byte budget, stop strings, seeds, abort, empty prompts, sessions that continue,
// snapshots, and constant memory over long generations.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { referenceKernels } from '../src/backend/reference.js';
import type { GenerationEvent } from '../src/engine/events.js';
import { generate, Session, type GenerateOptions } from '../src/engine/generate.js';
import { decodeSnapshot, encodeSnapshot } from '../src/engine/snapshot.js';
import { Utf8Validator } from '../src/engine/utf8.js';
import { byteModel, concat, cycleModel, enc, oracleDrafter, randomDrafter } from './engine-fixtures.js';

const SAMPLE: GenerateOptions = { maxBytes: 40, temperature: 1, topK: 0, topP: 1, seed: 42, stop: [], utf8: true, schedule: 'fixed' }; // fixed: sampled bytes then follow the seed alone (see below)
const GREEDY: GenerateOptions = { ...SAMPLE, temperature: 0 };

async function collect(gen: AsyncGenerator<GenerationEvent>) {
	const events: GenerationEvent[] = [];
	for await (const ev of gen) events.push(ev);
	const bytes = concat(events.flatMap((e) => (e.type === 'commit' ? [e.bytes] : [])));
	const done = events.at(-1) as Extract<GenerationEvent, { type: 'done' }>;
	return { events, bytes, done };
}

const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

const model = byteModel(referenceKernels, 11);
const cycle = cycleModel(referenceKernels, 1);

test('events: start first, done last with stats; exactly maxBytes bytes', async () => {
	const { events, bytes, done } = await collect(generate(model, enc('Hello'), SAMPLE));
	const start = events[0];
	assert.is(start.type, 'start');
	if (start.type === 'start') {
		assert.is(start.promptBytes, 5);
		assert.is(start.backend, 'reference');
		assert.is(start.draft, null);
		assert.ok(start.stateBytes > 0);
	}
	assert.is(done.type, 'done');
	assert.is(done.reason, 'max-bytes');
	assert.is(bytes.length, 40);
	assert.is(done.stats.generatedBytes, 40);
	assert.is(done.stats.promptBytes, 5);
	assert.is(done.stats.speculative, null);
	assert.ok(events.every((e) => e.type !== 'commit' || e.source === 'model'));
	const zero = await collect(generate(model, enc('Hello'), { ...SAMPLE, maxBytes: 0 }));
	assert.is(zero.bytes.length, 0);
	assert.is(zero.done.reason, 'max-bytes');
});

test('seeds: same seed same bytes; another seed other bytes', async () => {
	const a = await collect(generate(model, enc('Hello'), SAMPLE));
	const b = await collect(generate(model, enc('Hello'), SAMPLE));
	const c = await collect(generate(model, enc('Hello'), { ...SAMPLE, seed: 43 }));
	assert.ok(same(a.bytes, b.bytes));
	assert.not.ok(same(a.bytes, c.bytes));
});

// The adaptive schedule (engine/adaptive.ts) follows measured time, and under sampling what is drafted changes which
// bytes are drawn (never their distribution): seeds reproduce with a drafter on a fixed schedule.
test('seeds reproduce with a drafter too (exact sampling, fixed schedule)', async () => {
	const fixed = SAMPLE;
	const a = await collect(generate(model, enc('Hello'), fixed, randomDrafter(referenceKernels)));
	const b = await collect(generate(model, enc('Hello'), fixed, randomDrafter(referenceKernels)));
	assert.ok(same(a.bytes, b.bytes));
	assert.ok(a.done.stats.speculative !== null);
});

test('stop string: generation ends right after it, and it is part of the output', async () => {
	const full = await collect(generate(cycle, enc('The '), { ...GREEDY, maxBytes: 80 }));
	const text = new TextDecoder().decode(full.bytes);
	const stop = text.slice(20, 22);
	const first = text.indexOf(stop);
	const r = await collect(generate(cycle, enc('The '), { ...GREEDY, maxBytes: 80, stop: ['zzz-not-there', stop] }));
	assert.is(r.done.reason, 'stop');
	assert.is(new TextDecoder().decode(r.bytes), text.slice(0, first + stop.length));
	// a stop string in the prompt does not count
	const p = await collect(generate(cycle, enc('The ' + stop), { ...GREEDY, maxBytes: 5, stop: [stop] }));
	assert.ok(p.bytes.length > 0);
});

test('UTF-8 mask on: the output is always well-formed where the model would break it; off: raw bytes', async () => {
	// the random model likes 0xE3 (a lead byte) and stray bytes at high temperature
	let sawInvalid = false;
	for (let seed = 1; seed <= 6; seed++) {
		const on = await collect(generate(model, enc('x'), { ...SAMPLE, temperature: 3, maxBytes: 60, seed }));
		const v = new Utf8Validator();
		for (const b of on.bytes) assert.ok(v.push(b), `seed ${seed}: byte ${b.toString(16)} breaks UTF-8`);
		const off = await collect(generate(model, enc('x'), { ...SAMPLE, temperature: 3, maxBytes: 60, seed, utf8: false }));
		const w = new Utf8Validator();
		for (const b of off.bytes) if (!w.push(b)) sawInvalid = true;
	}
	assert.ok(sawInvalid, 'without the mask this model does emit invalid UTF-8');
});

test('abort: an aborted signal ends with done "aborted", during the prompt or the generation', async () => {
	const ac = new AbortController();
	const events: GenerationEvent[] = [];
	for await (const ev of generate(model, enc('Hello'), { ...SAMPLE, maxBytes: 1000, signal: ac.signal })) {
		events.push(ev);
		if (events.filter((e) => e.type === 'commit').length === 5) ac.abort();
	}
	const done = events.at(-1)!;
	assert.is(done.type, 'done');
	if (done.type === 'done') {
		assert.is(done.reason, 'aborted');
		assert.is(done.stats.generatedBytes, 5);
	}
	const pre = new AbortController();
	pre.abort();
	const r = await collect(generate(model, enc('Hello'), { ...SAMPLE, signal: pre.signal }));
	assert.is(r.done.reason, 'aborted');
	assert.is(r.bytes.length, 0);
	assert.is(r.events[0].type, 'start');
});

test('empty prompt: generated from "\\n" as context, reported as 0 prompt bytes', async () => {
	const a = await collect(generate(cycle, new Uint8Array(0), GREEDY));
	const b = await collect(generate(cycle, enc('\n'), GREEDY));
	assert.ok(same(a.bytes, b.bytes));
	assert.is(a.done.stats.promptBytes, 0);
	const s = new Session(cycle);
	const c = await collect(s.generate(GREEDY));
	assert.ok(same(c.bytes, a.bytes), 'a fresh session starts the same way');
});

for (const withDrafter of [false, true]) {
	test(`session: append + generate continues the context like one long prompt${withDrafter ? ' (with a drafter)' : ''}`, async () => {
		const mk = () => (withDrafter ? randomDrafter(referenceKernels) : null);
		const s = new Session(cycle, mk());
		await s.append(enc('User: hi\n'));
		const first = await collect(s.generate({ ...GREEDY, maxBytes: 20 }));
		await s.append(enc('\nUser: more\n'));
		const second = await collect(s.generate({ ...GREEDY, maxBytes: 20 }));
		assert.is((second.events[0] as { promptBytes: number }).promptBytes, 12);
		const whole = concat([enc('User: hi\n'), first.bytes, enc('\nUser: more\n')]);
		const direct = await collect(generate(cycle, whole, { ...GREEDY, maxBytes: 20 }));
		assert.ok(same(second.bytes, direct.bytes));
		assert.is(s.position, whole.length + 20);
	});
}

test('snapshot/restore and encode/decode: the same continuation', async () => {
	const s = new Session(model, randomDrafter(referenceKernels));
	await s.append(enc('Once upon a time'));
	await collect(s.generate({ ...SAMPLE, maxBytes: 7 })); // leaves a pending byte
	const snap = s.snapshot();
	const file = encodeSnapshot(snap);
	const a = await collect(s.generate(SAMPLE));
	s.restore(snap);
	const b = await collect(s.generate(SAMPLE));
	const t = new Session(model, randomDrafter(referenceKernels));
	t.restore(decodeSnapshot(file));
	const c = await collect(t.generate(SAMPLE));
	assert.ok(same(a.bytes, b.bytes));
	assert.ok(same(a.bytes, c.bytes));
	const other = new Session(cycle);
	assert.throws(() => other.restore(snap), /snapshot is of model/);
	assert.throws(() => decodeSnapshot(enc('nope')), /not a mambabyte session snapshot/);
	s.reset();
	assert.is(s.position, 0);
});

test('memory: the context costs a fixed state however long the generation', async () => {
	const ref = enc('the cat sat on the mat. '.repeat(200));
	const s = new Session(cycle, oracleDrafter(ref, 3));
	await s.append(enc('x'));
	const before = s.stateBytes;
	let n = 0;
	for await (const ev of s.generate({ ...SAMPLE, maxBytes: 3000 })) {
		if (ev.type === 'commit') n += ev.bytes.length;
	}
	assert.is(n, 3000);
	assert.is(s.stateBytes, before);
	const snapBytes = encodeSnapshot(s.snapshot()).length;
	assert.ok(snapBytes < 64 * 1024, `snapshot stays small: ${snapBytes} bytes`);
});

test.run();
