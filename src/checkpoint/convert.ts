// convertCheckpoint: any loadable checkpoint (folder or .gguf) -> the HF MambaForCausalLM layout (config.json +
// model.safetensors), or -> one llama.cpp GGUF file (gguf-model.ts) for the quantized types or an OUT ending in .gguf.
// LayerNorm checkpoints keep their `*.norm.bias` tensors: transformers' MambaRMSNorm would ignore them, but this
// runtime reads them (docs/model.md), so the converted folder computes exactly what the original did.
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { UserError } from '../errors.js';
import type { Checkpoint, Weight } from '../model/types.js';
import { denseWeight } from '../model/weights.js';
import type { FloatDType } from '../tensor/dtypes.js';
import { fsError } from './io.js';
import { writeCheckpointGguf, type TypeChoice } from './gguf-model.js';
import { loadModel } from './load.js';
import type { QuantizeType } from '../tensor/quantize.js';
import { safetensorsChunks, type TensorToWrite } from './safetensors.js';
import { AtomicFile, realPathOf } from '../util/atomic-write.js';
import { parseJsonQuietly, READ_CAPS, readBoundedFile } from '../util/read-bounded.js';
import { checkTokenizerJson } from '../engine/tokenizer-json.js';

const DTYPES: Record<'f32' | 'f16' | 'bf16', FloatDType> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };
const TORCH_DTYPE: Record<FloatDType, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };
const F16_MAX = 65504;

export const CONVERT_DTYPES = ['f16', 'bf16', 'f32', 'q8_0', 'q4_0', 'q4_k', 'q6_k'] as const;
export type ConvertDType = (typeof CONVERT_DTYPES)[number];

/** Whether convert writes GGUF: always for the quantized types, and for any type when OUT ends in .gguf. */
export const writesGguf = (out: string, dtype: ConvertDType) => /\.gguf$/i.test(out) || !(dtype in DTYPES);

export function convertCheckpoint(inDir: string, outDir: string, dtype: ConvertDType): { ckpt: Checkpoint<Weight>; choices: TypeChoice[] } {
	if (!CONVERT_DTYPES.includes(dtype)) throw new UserError(`convert: unknown dtype ${dtype} (expected ${CONVERT_DTYPES.join(', ')})`);
	// Real paths, so a symlink to IN (or a path through one) is recognised as IN and never written over.
	if (realPathOf(inDir) === realPathOf(outDir)) throw new UserError(`${outDir}: choose an output folder other than the input`);
	const ckpt = loadModel(inDir);
	if (writesGguf(outDir, dtype)) {
		if (!/\.gguf$/i.test(outDir)) throw new UserError(`${outDir}: --dtype ${dtype} writes a single GGUF file; name it *.gguf`);
		if (dtype === 'f16') for (const t of hfTensors(ckpt, 'F16')) checkHalfRange(t, ckpt.dir);
		return { ckpt, choices: writeCheckpointGguf(ckpt, outDir, dtype as QuantizeType) };
	}
	const dt = DTYPES[dtype as keyof typeof DTYPES];
	const tensors = hfTensors(ckpt, dt);
	if (dt === 'F16') for (const t of tensors) checkHalfRange(t, ckpt.dir);
	// The tokenizer is copied only as a checked tokenizer.json read through the bounded reader: a symlink planted
	// there is read like any file, and unless its target is a tokenizer it is refused (its bytes never copied).
	const tokenizer = ckpt.tokenizerPath ? readTokenizerBytes(ckpt.tokenizerPath) : null;
	try {
		fs.mkdirSync(outDir, { recursive: true });
	} catch (err) {
		throw fsError(outDir, err);
	}
	// Every file is written in full under a unique temporary name first; then the renames, config.json last, so a
	// failure at any point leaves OUT as it was (or, past the first rename, still loadable by its old config).
	const files: AtomicFile[] = [];
	try {
		const weights = AtomicFile.create(nodePath.join(outDir, 'model.safetensors'));
		files.push(weights);
		for (const chunk of safetensorsChunks(tensors, { format: 'pt', source: `mambabyte convert from ${ckpt.format}` })) weights.write(chunk);
		if (tokenizer) {
			const t = AtomicFile.create(nodePath.join(outDir, 'tokenizer.json'));
			files.push(t);
			t.write(tokenizer);
		}
		const config = AtomicFile.create(nodePath.join(outDir, 'config.json'));
		files.push(config);
		config.write(new TextEncoder().encode(JSON.stringify(hfConfig(ckpt, dt), null, 2) + '\n'));
		for (const f of files) f.finish();
		for (const f of files) f.commit();
	} catch (err) {
		for (const f of files) f.abort();
		throw err;
	}
	return { ckpt, choices: [] };
}

