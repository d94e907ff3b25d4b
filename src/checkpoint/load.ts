// loadCheckpoint: config.json + model.safetensors or pytorch_model.bin -> Checkpoint (float32 weights), or a
// llama.cpp .gguf file -> Checkpoint (stored matrices kept as they are; gguf-model.ts).
// Order matters: config limits, then every tensor's presence/shape/dtype, then memory — all before reading data;
// then one tensor at a time is read, converted and checked for NaN/Inf.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { UserError } from '../errors.js';
import type { Checkpoint, LayerWeights, MambaConfig, MambaWeights, Weight } from '../model/types.js';
import { checkMemory, countParameters, LIMITS, readConfig } from './config.js';
import { firstNonFinite, isFloatDType, type FloatDType } from '../tensor/dtypes.js';
import { loadGguf } from './gguf-model.js';
import { fmtShape, type TensorSource } from './io.js';
import { openSafetensors } from './safetensors.js';
import { openTorchBin } from './torch.js';

export { countParameters } from './config.js';

const MIXER = ['in_proj.weight', 'conv1d.weight', 'conv1d.bias', 'x_proj.weight', 'dt_proj.weight', 'dt_proj.bias', 'A_log', 'D', 'out_proj.weight'] as const;

/** A model from a checkpoint folder or a llama.cpp .gguf file (whose matrices stay in their stored blocks). */
const WEIGHT_FILES = ['model.safetensors', 'pytorch_model.bin'];

export function loadModel(path: string): Checkpoint<Weight> {
	let st: fs.Stats | undefined;
	try {
		st = fs.statSync(path);
	} catch {
		// loadCheckpoint names the missing folder
	}
	if (st?.isFile() && /\.gguf$/i.test(path)) {
		if (os.endianness() !== 'LE') throw new UserError('checkpoints can only be loaded on little-endian machines');
		return loadGguf(path);
	}
	// A folder holding model.gguf (and no other weights) is that file, with the folder's tokenizer.json if any:
	// how the shipped checkpoints are stored (8-bit weights fit the size budget; the drafter needs its tokenizer).
	const gguf = nodePath.join(path, 'model.gguf');
	if (st?.isDirectory() && fs.existsSync(gguf) && !WEIGHT_FILES.some((f) => fs.existsSync(nodePath.join(path, f)))) {
		if (os.endianness() !== 'LE') throw new UserError('checkpoints can only be loaded on little-endian machines');
		const ckpt = loadGguf(gguf);
		const tokenizer = nodePath.join(path, 'tokenizer.json');
		return {
			...ckpt, dir: path, name: nodePath.basename(nodePath.resolve(path)),
			...(fs.existsSync(tokenizer) ? { tokenizerPath: tokenizer } : {}),
		};
	}
	return loadCheckpoint(path);
}

