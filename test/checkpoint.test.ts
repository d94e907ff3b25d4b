// Checkpoint loading: both layouts, all dtypes, tying, norm detection, config quirks, limits, convert.
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkpointSummary, countParameters, loadCheckpoint } from '../src/checkpoint/load.js';
import { convertCheckpoint } from '../src/checkpoint/convert.js';
import { writeSafetensors, type TensorToWrite } from '../src/checkpoint/safetensors.js';
import { floatToBFloat16, floatToHalf, decodeFloats, encodeFloats } from '../src/tensor/dtypes.js';
import type { Checkpoint } from '../src/model/types.js';
import { throwsUser, tinyConfig, tinyTensors, tmpDir, writeTiny } from './helpers/checkpoint-fixtures.js';

function sameWeights(ckpt: Checkpoint, tensors: TensorToWrite[]): void {
	const byName = new Map(tensors.map((t) => [t.name, t.data]));
	const w = ckpt.weights;
	const emb = byName.get('backbone.embeddings.weight') ?? byName.get('backbone.embedding.weight');
	assert.equal(Array.from(w.embedding), Array.from(emb!));
	w.layers.forEach((l, i) => {
		const p = `backbone.layers.${i}.`;
		assert.equal(Array.from(l.inProj), Array.from(byName.get(`${p}mixer.in_proj.weight`)!));
		assert.equal(Array.from(l.convWeight), Array.from(byName.get(`${p}mixer.conv1d.weight`)!));
		assert.equal(Array.from(l.aLog), Array.from(byName.get(`${p}mixer.A_log`)!));
		assert.equal(Array.from(l.outProj), Array.from(byName.get(`${p}mixer.out_proj.weight`)!));
		assert.equal(Array.from(l.norm), Array.from(byName.get(`${p}norm.weight`)!));
	});
	assert.equal(Array.from(w.normF), Array.from(byName.get('backbone.norm_f.weight')!));
}

for (const dtype of ['F32', 'F16', 'BF16'] as const) {
	test(`HF layout, ${dtype}, tied, RMSNorm`, () => {
		const dir = tmpDir();
		const tensors = writeTiny(dir, { dtype });
		const c = loadCheckpoint(dir);
		assert.is(c.format, 'hf');
		assert.is(c.dtype, dtype);
		assert.equal(c.config, { dModel: 8, nLayer: 2, vocabSize: 256, dInner: 16, dState: 4, dConv: 4, dtRank: 1, eps: 1e-5, norm: 'rms', tied: true });
		assert.is(c.weights.lmHead, undefined);
		assert.is(c.weights.layers[0].normBias, undefined);
		assert.is(c.weights.layers[1].inProj.length, 32 * 8);
		assert.is(c.weights.layers[1].convWeight.length, 16 * 4);
		sameWeights(c, tensors);
	});
}

test('HF layout, untied head', () => {
	const dir = tmpDir();
	const tensors = writeTiny(dir, { untied: true });
	const c = loadCheckpoint(dir);
	assert.is(c.config.tied, false);
	assert.equal(Array.from(c.weights.lmHead!), Array.from(tensors.find((t) => t.name === 'lm_head.weight')!.data));
	assert.match(checkpointSummary(c), /\(HF, F32, d=8 L=2, \d+(\.\d)?K params\)$/);
});

