// The shipped byte model scores the first 64 KB of a test book as PyTorch did when it was exported
// (checkpoints/byte-model/eval_first64k.json, within 0.002 bits per byte as issue 7 asks).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadCheckpoint } from '../src/checkpoint/index.js';
import { Mamba } from '../src/model/mamba.js';
import { selectBackend } from '../src/backend/select.js';
import { scoreStream } from '../src/engine/perplexity.js';

const MODEL = path.resolve('checkpoints/byte-model');
const BOOK = path.resolve('../shared/corpus/test/pg73.txt');

test('shipped byte model: first 64 KB of test/pg73.txt matches the PyTorch bits per byte', async () => {
	if (!existsSync(BOOK)) {
		console.log(`  (skipped: ${BOOK} not found; ../shared sits beside the checkout in CI)`);
		return;
	}
	const want = (JSON.parse(readFileSync(path.join(MODEL, 'eval_first64k.json'), 'utf8')) as Record<string, number>)['pg73.txt'];
	const bytes = new Uint8Array(readFileSync(BOOK)).subarray(0, 65536);
	const { kernels } = await selectBackend('auto');
	const model = new Mamba(loadCheckpoint(MODEL), kernels);
	async function* once() {
		yield bytes;
	}
	const gen = scoreStream(model, 'pg73.txt', bytes.length, once(), { curve: false, bucket: 2048, window: null, backend: kernels.name, model: 'byte-model' });
	let bpb = NaN;
	for (;;) {
		const n = await gen.next();
		if (n.done) {
			bpb = n.value.bits_per_byte;
			break;
		}
	}
	assert.ok(Math.abs(bpb - want) <= 0.002, `${bpb} vs PyTorch ${want} on ${kernels.name}`);
});

test.run();
