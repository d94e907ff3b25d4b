// One owner for every state: nothing the engine allocates on a device outlives its use. Counted on the resident
// model's JS runner (every alloc and free), for the cases that leaked before: the drafter's working state when a
// draft stops early, Session.reset, a generation the consumer stops, snapshots, the stream scorer's state, and one
// state per --window segment.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { referenceKernels } from '../src/backend/reference.js';
import { CpuRunner, type DeviceBuffer } from '../src/backend/resident/runner.js';
import { ResidentMamba } from '../src/model/resident.js';
import { randomCheckpoint, shapeConfig } from '../src/model/random.js';
import { generate, Session } from '../src/engine/generate.js';
import { Drafter } from '../src/engine/drafter.js';
import { freeSnapshot } from '../src/engine/snapshot.js';
import { scoreStream } from '../src/engine/perplexity.js';
import type { GenerateOptions } from '../src/engine/options.js';
import { enc, tinyTokenizer } from './engine-fixtures.js';

class CountingRunner extends CpuRunner {
	live = 0;
	allocs = 0;
	override alloc(length: number): DeviceBuffer {
		this.live++;
		this.allocs++;
		return super.alloc(length);
	}
	override free(_buf?: DeviceBuffer): void {
		this.live--;
		super.free();
	}
}

const runner = new CountingRunner();
const byteModel = await ResidentMamba.create(randomCheckpoint({ ...shapeConfig(16, 2), dtRank: 2 }, 11), runner, referenceKernels, 16);
const tok = tinyTokenizer();
const draftModel = await ResidentMamba.create(randomCheckpoint({ ...shapeConfig(16, 2, tok.size + 3), dtRank: 1 }, 5), runner, referenceKernels, 16);
const drafter = new Drafter(draftModel, tok);
const base = runner.live; // the models' own buffers (weights, work buffers)

const GREEDY: GenerateOptions = { maxBytes: 60, temperature: 0, topK: 0, topP: 1, seed: 1, stop: [], utf8: true, schedule: 'fixed' };

async function drain(it: AsyncIterable<unknown>, upTo = Infinity): Promise<void> {
	let n = 0;
	for await (const _ of it) if (++n >= upTo) break;
}

test('generate() with a drafter gives back every state, drafts stopping early included', async () => {
	const before = runner.allocs;
	for (const maxBytes of [1, 2, 7, 60]) {
		for (const opts of [GREEDY, { ...GREEDY, temperature: 0.8 }, { ...GREEDY, accept: { kind: 'top', k: 3 } as const }, { ...GREEDY, schedule: 'adaptive' as const }]) {
			await drain(generate(byteModel, enc('Once upon a time'), { ...opts, maxBytes }, drafter));
			assert.is(runner.live, base, `maxBytes ${maxBytes}, ${JSON.stringify(opts.accept ?? 'exact')} t ${opts.temperature}: ${runner.live - base} buffers left`);
		}
	}
	assert.ok(runner.allocs - before > 100, 'the drafter and the verifier did allocate (the count sees them)');
});

test('a generation the consumer stops early gives its states back', async () => {
	await drain(generate(byteModel, enc('Once upon a time'), { ...GREEDY, maxBytes: 200 }, drafter), 5);
	assert.is(runner.live, base);
});

test('Session: reset, snapshots and free leave nothing behind', async () => {
	const s = new Session(byteModel, drafter);
	await s.append(enc('User: hi\n'));
	const own = runner.live;
	for (let i = 0; i < 3; i++) {
		await drain(s.generate({ ...GREEDY, maxBytes: 20 }));
		s.reset();
		await s.append(enc('again\n'));
	}
	assert.is(runner.live, own, 'three resets');
	const snap = s.snapshot();
	await drain(s.generate({ ...GREEDY, maxBytes: 10 }));
	s.restore(snap);
	freeSnapshot(snap);
	await s.hostSnapshot();
	assert.is(runner.live, own, 'snapshot, restore, host snapshot');
	s.free();
	assert.is(runner.live, base, 'free');
});

test('perplexity: the stream scorer and the window scorer give their states back', async () => {
	const text = enc('It was a dark and stormy night; the rain fell in torrents. '.repeat(3));
	for (const window of [null, 16]) {
		const source = (async function* () {
			yield text;
		})();
		await drain(scoreStream(byteModel, 'x', text.length, source, { curve: false, bucket: 64, window, backend: 'cpu', model: 'm' }));
		assert.is(runner.live, base, `window ${window}`);
	}
});

test.run();