/** A checkpoint folder (float32 weights). */
export function loadCheckpoint(dir: string): Checkpoint {
	let st: fs.Stats;
	try {
		st = fs.statSync(dir);
	} catch {
		throw new UserError(`${dir}: checkpoint folder not found`);
	}
	if (os.endianness() !== 'LE') throw new UserError('checkpoints can only be loaded on little-endian machines');
	if (!st.isDirectory()) throw new UserError(`${dir}: not a folder or a .gguf file (a checkpoint is a folder with config.json and model.safetensors or pytorch_model.bin, or a llama.cpp .gguf file)`);
	const configPath = nodePath.join(dir, 'config.json');
	if (!fs.existsSync(configPath)) throw new UserError(`${dir}: no config.json found`);
	const draft = readConfig(configPath);

	const source = openWeights(dir);
	try {
		const file = source.path;
		const has = (name: string) => source.entries.has(name);
		const shapeOf = (name: string) => source.entries.get(name)?.shape;

		const embName = has('backbone.embeddings.weight') ? 'backbone.embeddings.weight' : 'backbone.embedding.weight';
		const emb = shapeOf(embName);
		if (!emb) throw new UserError(`${file}: missing tensor backbone.embeddings.weight (HF) or backbone.embedding.weight (mamba_ssm)`);
		// The embedding may be padded beyond config vocab_size (mamba_ssm pads to a multiple): trust its rows.
		if (emb.length !== 2 || emb[1] !== draft.dModel || emb[0] < 1) {
			throw new UserError(`${file}: tensor ${embName} has shape ${fmtShape(emb)} (expected [vocab, ${draft.dModel}])`);
		}
		if (draft.vocabSize !== undefined && emb[0] < draft.vocabSize) {
			throw new UserError(`${file}: tensor ${embName} has ${emb[0]} rows but config vocab_size is ${draft.vocabSize}`);
		}
		if (emb[0] > LIMITS.vocabSize) throw new UserError(`${file}: tensor ${embName} has ${emb[0]} rows (absurd vocabulary; at most ${LIMITS.vocabSize})`);

		// Norm kind from the tensors, not from config `rms_norm` (see config.ts): all norms must agree.
		const norm: 'rms' | 'layer' = has('backbone.norm_f.bias') ? 'layer' : 'rms';
		const config: MambaConfig = {
			dModel: draft.dModel, nLayer: draft.nLayer, vocabSize: emb[0], dInner: draft.dInner, dState: draft.dState,
			dConv: draft.dConv, dtRank: draft.dtRank, eps: draft.eps, norm, tied: !has('lm_head.weight'),
			...(draft.contextLength !== undefined ? { contextLength: draft.contextLength } : {}),
		};
		if (config.tied && !draft.tied) throw new UserError(`${file}: config says the head is not tied to the embedding but lm_head.weight is missing`);

		const expected = expectedTensors(config, embName, draft.convBias);
		for (const [name, shape] of expected) {
			const e = source.entries.get(name);
			if (!e) throw new UserError(`${file}: missing tensor ${name} (expected shape ${fmtShape(shape)})`);
			const same = e.shape.length === shape.length && e.shape.every((s, i) => s === shape[i]);
			if (!same) throw new UserError(`${file}: tensor ${name} has shape ${fmtShape(e.shape)} (expected ${fmtShape(shape)})`);
			if (!isFloatDType(e.dtype)) throw new UserError(`${file}: tensor ${name} has dtype ${e.dtype} (expected F32, F16 or BF16)`);
		}
		for (let i = 0; i < config.nLayer; i++) {
			if (has(`backbone.layers.${i}.norm.bias`) !== (norm === 'layer')) {
				throw new UserError(`${file}: norm biases are inconsistent (backbone.norm_f.bias ${norm === 'layer' ? 'present' : 'absent'}, backbone.layers.${i}.norm.bias ${norm === 'layer' ? 'absent' : 'present'})`);
			}
			for (const p of ['in_proj.bias', 'out_proj.bias']) {
				if (has(`backbone.layers.${i}.mixer.${p}`)) throw new UserError(`${file}: tensor backbone.layers.${i}.mixer.${p} is present (biased projections are not supported)`);
			}
		}
		checkMemory(config, file);

		const read = (name: string): Float32Array => {
			const data = source.read(name);
			const bad = firstNonFinite(data);
			if (bad >= 0) throw new UserError(`${file}: tensor ${name} holds ${data[bad]} at index ${bad} (weights must be finite)`);
			return data;
		};
		const opt = (name: string): Float32Array | undefined => (has(name) ? read(name) : undefined);
		const layers: LayerWeights[] = [];
		for (let i = 0; i < config.nLayer; i++) {
			const p = `backbone.layers.${i}.`;
			const m = `${p}mixer.`;
			const normBias = opt(`${p}norm.bias`);
			layers.push({
				norm: read(`${p}norm.weight`),
				...(normBias ? { normBias } : {}),
				inProj: read(`${m}in_proj.weight`),
				convWeight: read(`${m}conv1d.weight`), // (dInner, 1, k) is laid out exactly as (dInner, k)
				convBias: draft.convBias ? read(`${m}conv1d.bias`) : new Float32Array(config.dInner),
				xProj: read(`${m}x_proj.weight`),
				dtProj: read(`${m}dt_proj.weight`),
				dtBias: read(`${m}dt_proj.bias`),
				aLog: read(`${m}A_log`),
				D: read(`${m}D`),
				outProj: read(`${m}out_proj.weight`),
			});
		}
		const weights: MambaWeights = { embedding: read(embName), layers, normF: read('backbone.norm_f.weight') };
		const normFBias = opt('backbone.norm_f.bias');
		if (normFBias) weights.normFBias = normFBias;
		if (!config.tied) {
			const head = read('lm_head.weight');
			// torch.save of a tied mamba_ssm model stores lm_head.weight too: identical values mean tied.
			if (sameValues(head, weights.embedding as Float32Array)) config.tied = true;
			else weights.lmHead = head;
		}
		const dtype = source.entries.get(embName)?.dtype as FloatDType;
		const tokenizer = nodePath.join(dir, 'tokenizer.json');
		return {
			dir,
			name: nodePath.basename(nodePath.resolve(dir)),
			format: draft.format,
			dtype,
			config,
			weights,
			...(fs.existsSync(tokenizer) ? { tokenizerPath: tokenizer } : {}),
		};
	} finally {
		source.close();
	}
}