function readTokenizerBytes(file: string): Buffer {
	const bytes = readBoundedFile(file, 'tokenizer.json', READ_CAPS.tokenizer);
	checkTokenizerJson(parseJsonQuietly(bytes.toString('utf8'), file), file);
	return bytes;
}

/** config.json with transformers' MambaConfig field names (+ training_context_length when known). */
export function hfConfig(ckpt: Checkpoint<Weight>, dtype: FloatDType): Record<string, unknown> {
	const c = ckpt.config;
	return {
		architectures: ['MambaForCausalLM'],
		model_type: 'mamba',
		hidden_size: c.dModel,
		num_hidden_layers: c.nLayer,
		vocab_size: c.vocabSize,
		state_size: c.dState,
		expand: c.dInner / c.dModel,
		intermediate_size: c.dInner,
		conv_kernel: c.dConv,
		time_step_rank: c.dtRank,
		layer_norm_epsilon: c.eps,
		tie_word_embeddings: c.tied,
		use_bias: false,
		use_conv_bias: true,
		torch_dtype: TORCH_DTYPE[dtype],
		...(c.contextLength !== undefined ? { training_context_length: c.contextLength } : {}),
	};
}

function hfTensors(ckpt: Checkpoint<Weight>, dtype: FloatDType): TensorToWrite[] {
	const { config: c, weights: w } = ckpt;
	const { dModel: d, dInner: e, dState: n, dConv: k, dtRank: r, vocabSize: v } = c;
	const out: TensorToWrite[] = [];
	const add = (name: string, shape: number[], data: Weight) => out.push({ name, dtype, shape, data: denseWeight(data) });
	add('backbone.embeddings.weight', [v, d], w.embedding);
	w.layers.forEach((l, i) => {
		const p = `backbone.layers.${i}.`;
		add(`${p}norm.weight`, [d], l.norm);
		if (l.normBias) add(`${p}norm.bias`, [d], l.normBias);
		add(`${p}mixer.in_proj.weight`, [2 * e, d], l.inProj);
		add(`${p}mixer.conv1d.weight`, [e, 1, k], l.convWeight);
		add(`${p}mixer.conv1d.bias`, [e], l.convBias);
		add(`${p}mixer.x_proj.weight`, [r + 2 * n, e], l.xProj);
		add(`${p}mixer.dt_proj.weight`, [e, r], l.dtProj);
		add(`${p}mixer.dt_proj.bias`, [e], l.dtBias);
		add(`${p}mixer.A_log`, [e, n], l.aLog); // from a GGUF file: log(−A) in float32 (see gguf-model.ts)
		add(`${p}mixer.D`, [e], l.D);
		add(`${p}mixer.out_proj.weight`, [d, e], l.outProj);
	});
	add('backbone.norm_f.weight', [d], w.normF);
	if (w.normFBias) add('backbone.norm_f.bias', [d], w.normFBias);
	if (w.lmHead) add('lm_head.weight', [v, d], w.lmHead);
	return out;
}

function checkHalfRange(t: TensorToWrite, dir: string): void {
	for (let i = 0; i < t.data.length; i++) {
		// 65520 and above round to Inf in float16.
		if (Math.abs(t.data[i]) >= F16_MAX + 16) {
			throw new UserError(`${dir}: tensor ${t.name} holds ${t.data[i]} at index ${i}, beyond float16's range (max ${F16_MAX}); use --dtype bf16 or f32`);
		}
	}
}
