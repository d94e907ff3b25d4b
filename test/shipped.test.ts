// The shipped byte model (Q8_0 GGUF) scores the first 64 KB of a test book as PyTorch did on the same file's
// dequantized weights when it was exported (checkpoints/byte-model/eval_first64k.json), within 0.002 bits per byte.
// On native the Q8_0 kernels also round activations to int8 blocks (as llama.cpp does): measured +1e-4 at most.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadModel } from '../src/checkpoint/load.js';
import { Mamba } from '../src/model/mamba.js';
import { selectBackend } from '../src/backend/select.js';
import { scoreStream } from '../src/engine/perplexity.js';

const MODEL = path.resolve('checkpoints/byte-model');
const BOOK = path.resolve('../shared/corpus/test/pg73.txt');

test('shipped byte model: first 64 KB of test/pg73.txt matches the PyTorch bits per byte', async () => {
	assert.ok(existsSync(BOOK), `${BOOK} not found: ../shared must sit beside the checkout (as in CI)`);
	const want = (JSON.parse(readFileSync(path.join(MODEL, 'eval_first64k.json'), 'utf8')) as Record<string, number>)['pg73.txt'];
	const bytes = new Uint8Array(readFileSync(BOOK)).subarray(0, 65536);
	const { kernels } = await selectBackend('auto');
	const model = new Mamba(loadModel(MODEL), kernels);
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
