// Files written by real PyTorch 2.11 (torch.save, safetensors; test/helpers/checkpoint-torch/make.py), so the
// zip and pickle readers are checked against the real writer, not only against this repo's imitation of it.
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadCheckpoint } from '../src/checkpoint/load.js';
import { openTorchBin } from '../src/checkpoint/torch.js';
import { throwsUser } from './helpers/checkpoint-fixtures.js';

const ROOT = nodePath.resolve(nodePath.dirname(fileURLToPath(import.meta.url)), '..', '..');
const DIR = nodePath.join(ROOT, 'test', 'helpers', 'checkpoint-torch');

test('torch.save state dict (mamba_ssm layout, LayerNorm, tied head in shared storage) = its safetensors twin', () => {
	const bin = loadCheckpoint(nodePath.join(DIR, 'ssm-ln-bin'));
	const st = loadCheckpoint(nodePath.join(DIR, 'ssm-ln-st'));
	assert.equal(bin.config, { dModel: 8, nLayer: 2, vocabSize: 256, dInner: 16, dState: 4, dConv: 4, dtRank: 1, eps: 1e-5, norm: 'layer', tied: true });
	assert.is(bin.format, 'mamba_ssm');
	assert.equal(bin.weights, st.weights);
	assert.ok(bin.weights.layers[1].normBias!.some((v) => v !== 0));
});

for (const file of ['misc_p2.bin', 'misc_p4.bin']) {
	test(`${file}: f16/bf16 storages, a view at a storage offset, an nn.Parameter, a 0-d tensor, a non-tensor value`, () => {
		const expect = JSON.parse(fs.readFileSync(nodePath.join(DIR, 'misc.json'), 'utf8')) as Record<string, number[]>;
		const src = openTorchBin(nodePath.join(DIR, file));
		assert.equal([...src.entries.keys()], ['half', 'bf16', 'view', 'param', 'scalar']);
		assert.equal(src.entries.get('bf16')!.dtype, 'BF16');
		assert.equal(src.entries.get('scalar')!.shape, []);
		for (const name of src.entries.keys()) assert.equal(Array.from(src.read(name)), expect[name], name);
		src.close();
	});
}

test('the legacy (pre-1.6, non-zip) format and non-contiguous tensors are refused clearly', () => {
	throwsUser(() => openTorchBin(nodePath.join(DIR, 'misc_legacy.bin')), /misc_legacy\.bin: not a zip archive .*legacy torch\.save format is not supported/);
	throwsUser(() => openTorchBin(nodePath.join(DIR, 'noncontig.bin')), /noncontig\.bin: tensor t: non-contiguous strides \[1, 3\] for shape \[3, 2\]/);
});

test.run();
