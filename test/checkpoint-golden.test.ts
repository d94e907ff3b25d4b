// Checkpoints written by PyTorch itself (test/fixtures/tiny-*, made on the GPU machine): layouts, dtypes, norm and
// tying detection, and the torch.save .bin giving exactly the weights of its safetensors twin.
// Each fixture folder is optional only until it is committed: a missing folder prints a note and is skipped.
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { countParameters, loadCheckpoint } from '../src/checkpoint/load.js';
import { decodeFloats, encodeFloats } from '../src/tensor/dtypes.js';
import type { Checkpoint } from '../src/model/types.js';

// dist/test/x.js and test/x.ts both sit two levels below the repository root.
const ROOT = nodePath.resolve(nodePath.dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIXTURES = fs.existsSync(nodePath.join(ROOT, 'test', 'fixtures')) ? nodePath.join(ROOT, 'test', 'fixtures') : nodePath.resolve('test', 'fixtures');

interface Expect {
	format: Checkpoint['format'];
	dtype: Checkpoint['dtype'];
	norm: 'rms' | 'layer';
	tied: boolean;
}
const FIXTURE_EXPECT: Record<string, Expect> = {
	'tiny-hf': { format: 'hf', dtype: 'F32', norm: 'rms', tied: true },
	'tiny-hf-f16': { format: 'hf', dtype: 'F16', norm: 'rms', tied: true },
	'tiny-hf-bf16': { format: 'hf', dtype: 'BF16', norm: 'rms', tied: true },
	'tiny-hf-untied': { format: 'hf', dtype: 'F32', norm: 'rms', tied: false },
	'tiny-ssm-ln': { format: 'mamba_ssm', dtype: 'F32', norm: 'layer', tied: true },
	'tiny-ssm-ln-bin': { format: 'mamba_ssm', dtype: 'F32', norm: 'layer', tied: true },
};

const loaded = new Map<string, Checkpoint>();
function fixture(name: string): Checkpoint | undefined {
	const dir = nodePath.join(FIXTURES, name);
	if (!fs.existsSync(dir)) {
		console.log(`  note: test/fixtures/${name} does not exist yet; its golden checkpoint test is skipped`);
		return undefined;
	}
	if (!loaded.has(name)) loaded.set(name, loadCheckpoint(dir));
	return loaded.get(name);
}

function weightCount(c: Checkpoint): number {
	const w = c.weights;
	let n = w.embedding.length + w.normF.length + (w.normFBias?.length ?? 0) + (w.lmHead?.length ?? 0);
	for (const l of w.layers) {
		n += l.norm.length + (l.normBias?.length ?? 0) + l.inProj.length + l.convWeight.length + l.convBias.length + l.xProj.length;
		n += l.dtProj.length + l.dtBias.length + l.aLog.length + l.D.length + l.outProj.length;
	}
	return n;
}

for (const [name, want] of Object.entries(FIXTURE_EXPECT)) {
	test(`golden fixture ${name}: ${want.format}, ${want.dtype}, ${want.norm}, ${want.tied ? 'tied' : 'untied'}`, () => {
		const c = fixture(name);
		if (!c) return;
		const cfg = c.config;
		assert.is(c.format, want.format);
		assert.is(c.dtype, want.dtype);
		assert.is(cfg.norm, want.norm);
		assert.is(cfg.tied, want.tied);
		assert.ok(cfg.vocabSize >= 256, `byte vocabulary (got ${cfg.vocabSize})`);
		assert.is(c.weights.layers.length, cfg.nLayer);
		assert.is(c.weights.embedding.length, cfg.vocabSize * cfg.dModel);
		assert.is(c.weights.layers[0].inProj.length, 2 * cfg.dInner * cfg.dModel);
		assert.is(c.weights.layers[0].xProj.length, (cfg.dtRank + 2 * cfg.dState) * cfg.dInner);
		assert.is(c.weights.layers[0].convWeight.length, cfg.dInner * cfg.dConv);
		assert.is(c.weights.lmHead === undefined, want.tied);
		assert.is(c.weights.layers[0].normBias !== undefined && c.weights.normFBias !== undefined, want.norm === 'layer');
		assert.is(weightCount(c), countParameters(cfg));
		// The fixtures are asked to have non-trivial A_log, D and biases: all-zero tensors mean a broken export.
		assert.ok(c.weights.layers[0].aLog.some((v) => v !== 0) && c.weights.layers[0].dtBias.some((v) => v !== 0));
	});
}

test('golden: the torch.save pytorch_model.bin and its safetensors twin hold identical weights', () => {
	const st = fixture('tiny-ssm-ln');
	const bin = fixture('tiny-ssm-ln-bin');
	if (!st || !bin) return;
	assert.equal(bin.config, st.config);
	assert.equal(bin.weights, st.weights);
});

test('golden: the F16 and BF16 exports are tiny-hf rounded by torch exactly as convert rounds it', () => {
	const f32 = fixture('tiny-hf');
	for (const [name, dtype] of [['tiny-hf-f16', 'F16'], ['tiny-hf-bf16', 'BF16']] as const) {
		const half = fixture(name);
		if (!f32 || !half) continue;
		const round = (a: Float32Array) => decodeFloats(encodeFloats(a, dtype), dtype);
		assert.equal(half.weights.embedding, round(f32.weights.embedding), `${name} embedding`);
		half.weights.layers.forEach((l, i) => {
			const o = f32.weights.layers[i];
			for (const k of ['inProj', 'convWeight', 'xProj', 'dtProj', 'dtBias', 'aLog', 'D', 'outProj', 'norm'] as const) {
				assert.equal(l[k], round(o[k]), `${name} layer ${i} ${k}`);
			}
		});
	}
});

test.run();