test('mamba_ssm layout with LayerNorm biases although config says rms_norm: true (and a stray pad_id)', () => {
	const dir = tmpDir();
	const tensors = writeTiny(dir, { layout: 'ssm', norm: 'layer' });
	const c = loadCheckpoint(dir);
	assert.is(c.format, 'mamba_ssm');
	assert.is(c.config.norm, 'layer');
	assert.ok(c.weights.layers[0].normBias && c.weights.normFBias);
	assert.equal(Array.from(c.weights.normFBias!), Array.from(tensors.find((t) => t.name === 'backbone.norm_f.bias')!.data));
	sameWeights(c, tensors);
	assert.match(checkpointSummary(c), /^mambabyte-ckpt-\w+ \(mamba_ssm, F32, d=8 L=2, /);
});

test('vocab: config padded to pad_vocab_size_multiple; embedding rows beyond it are trusted', () => {
	const dir = tmpDir();
	writeTiny(dir, { layout: 'ssm', vocab: 264 });
	fs.writeFileSync(nodePath.join(dir, 'config.json'), JSON.stringify({ ...tinyConfig({ layout: 'ssm' }), vocab_size: 257 }));
	assert.is(loadCheckpoint(dir).config.vocabSize, 264); // 257 padded to a multiple of 8
	fs.writeFileSync(nodePath.join(dir, 'config.json'), JSON.stringify({ ...tinyConfig({ layout: 'ssm' }), vocab_size: 250, pad_vocab_size_multiple: 1 }));
	assert.is(loadCheckpoint(dir).config.vocabSize, 264);
	fs.writeFileSync(nodePath.join(dir, 'config.json'), JSON.stringify({ ...tinyConfig({ layout: 'ssm' }), vocab_size: 300 }));
	throwsUser(() => loadCheckpoint(dir), /backbone\.embedding\.weight has 264 rows but config vocab_size is 304/);
});

test('config fields: explicit dt rank, epsilon, training_context_length, tokenizer.json', () => {
	const dir = tmpDir();
	writeTiny(dir);
	fs.writeFileSync(nodePath.join(dir, 'config.json'), JSON.stringify({ ...tinyConfig(), time_step_rank: 1, layer_norm_epsilon: 1e-6, training_context_length: 8192 }));
	fs.writeFileSync(nodePath.join(dir, 'tokenizer.json'), '{}');
	const c = loadCheckpoint(dir);
	assert.is(c.config.eps, 1e-6);
	assert.is(c.config.contextLength, 8192);
	assert.is(c.tokenizerPath, nodePath.join(dir, 'tokenizer.json'));
	fs.writeFileSync(nodePath.join(dir, 'config.json'), JSON.stringify({ ...tinyConfig(), time_step_rank: 2 }));
	throwsUser(() => loadCheckpoint(dir), /x_proj\.weight has shape \[9, 16\] \(expected \[10, 16\]\)/);
});

test('lm_head identical to the embedding counts as tied', () => {
	const dir = tmpDir();
	const tensors = tinyTensors({ layout: 'ssm' });
	tensors.push({ ...tensors[0], name: 'lm_head.weight' });
	fs.writeFileSync(nodePath.join(dir, 'config.json'), JSON.stringify(tinyConfig({ layout: 'ssm' })));
	writeSafetensors(nodePath.join(dir, 'model.safetensors'), tensors);
	const c = loadCheckpoint(dir);
	assert.is(c.config.tied, true);
	assert.is(c.weights.lmHead, undefined);
});

test('missing folder, file instead of folder, missing config, missing weights, sharded', () => {
	throwsUser(() => loadCheckpoint('/nonexistent/ckpt'), /^\/nonexistent\/ckpt: checkpoint folder not found$/);
	const dir = tmpDir();
	fs.writeFileSync(nodePath.join(dir, 'f'), 'x');
	throwsUser(() => loadCheckpoint(nodePath.join(dir, 'f')), /not a folder/);
	throwsUser(() => loadCheckpoint(dir), /no config\.json found/);
	fs.writeFileSync(nodePath.join(dir, 'config.json'), JSON.stringify(tinyConfig()));
	throwsUser(() => loadCheckpoint(dir), /: no model\.safetensors or pytorch_model\.bin found$/);
	fs.writeFileSync(nodePath.join(dir, 'model.safetensors.index.json'), '{}');
	throwsUser(() => loadCheckpoint(dir), /sharded checkpoints are not supported/);
	fs.mkdirSync(nodePath.join(dir, 'model.safetensors'));
	throwsUser(() => loadCheckpoint(dir), /model\.safetensors/);
});

test('bad config.json: not JSON, not an object, no size field, wrong types', () => {
	const dir = tmpDir();
	writeTiny(dir);
	const cfg = nodePath.join(dir, 'config.json');
	const bad: [string, RegExp][] = [
		['{not json', /config\.json: not valid JSON/],
		['[1,2]', /expected a JSON object/],
		['{}', /neither hidden_size \(HF layout\) nor d_model/],
		[JSON.stringify({ ...tinyConfig(), hidden_size: '8' }), /hidden_size must be a positive integer \(got "8"\)/],
		[JSON.stringify({ ...tinyConfig(), num_hidden_layers: 0 }), /num_hidden_layers must be a positive integer/],
		[JSON.stringify({ ...tinyConfig(), layer_norm_epsilon: -1 }), /layer_norm_epsilon must be a positive number/],
		[JSON.stringify({ ...tinyConfig(), tie_word_embeddings: 'yes' }), /tie_word_embeddings must be true or false/],
		[JSON.stringify({ ...tinyConfig(), use_bias: true }), /use_bias = true/],
		[JSON.stringify({ ...tinyConfig({ layout: 'ssm' }), ssm_cfg: { layer: 'Mamba2' } }), /Mamba-1 only/],
		[JSON.stringify({ ...tinyConfig(), tie_word_embeddings: false }), /lm_head\.weight is missing/],
	];
	for (const [text, re] of bad) {
		fs.writeFileSync(cfg, text);
		throwsUser(() => loadCheckpoint(dir), re);
	}
});

test('absurd config sizes are refused before allocating', () => {
	const dir = tmpDir();
	writeTiny(dir);
	const cfg = nodePath.join(dir, 'config.json');
	const cases: [Record<string, unknown>, RegExp][] = [
		[{ hidden_size: 1_000_000 }, /hidden_size = 1000000 is absurd/],
		[{ num_hidden_layers: 5000 }, /num_hidden_layers = 5000 is absurd/],
		[{ vocab_size: 10_000_000 }, /vocab_size = 10000000 is absurd/],
		[{ state_size: 1e9 }, /state_size = 1000000000 is absurd/],
		[{ expand: 1e9 }, /expand gives d_inner/],
		// Each size within its limit, but together far beyond any machine's memory.
		[{ hidden_size: 65536, num_hidden_layers: 1024 }, /needs \d+\.\d GiB as float32 but this machine has/],
	];
	for (const [patch, re] of cases) {
		fs.writeFileSync(cfg, JSON.stringify({ ...tinyConfig(), ...patch }));
		const msg = throwsUser(() => loadCheckpoint(dir), re);
		assert.match(msg, /config\.json/);
	}
	fs.writeFileSync(cfg, JSON.stringify({ d_model: 70000, n_layer: 2 }));
	throwsUser(() => loadCheckpoint(dir), /d_model = 70000 is absurd/);
});

test('missing tensor, wrong shape, unsupported dtype, biased projections, inconsistent norms', () => {
	const dir = tmpDir();
	fs.writeFileSync(nodePath.join(dir, 'config.json'), JSON.stringify(tinyConfig()));
	const file = nodePath.join(dir, 'model.safetensors');
	const base = tinyTensors();
	const without = (name: string) => base.filter((t) => t.name !== name);
	writeSafetensors(file, without('backbone.layers.1.mixer.D'));
	throwsUser(() => loadCheckpoint(dir), /model\.safetensors: missing tensor backbone\.layers\.1\.mixer\.D \(expected shape \[16\]\)$/);
	writeSafetensors(file, without('backbone.embeddings.weight'));
	throwsUser(() => loadCheckpoint(dir), /missing tensor backbone\.embeddings\.weight \(HF\) or backbone\.embedding\.weight/);
	writeSafetensors(file, base.map((t) => (t.name.endsWith('0.mixer.conv1d.weight') ? { ...t, shape: [16, 4] } : t)));
	throwsUser(() => loadCheckpoint(dir), /tensor backbone\.layers\.0\.mixer\.conv1d\.weight has shape \[16, 4\] \(expected \[16, 1, 4\]\)/);
	writeSafetensors(file, [...base, { name: 'backbone.layers.0.mixer.in_proj.bias', dtype: 'F32', shape: [32], data: new Float32Array(32) }]);
	throwsUser(() => loadCheckpoint(dir), /in_proj\.bias is present \(biased projections are not supported\)/);
	writeSafetensors(file, [...base, { name: 'backbone.layers.1.norm.bias', dtype: 'F32', shape: [8], data: new Float32Array(8) }]);
	throwsUser(() => loadCheckpoint(dir), /norm biases are inconsistent/);
	writeSafetensors(file, [...base, { name: 'backbone.norm_f.bias', dtype: 'F32', shape: [8], data: new Float32Array(8) }]);
	throwsUser(() => loadCheckpoint(dir), /missing tensor backbone\.layers\.0\.norm\.bias/);
	// An extra tensor nobody asked for is ignored.
	writeSafetensors(file, [...base, { name: 'something.else', dtype: 'F32', shape: [2], data: new Float32Array(2) }]);
	assert.is(loadCheckpoint(dir).config.nLayer, 2);
});

test('NaN and Inf weights are named with the index of the first bad value', () => {
	for (const [bad, shown] of [[NaN, 'NaN'], [Infinity, 'Infinity'], [-Infinity, '-Infinity']] as const) {
		for (const dtype of ['F32', 'F16', 'BF16'] as const) {
			const dir = tmpDir();
			fs.writeFileSync(nodePath.join(dir, 'config.json'), JSON.stringify(tinyConfig()));
			const tensors = tinyTensors({ dtype });
			tensors.find((t) => t.name === 'backbone.layers.1.mixer.A_log')!.data[37] = bad;
			writeSafetensors(nodePath.join(dir, 'model.safetensors'), tensors);
			throwsUser(() => loadCheckpoint(dir), new RegExp(`tensor backbone\\.layers\\.1\\.mixer\\.A_log holds ${shown} at index 37 \\(weights must be finite\\)`));
		}
	}
});

test('countParameters matches the tensors and the MambaByte-972M shape', () => {
	const c = loadCheckpoint(writeTinyDir({ untied: true }));
	const tensors = tinyTensors({ untied: true });
	assert.is(countParameters(c.config), tensors.reduce((a, t) => a + t.data.length, 0));
	// d=1792, 48 layers, LayerNorm with bias, tied byte embedding
	const n = countParameters({ dModel: 1792, nLayer: 48, vocabSize: 256, dInner: 3584, dState: 16, dConv: 4, dtRank: 112, norm: 'layer', tied: true });
	assert.ok(Math.abs(n - 973_475_328) / 973_475_328 < 1e-4, String(n));
});

function writeTinyDir(o: Parameters<typeof writeTiny>[1]): string {
	const dir = tmpDir();
	writeTiny(dir, o);
	return dir;
}

test('float16 / bfloat16 encoding rounds to nearest even', () => {
	assert.is(floatToHalf(1), 0x3c00);
	assert.is(floatToHalf(-2), 0xc000);
	assert.is(floatToHalf(65504), 0x7bff);
	assert.is(floatToHalf(65520), 0x7c00); // rounds to Inf
	assert.is(floatToHalf(2 ** -24), 0x0001); // smallest subnormal
	assert.is(floatToHalf(2 ** -25), 0x0000); // tie to even: zero
	assert.is(floatToHalf(1 + 2 ** -11), 0x3c00); // tie to even: down
	assert.is(floatToHalf(1 + 3 * 2 ** -11), 0x3c02); // tie to even: up
	assert.ok(Number.isNaN(decodeFloats(encodeFloats(new Float32Array([NaN]), 'F16'), 'F16')[0]));
	assert.is(floatToBFloat16(1), 0x3f80);
	assert.is(floatToBFloat16(1 + 2 ** -8), 0x3f80); // tie to even
	assert.is(floatToBFloat16(1 + 3 * 2 ** -8), 0x3f82);
	const vals = new Float32Array([0, -0, 1.5, -3.25, 1e-3, 6e-5, 1e4]);
	const back = decodeFloats(encodeFloats(vals, 'F16'), 'F16');
	vals.forEach((v, i) => assert.ok(Math.abs(back[i] - v) <= Math.abs(v) * 2 ** -11 + 2 ** -25, `${v} -> ${back[i]}`));
});

test('convert: mamba_ssm LayerNorm -> HF safetensors in f32/f16/bf16 loads back with the same weights', () => {
	const src = tmpDir();
	writeTiny(src, { layout: 'ssm', norm: 'layer', untied: true });
	fs.writeFileSync(nodePath.join(src, 'config.json'), JSON.stringify({ ...tinyConfig({ layout: 'ssm', untied: true }), training_context_length: 1024 }));
	const orig = loadCheckpoint(src);
	for (const [dt, DT, tol] of [['f32', 'F32', 0], ['f16', 'F16', 2 ** -11], ['bf16', 'BF16', 2 ** -8]] as const) {
		const out = nodePath.join(tmpDir(), 'converted');
		convertCheckpoint(src, out, dt);
		const cfg = JSON.parse(fs.readFileSync(nodePath.join(out, 'config.json'), 'utf8'));
		assert.is(cfg.hidden_size, 8);
		assert.is(cfg.training_context_length, 1024);
		assert.is(cfg.tie_word_embeddings, false);
		const c = loadCheckpoint(out);
		assert.is(c.format, 'hf');
		assert.is(c.dtype, DT);
		assert.equal({ ...c.config }, { ...orig.config });
		const pairs: [Float32Array, Float32Array][] = [
			[c.weights.embedding, orig.weights.embedding], [c.weights.lmHead!, orig.weights.lmHead!],
			[c.weights.normFBias!, orig.weights.normFBias!], [c.weights.layers[1].xProj, orig.weights.layers[1].xProj],
			[c.weights.layers[0].normBias!, orig.weights.layers[0].normBias!],
		];
		for (const [a, b] of pairs) b.forEach((v, i) => assert.ok(Math.abs(a[i] - v) <= Math.abs(v) * tol, `${dt}: ${v} vs ${a[i]}`));
	}
	throwsUser(() => convertCheckpoint(src, src, 'f16'), /output folder other than the input/);
});

test('convert to f16 refuses values beyond its range', () => {
	const src = tmpDir();
	fs.writeFileSync(nodePath.join(src, 'config.json'), JSON.stringify(tinyConfig()));
	const tensors = tinyTensors();
	tensors.find((t) => t.name === 'backbone.layers.0.mixer.D')!.data[3] = 1e6;
	writeSafetensors(nodePath.join(src, 'model.safetensors'), tensors);
	throwsUser(() => convertCheckpoint(src, nodePath.join(tmpDir(), 'o'), 'f16'), /backbone\.layers\.0\.mixer\.D holds 1000000 at index 3, beyond float16's range/);
	convertCheckpoint(src, nodePath.join(tmpDir(), 'o'), 'bf16'); // bf16 has the range
});

test.run();
