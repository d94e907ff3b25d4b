// The model on every CI backend against the plain-loop references, and prefill against step-by-step decoding.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Mamba } from '../src/model/mamba.js';
import { randomCheckpoint, shapeConfig } from '../src/model/random.js';
import { referenceKernels } from '../src/backend/reference.js';
import { GpuJsKernels } from '../src/backend/gpujs.js';

const maxAbsDiff = (a: Float32Array, b: Float32Array) => {
	assert.is(a.length, b.length);
	let m = 0;
	for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
	return m;
};

const bytes = [...new TextEncoder().encode('It was a dark and stormy night; the rain fell in torrents — except at occasional intervals.')];

for (const norm of ['rms', 'layer'] as const) {
	const ckpt = randomCheckpoint({ ...shapeConfig(24, 3), norm, dtRank: 3 }, 7);
	const ref = new Mamba(ckpt, referenceKernels, 16);
	test(`${norm}: prefill equals byte-by-byte stepping (reference kernels)`, async () => {
		const a = await ref.forward(bytes, ref.newState());
		const s = ref.newState();
		const b = new Float32Array(a.length);
		for (let t = 0; t < bytes.length; t++) b.set(await ref.step(bytes[t], s), t * 256);
		assert.ok(maxAbsDiff(a, b) <= 1e-5, `max diff ${maxAbsDiff(a, b)}`);
	});
	for (const backend of ['cpu', 'webasm'] as const) {
		test(`${norm}: gpu.js ${backend} matches the reference; its prefill matches its steps`, async () => {
			const m = new Mamba(ckpt, GpuJsKernels.create(backend), 16);
			const want = await ref.forward(bytes, ref.newState());
			const got = await m.forward(bytes, m.newState());
			assert.ok(maxAbsDiff(want, got) <= 1e-4, `max diff ${maxAbsDiff(want, got)}`);
			const s = m.newState();
			const stepped = new Float32Array(got.length);
			for (let t = 0; t < bytes.length; t++) stepped.set(await m.step(bytes[t], s), t * 256);
			assert.ok(maxAbsDiff(got, stepped) <= 1e-5, `max diff ${maxAbsDiff(got, stepped)}`);
		});
	}
}

test.run();