function openWeights(dir: string): TensorSource {
	const st = nodePath.join(dir, 'model.safetensors');
	const bin = nodePath.join(dir, 'pytorch_model.bin');
	if (fs.existsSync(st)) return openSafetensors(st);
	if (fs.existsSync(bin)) return openTorchBin(bin);
	if (fs.existsSync(nodePath.join(dir, 'model.safetensors.index.json')) || fs.existsSync(nodePath.join(dir, 'pytorch_model.bin.index.json'))) {
		throw new UserError(`${dir}: sharded checkpoints are not supported (convert to a single model.safetensors first)`);
	}
	throw new UserError(`${dir}: no model.safetensors or pytorch_model.bin found`);
}

/** Every tensor the model needs, with its shape (lm_head and norm biases only when the config says so). */
export function expectedTensors(c: MambaConfig, embName: string, convBias = true): Map<string, number[]> {
	const { dModel: d, dInner: e, dState: n, dConv: k, dtRank: r, vocabSize: v } = c;
	const shapes: Record<(typeof MIXER)[number], number[]> = {
		'in_proj.weight': [2 * e, d], 'conv1d.weight': [e, 1, k], 'conv1d.bias': [e], 'x_proj.weight': [r + 2 * n, e],
		'dt_proj.weight': [e, r], 'dt_proj.bias': [e], A_log: [e, n], D: [e], 'out_proj.weight': [d, e],
	};
	const out = new Map<string, number[]>([[embName, [v, d]]]);
	for (let i = 0; i < c.nLayer; i++) {
		out.set(`backbone.layers.${i}.norm.weight`, [d]);
		if (c.norm === 'layer') out.set(`backbone.layers.${i}.norm.bias`, [d]);
		for (const t of MIXER) if (t !== 'conv1d.bias' || convBias) out.set(`backbone.layers.${i}.mixer.${t}`, shapes[t]);
	}
	out.set('backbone.norm_f.weight', [d]);
	if (c.norm === 'layer') out.set('backbone.norm_f.bias', [d]);
	if (!c.tied) out.set('lm_head.weight', [v, d]);
	return out;
}

function sameValues(a: Float32Array, b: Float32Array): boolean {
	if (a.length !== b.length) return false;
	for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
	return true;
}

/** Name, format, stored type, shape and size, e.g. "MambaByte_PG19_972M (mamba_ssm, F32, d=1792 L=48, 973.5M params)". */
export function checkpointSummary(ckpt: Checkpoint<Weight>): string {
	const c = ckpt.config;
	const format = ckpt.format === 'hf' ? 'HF' : ckpt.format === 'gguf' ? 'GGUF' : 'mamba_ssm';
	return `${ckpt.name} (${format}, ${ckpt.dtype}, d=${c.dModel} L=${c.nLayer}, ${formatCount(countParameters(c))} params)`;
}

export function formatCount(n: number): string {
	if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
	if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
	if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
	return String(n);
}
