// One chat turn (runner.ts) against the scripted engine: batching of live updates, stopping, prompt-read aborts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { GenerationEvent } from '../src/engine/events.js';
import { runTurn, type TurnUpdate } from '../src/ui/runner.js';
import { settingsWith, type GenerationSettings } from '../src/app/options.js';
import { spansText } from '../src/ui/turn.js';
import { commit, done, FakeSession, genStats } from './ui-fakes.js';

const settings: GenerationSettings = settingsWith({ temperature: 0, topP: 1, topK: 0, maxBytes: 100, seed: 1, stop: [], draft: false, accept: { kind: 'exact' } });
const enc = new TextEncoder();
const text = (updates: TurnUpdate[]) => updates.flatMap((u) => u.lines.map(spansText)).join('\n');

test('updates are batched: many events inside one interval give one live update, then the final one', async () => {
	const events: GenerationEvent[] = [...'abcdefghij'.repeat(10)].map((c) => commit(c));
	const s = new FakeSession(() => [...events, commit('\nend'), done(genStats({ generatedBytes: 104 }))]);
	const updates: TurnUpdate[] = [];
	const r = await runTurn(s, enc.encode('go'), settings, {
		signal: new AbortController().signal,
		intervalMs: 1000,
		now: () => 0, // the clock never moves: everything after the first event falls in the same interval
		onUpdate: (u) => updates.push(u),
	});
	assert.is(updates.length, 2, 'the first event, then the end of the turn');
	assert.is(updates[1].view, null);
	assert.is(text(updates), 'abcdefghij'.repeat(10) + '\nend');
	assert.is(r.reason, 'max-bytes');
	assert.is(r.generated, 104);
	assert.equal(s.appended, ['go']);
});

test('interval 0: every event is shown', async () => {
	const s = new FakeSession(() => [commit('a'), commit('b'), commit('c'), done()]);
	const updates: TurnUpdate[] = [];
	await runTurn(s, new Uint8Array(0), settings, { signal: new AbortController().signal, intervalMs: 0, onUpdate: (u) => updates.push(u) });
	assert.equal(updates.map((u) => (u.view ? spansText(u.view.line) : null)), ['a', 'ab', 'abc', null]);
	assert.equal(s.appended, [], 'an empty line feeds nothing');
});

test('an engine that ignores the signal is stopped at its next event, and told so (return())', async () => {
	const ctl = new AbortController();
	let closed = false;
	const session = new FakeSession(() => []);
	session.generate = async function* () {
		try {
			for (let i = 0; ; i++) {
				if (i === 3) ctl.abort();
				yield commit('x');
			}
		} finally {
			closed = true;
		}
	};
	const r = await runTurn(session, new Uint8Array(0), settings, { signal: ctl.signal, intervalMs: 0, onUpdate: () => {} });
	assert.is(r.reason, 'aborted');
	assert.is(r.generated, 4);
	assert.ok(closed);
});

test('stopped while reading the prompt: no generation, reason aborted', async () => {
	const s = new FakeSession(() => [commit('never'), done()]);
	s.append = async () => {
		const e = new Error('aborted');
		e.name = 'AbortError';
		throw e;
	};
	const r = await runTurn(s, enc.encode('long prompt'), settings, { signal: new AbortController().signal, onUpdate: () => {} });
	assert.is(r.reason, 'aborted');
	assert.is(s.turns, 0);
});

test('an engine error reaches the caller after the turn is closed', async () => {
	const s = new FakeSession(() => []);
	s.generate = async function* () {
		yield commit('partial');
		throw new Error('kernel failed');
	};
	const updates: TurnUpdate[] = [];
	const err = await runTurn(s, new Uint8Array(0), settings, { signal: new AbortController().signal, intervalMs: 0, onUpdate: (u) => updates.push(u) })
		.then(() => null, (e: Error) => e);
	assert.match(err?.message ?? '', 'kernel failed');
	assert.is(updates[updates.length - 1].view, null);
	assert.is(text(updates), 'partial');
});

test.run();
