// Independent correctness: logits and bits per byte made by PyTorch/transformers (test/fixtures/make_fixtures.py)
// reproduced by the TypeScript forward on every backend that runs in CI, for both checkpoint layouts and all dtypes.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadCheckpoint } from '../src/checkpoint/index.js';
import { Mamba } from '../src/model/mamba.js';
import { GpuJsKernels } from '../src/backend/gpujs.js';
import { referenceKernels } from '../src/backend/reference.js';
import type { Kernels } from '../src/backend/types.js';
import { NativeKernels, nativeAvailable } from '../src/backend/native.js';
import { scoreStream } from '../src/engine/perplexity.js';

const FIXTURES = path.resolve('test/fixtures');
const input = new Uint8Array(readFileSync(path.join(FIXTURES, 'input.txt')));
const BYTE_MODELS = ['tiny-hf', 'tiny-hf-f16', 'tiny-hf-bf16', 'tiny-hf-untied', 'tiny-ssm-ln', 'tiny-ssm-ln-bin'];

const backends: [string, () => Kernels][] = [
	['reference', () => referenceKernels],
	['cpu', () => GpuJsKernels.create('cpu')],
	['webasm', () => GpuJsKernels.create('webasm')],
	...(nativeAvailable() ? [['native', () => NativeKernels.create()] as [string, () => Kernels]] : []),
];
if (!nativeAvailable()) console.log('  (golden: native backend not built; checked reference, cpu and webasm)');

function expected(name: string) {
	const dir = path.join(FIXTURES, name);
	const meta = JSON.parse(readFileSync(path.join(dir, 'expected.json'), 'utf8')) as { T: number; V: number; bits_per_byte: number; token_ids?: number[] };
	const raw = readFileSync(path.join(dir, 'logits.bin'));
	const logits = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
	assert.is(logits.length, meta.T * meta.V);
	return { dir, meta, logits };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
	let m = 0;
	for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
	return m;
}

async function bitsPerByte(model: Mamba, bytes: Uint8Array): Promise<number> {
	async function* once() {
		yield bytes;
	}
	const gen = scoreStream(model, 'input.txt', bytes.length, once(), { curve: false, bucket: 1024, window: null, backend: '', model: '' });
	for (;;) {
		const n = await gen.next();
		if (n.done) return n.value.bits_per_byte;
	}
}

for (const name of BYTE_MODELS) {
	for (const [backend, make] of backends) {
		test(`${name} on ${backend}: logits and bits per byte match PyTorch`, async () => {
			const { dir, meta, logits } = expected(name);
			const model = new Mamba(loadCheckpoint(dir), make());
			const got = await model.forward(input, model.newState());
			const diff = maxAbsDiff(got, logits);
			assert.ok(diff <= 1e-4, `max abs diff ${diff}`);
			const bpb = await bitsPerByte(model, input);
			assert.ok(Math.abs(bpb - meta.bits_per_byte) <= 1e-5, `bpb ${bpb} vs ${meta.bits_per_byte}`);
		});
	}
}

test('tiny subword drafter: logits over its token ids match PyTorch (cpu)', async () => {
	const { dir, meta, logits } = expected('tiny-drafter');
	const model = new Mamba(loadCheckpoint(dir), GpuJsKernels.create('cpu'));
	const got = await model.forward(meta.token_ids!, model.newState());
	const diff = maxAbsDiff(got, logits);
	assert.ok(diff <= 1e-4, `max abs diff ${diff}`);
});

test.run();
