// The chat's adapter over the real engine (engine-session.ts) on the tiny fixture models: turns, /draft on|off,
// and /save → /load giving the same continuation as never having stopped.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generationOptions } from '../src/cli/options.js';
import type { GenerationEvent } from '../src/engine/events.js';
import { initialSettings } from '../src/ui/chat.js';
import { openChatSession } from '../src/ui/engine-session.js';
import type { GenerationSettings } from '../src/app/options.js';
import type { ChatSession } from '../src/ui/session.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MODEL = path.join(ROOT, 'test/fixtures/tiny-hf');
const DRAFTER = path.join(ROOT, 'test/fixtures/tiny-drafter');
const have = existsSync(path.join(MODEL, 'config.json')) && existsSync(path.join(DRAFTER, 'tokenizer.json'));

async function run(s: ChatSession, settings: GenerationSettings): Promise<{ bytes: number[]; events: GenerationEvent[] }> {
	const events: GenerationEvent[] = [];
	const bytes: number[] = [];
	for await (const e of s.generate(settings, new AbortController().signal)) {
		events.push(e);
		if (e.type === 'commit') bytes.push(...e.bytes);
	}
	return { bytes, events };
}

test('a chat turn on the real engine: context grows by the new text and the reply; state size is fixed', async () => {
	if (!have) return console.log('  (skipped: fixtures missing)');
	const opts = generationOptions({ model: MODEL, backend: 'cpu', draft: false, maxBytes: '24', seed: '5' });
	const s = await openChatSession(opts);
	const settings = initialSettings(opts, s.drafter);
	assert.is(s.drafter, null);
	assert.equal(s.model, { name: 'tiny-hf', dModel: 24, nLayer: 3, dInner: 48, dState: 16, dConv: 4, vocabSize: 256 });
	const size = s.stateBytes;
	await s.append(new TextEncoder().encode('Once upon'));
	assert.is(s.contextBytes, 9);
	const { bytes, events } = await run(s, settings);
	assert.is(bytes.length, 24);
	assert.is(s.contextBytes, 33);
	assert.is(s.stateBytes, size);
	const last = events[events.length - 1];
	assert.ok(last.type === 'done' && last.stats.speculative === null);
});

test('/save then /load into a fresh session continues exactly as the original would', async () => {
	if (!have) return console.log('  (skipped: fixtures missing)');
	const opts = generationOptions({ model: MODEL, backend: 'cpu', draft: DRAFTER, maxBytes: '16', seed: '9', temperature: '0.9' });
	const a = await openChatSession(opts);
	const settings = { ...initialSettings(opts, a.drafter), draft: false };
	await a.append(new TextEncoder().encode('It was a dark'));
	const saved = await a.exportState();
	const b = await openChatSession(opts);
	await b.importState(saved);
	assert.is(b.contextBytes, a.contextBytes);
	assert.equal((await run(b, settings)).bytes, (await run(a, settings)).bytes);
	assert.is(b.contextBytes, a.contextBytes);
	b.reset();
	assert.is(b.contextBytes, 0);
});

test('/draft on uses the drafter (speculative stats), /draft off does not', async () => {
	if (!have) return console.log('  (skipped: fixtures missing)');
	const opts = generationOptions({ model: MODEL, backend: 'cpu', draft: DRAFTER, maxBytes: '32', seed: '3', accept: 'top:3' });
	const s = await openChatSession(opts);
	assert.is(s.drafter, 'tiny-drafter');
	const on = initialSettings(opts, s.drafter);
	assert.is(on.draft, true);
	await s.append(new TextEncoder().encode('The old man'));
	const withDraft = await run(s, on);
	const done1 = withDraft.events[withDraft.events.length - 1];
	assert.ok(done1.type === 'done' && done1.stats.speculative !== null && done1.stats.speculative.verifyPasses > 0);
	assert.ok(withDraft.events.some((e) => e.type === 'draft'));
	const without = await run(s, { ...on, draft: false });
	const done2 = without.events[without.events.length - 1];
	assert.ok(done2.type === 'done' && done2.stats.speculative === null);
	assert.not.ok(without.events.some((e) => e.type === 'draft'));
});

test.run();
