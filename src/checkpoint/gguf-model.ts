// A llama.cpp `mamba` GGUF file <-> Checkpoint. Reading: metadata -> MambaConfig, every tensor's presence, type and
// shape checked before any tensor data is read; matrices keep their stored blocks (QMatrix; float32 ones become
// Float32Array), vectors, the conv weight and A are dequantized to float32. Writing: the same layout, as
// llama.cpp's convert_hf_to_gguf.py + llama-quantize produce it.
import * as nodePath from 'node:path';
import { UserError } from '../errors.js';
import { isQMatrix, type QMatrix, type QType } from '../tensor/qmatrix.js';
import { dequantize, firstNonFiniteQ } from '../tensor/dequant.js';
import { quantize, type QuantizeType } from '../tensor/quantize.js';
import type { Checkpoint, LayerWeights, MambaConfig, MambaWeights, Weight } from '../model/types.js';
import { layerA } from '../model/weights.js';
import { checkMemory, LIMITS } from './config.js';
import { firstNonFinite } from '../tensor/dtypes.js';
import { GGML_TYPE_ID, GT, openGguf, typeName, type GgufFile, type GgufKV, type GgufTensor } from './gguf.js';
import { fmtShape, show } from './io.js';
import { writeGguf, type GgufTensorToWrite, type GgufKVToWrite } from './gguf-write.js';

const ARCH = 'mamba';
/** Per-layer tensors (after `blk.N.`) and their GGUF dims (innermost first) for a config. */
function layerDims(c: MambaConfig): [string, number[]][] {
	const { dModel: d, dInner: e, dState: n, dConv: k, dtRank: r } = c;
	return [
		['attn_norm.weight', [d]], ['ssm_in.weight', [d, 2 * e]], ['ssm_conv1d.weight', [k, e]], ['ssm_conv1d.bias', [e]],
		['ssm_x.weight', [e, r + 2 * n]], ['ssm_dt.weight', [r, e]], ['ssm_dt.bias', [e]], ['ssm_a', [n, e]], ['ssm_d', [e]],
		['ssm_out.weight', [e, d]],
	];
}

export function loadGguf(path: string): Checkpoint<Weight> {
	const g = openGguf(path);
	try {
		const config = ggufConfig(g);
		const { tensors } = g;
		const expected = new Map<string, number[]>([['token_embd.weight', [config.dModel, config.vocabSize]], ['output_norm.weight', [config.dModel]]]);
		if (!config.tied) expected.set('output.weight', [config.dModel, config.vocabSize]);
		for (let i = 0; i < config.nLayer; i++) for (const [t, dims] of layerDims(config)) expected.set(`blk.${i}.${t}`, dims);
		for (const [name, dims] of expected) {
			const t = tensors.get(name);
			if (!t) throw new UserError(`${path}: missing tensor ${name} (expected GGUF shape ${fmtShape(dims)})`);
			if (t.dims.length !== dims.length || t.dims.some((v, i) => v !== dims[i])) {
				throw new UserError(`${path}: tensor ${name} has GGUF shape ${fmtShape(t.dims)} (expected ${fmtShape(dims)}, innermost first)`);
			}
			if (!t.qtype) throw new UserError(`${path}: tensor ${name} has type ${typeName(t.typeId)}, which is not supported (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)`);
		}
		for (const name of tensors.keys()) {
			if (!expected.has(name)) throw new UserError(`${path}: unexpected tensor ${show(name)} (not part of a ${config.nLayer}-layer mamba model)`);
		}
		checkMemory(config, path);

		const matrix = (name: string): Weight => {
			const t = tensors.get(name) as GgufTensor;
			const q: QMatrix = { qtype: t.qtype as QType, rows: t.dims[1], cols: t.dims[0], data: g.readBytes(t) };
			const bad = firstNonFiniteQ(q);
			if (bad >= 0) throw new UserError(`${path}: tensor ${name} holds a non-finite value at index ${bad} (weights must be finite)`);
			return q.qtype === 'f32' ? dequantize(q) : q;
		};
		const vector = (name: string): Float32Array => {
			const t = tensors.get(name) as GgufTensor;
			const v = dequantize({ qtype: t.qtype as QType, rows: t.dims.slice(1).reduce((a, b) => a * b, 1), cols: t.dims[0], data: g.readBytes(t) });
			const bad = firstNonFinite(v);
			if (bad >= 0) throw new UserError(`${path}: tensor ${name} holds ${v[bad]} at index ${bad} (weights must be finite)`);
			return v;
		};
		const layers: LayerWeights<Weight>[] = [];
		for (let i = 0; i < config.nLayer; i++) {
			const p = `blk.${i}.`;
			const A = vector(`${p}ssm_a`);
			const bad = A.findIndex((v) => !(v < 0));
			if (bad >= 0) throw new UserError(`${path}: tensor ${p}ssm_a holds ${A[bad]} at index ${bad} (A = −exp(A_log) must be negative)`);
			layers.push({
				norm: vector(`${p}attn_norm.weight`),
				inProj: matrix(`${p}ssm_in.weight`),
				convWeight: vector(`${p}ssm_conv1d.weight`),
				convBias: vector(`${p}ssm_conv1d.bias`),
				xProj: matrix(`${p}ssm_x.weight`),
				dtProj: matrix(`${p}ssm_dt.weight`),
				dtBias: vector(`${p}ssm_dt.bias`),
				// The model uses A as stored (bit-faithful to llama.cpp); A_log only serves writers of HF files.
				aLog: A.map((v) => Math.log(-v)),
				A,
				D: vector(`${p}ssm_d`),
				outProj: matrix(`${p}ssm_out.weight`),
			});
		}
		const weights: MambaWeights<Weight> = { embedding: matrix('token_embd.weight'), layers, normF: vector('output_norm.weight') };
		if (!config.tied) weights.lmHead = matrix('output.weight');
		const main = tensors.get('blk.0.ssm_in.weight')?.qtype ?? 'f32';
		return {
			dir: path,
			name: nodePath.basename(path).replace(/\.gguf$/i, ''),
			format: 'gguf',
			dtype: main.toUpperCase() as Checkpoint['dtype'],
			config,
			weights,
		};
	} finally {
		g.close();
	}
}

function ggufConfig(g: GgufFile): MambaConfig {
	const { path, metadata: m } = g;
	const arch = m.get('general.architecture');
	if (!arch) throw new UserError(`${path}: missing metadata general.architecture (expected "mamba")`);
	if (arch.type !== GT.STRING || arch.value !== ARCH) {
		throw new UserError(`${path}: general.architecture is ${JSON.stringify(arch.value).slice(0, 40)}; only "mamba" (Mamba-1) models are supported`);
	}
	const int = (key: string, max: number, optional = false): number | undefined => {
		const kv = m.get(key);
		if (!kv) {
			if (optional) return undefined;
			throw new UserError(`${path}: missing metadata ${key}`);
		}
		const v = integer(kv);
		if (v === undefined || v < 1) throw new UserError(`${path}: metadata ${key} must be a positive integer (got ${describe(kv)})`);
		if (v > max) throw new UserError(`${path}: metadata ${key} = ${v} is absurd (at most ${max}); refusing before allocating`);
		return v;
	};
	const dModel = int('mamba.embedding_length', LIMITS.dModel) as number;
	const nLayer = int('mamba.block_count', LIMITS.nLayer) as number;
	const dConv = int('mamba.ssm.conv_kernel', LIMITS.dConv) as number;
	const dInner = int('mamba.ssm.inner_size', LIMITS.dInner) as number;
	const dState = int('mamba.ssm.state_size', LIMITS.dState) as number;
	const dtRank = int('mamba.ssm.time_step_rank', dInner) as number;
	const contextLength = int('mamba.context_length', 1 << 30, true);
	const epsKV = m.get('mamba.attention.layer_norm_rms_epsilon');
	if (!epsKV) throw new UserError(`${path}: missing metadata mamba.attention.layer_norm_rms_epsilon`);
	const eps = epsKV.type === GT.F32 || epsKV.type === GT.F64 ? (epsKV.value as number) : NaN;
	if (!(eps > 0 && eps < 1)) throw new UserError(`${path}: metadata mamba.attention.layer_norm_rms_epsilon must be a float in (0, 1) (got ${describe(epsKV)})`);
	const bcRms = m.get('mamba.ssm.dt_b_c_rms');
	if (bcRms && bcRms.value !== false) {
		throw new UserError(`${path}: mamba.ssm.dt_b_c_rms is set (a Falcon-Mamba model, with RMS norms on dt, B and C); not supported`);
	}
	const emb = g.tensors.get('token_embd.weight');
	if (!emb) throw new UserError(`${path}: missing tensor token_embd.weight`);
	if (emb.dims.length !== 2 || emb.dims[0] !== dModel) {
		throw new UserError(`${path}: tensor token_embd.weight has GGUF shape ${fmtShape(emb.dims)} (expected [${dModel}, vocab])`);
	}
	const vocabSize = emb.dims[1];
	if (vocabSize > LIMITS.vocabSize) throw new UserError(`${path}: tensor token_embd.weight has ${vocabSize} rows (absurd vocabulary; at most ${LIMITS.vocabSize})`);
	return {
		dModel, nLayer, vocabSize, dInner, dState, dConv, dtRank, eps: Math.fround(eps), norm: 'rms', tied: !g.tensors.has('output.weight'),
		...(contextLength !== undefined ? { contextLength } : {}),
	};
}

function integer(kv: GgufKV): number | undefined {
	if (typeof kv.value === 'bigint') return kv.value <= BigInt(Number.MAX_SAFE_INTEGER) && kv.value >= 0n ? Number(kv.value) : undefined;
	if (typeof kv.value === 'number' && kv.type !== GT.F32 && kv.type !== GT.F64) return kv.value;
	return undefined;
}

function describe(kv: GgufKV): string {
	if (Array.isArray(kv.value)) return 'an array';
	return typeof kv.value === 'bigint' ? kv.value.toString() : JSON.stringify(kv.value).slice(0, 40);
}

// ---- writing ----

/** What `convert` did with one tensor whose type differs from the one asked for. */
export interface TypeChoice { name: string; qtype: QType; why: string }

/** The stored type llama-quantize gives a matrix of `cols` columns: its fallback when cols is not whole blocks. */
function matrixType(name: string, cols: number, want: QuantizeType, tiedEmbedding: boolean, choices: TypeChoice[]): QuantizeType {
	const blocks = (t: QuantizeType) => cols % (t === 'q4_k' || t === 'q6_k' ? 256 : t === 'f16' || t === 'bf16' || t === 'f32' ? 1 : 32) === 0;
	let t = want;
	// llama.cpp stores the output matrix (the embedding when tied) as Q6_K for every 4- to 6-bit type.
	if ((name === 'output.weight' || (tiedEmbedding && name === 'token_embd.weight')) && (want === 'q4_0' || want === 'q4_k' || want === 'q6_k')) {
		t = blocks('q6_k') ? 'q6_k' : 'q8_0';
		if (t !== want) choices.push({ name, qtype: t, why: 'the output matrix, as llama-quantize stores it' });
	}
	if (!blocks(t)) {
		const fallback: QuantizeType = t === 'q4_k' ? 'q5_0' : t === 'q6_k' ? 'q8_0' : 'f16';
		const f2 = blocks(fallback) ? fallback : 'f16';
		choices.push({ name, qtype: f2, why: `${cols} columns are not whole ${t} blocks (llama-quantize's fallback)` });
		t = f2;
	}
	return t;
}

/** GGUF tensors + metadata for a checkpoint with matrices stored as `dtype` (1-D tensors, conv weight and A stay F32). */
export function ggufTensors(ckpt: Checkpoint<Weight>, dtype: QuantizeType): { tensors: GgufTensorToWrite[]; metadata: GgufKVToWrite[]; choices: TypeChoice[] } {
	const { config: c, weights: w } = ckpt;
	if (c.norm !== 'rms') throw new UserError(`${ckpt.dir}: LayerNorm models cannot be written as GGUF (llama.cpp's mamba uses RMSNorm)`);
	const choices: TypeChoice[] = [];
	const tensors: GgufTensorToWrite[] = [];
	const f32 = (name: string, data: Float32Array, dims: number[]) => tensors.push({ name, dims, typeId: GGML_TYPE_ID.f32, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
	const mat = (name: string, wt: Weight, rows: number, cols: number) => {
		const t = matrixType(name, cols, dtype, c.tied, choices);
		// A matrix already stored in the wanted type is copied as it is (no requantization).
		const q = isQMatrix(wt) && wt.qtype === t ? wt : quantize(isQMatrix(wt) ? dequantize(wt) : wt, rows, cols, t);
		tensors.push({ name, dims: [cols, rows], typeId: GGML_TYPE_ID[t], data: q.data });
	};
	const { dModel: d, dInner: e, dState: n, dConv: k, dtRank: r, vocabSize: v } = c;
	mat('token_embd.weight', w.embedding, v, d);
	w.layers.forEach((l, i) => {
		const p = `blk.${i}.`;
		f32(`${p}attn_norm.weight`, l.norm, [d]);
		mat(`${p}ssm_in.weight`, l.inProj, 2 * e, d);
		f32(`${p}ssm_conv1d.weight`, l.convWeight, [k, e]);
		f32(`${p}ssm_conv1d.bias`, l.convBias, [e]);
		mat(`${p}ssm_x.weight`, l.xProj, r + 2 * n, e);
		mat(`${p}ssm_dt.weight`, l.dtProj, e, r);
		f32(`${p}ssm_dt.bias`, l.dtBias, [e]);
		f32(`${p}ssm_a`, layerA(l), [n, e]);
		f32(`${p}ssm_d`, l.D, [e]);
		mat(`${p}ssm_out.weight`, l.outProj, d, e);
	});
	f32('output_norm.weight', w.normF, [d]);
	if (w.lmHead) mat('output.weight', w.lmHead, v, d);
	return { tensors, metadata: mambaMetadata(ckpt, dtype), choices };
}

/** llama.cpp ftype ids (llama.h enum llama_ftype) for general.file_type. */
const FILE_TYPE: Record<QuantizeType, number> = { f32: 0, f16: 1, q4_0: 2, q8_0: 7, q5_0: 8, q4_k: 15, q6_k: 18, bf16: 32 };

function mambaMetadata(ckpt: Checkpoint<Weight>, dtype: QuantizeType): GgufKVToWrite[] {
	const c = ckpt.config;
	const u32 = (key: string, value: number): GgufKVToWrite => ({ key, type: GT.U32, value });
	// A byte vocabulary, token id = byte, spelled as llama.cpp's gpt2 tokenizer spells bytes (GPT-2's
	// bytes_to_unicode), with the one dummy merge and the ids the fixture files carry.
	const tokens = Array.from({ length: c.vocabSize }, (_, i) => (i < 256 ? byteToUnicode(i) : `<pad${i}>`));
	return [
		{ key: 'general.architecture', type: GT.STRING, value: ARCH },
		{ key: 'general.name', type: GT.STRING, value: ckpt.name },
		u32('general.file_type', FILE_TYPE[dtype]),
		u32('mamba.context_length', c.contextLength ?? 1 << 20),
		u32('mamba.embedding_length', c.dModel),
		u32('mamba.feed_forward_length', 0),
		u32('mamba.attention.head_count', 0),
		u32('mamba.block_count', c.nLayer),
		u32('mamba.ssm.conv_kernel', c.dConv),
		u32('mamba.ssm.inner_size', c.dInner),
		u32('mamba.ssm.state_size', c.dState),
		u32('mamba.ssm.time_step_rank', c.dtRank),
		{ key: 'mamba.attention.layer_norm_rms_epsilon', type: GT.F32, value: c.eps },
		{ key: 'mamba.ssm.dt_b_c_rms', type: GT.BOOL, value: false },
		{ key: 'tokenizer.ggml.model', type: GT.STRING, value: 'gpt2' },
		{ key: 'tokenizer.ggml.pre', type: GT.STRING, value: 'default' },
		{ key: 'tokenizer.ggml.tokens', type: GT.ARRAY, elemType: GT.STRING, value: tokens },
		{ key: 'tokenizer.ggml.token_type', type: GT.ARRAY, elemType: GT.I32, value: tokens.map(() => 1) },
		{ key: 'tokenizer.ggml.merges', type: GT.ARRAY, elemType: GT.STRING, value: [`${tokens[0]} ${tokens[1]}`] },
		u32('tokenizer.ggml.bos_token_id', 2),
		u32('tokenizer.ggml.eos_token_id', 3),
		{ key: 'tokenizer.ggml.add_bos_token', type: GT.BOOL, value: false },
		{ key: 'tokenizer.ggml.add_eos_token', type: GT.BOOL, value: false },
		...(dtype === 'f32' || dtype === 'f16' || dtype === 'bf16' ? [] : [u32('general.quantization_version', 2)]),
	];
}

/** GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others for U+0100 onwards in order. */
function byteToUnicode(b: number): string {
	const printable = (x: number) => (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255);
	if (printable(b)) return String.fromCharCode(b);
	let n = 0;
	for (let x = 0; x < b; x++) if (!printable(x)) n++;
	return String.fromCharCode(256 + n);
}

export function writeCheckpointGguf(ckpt: Checkpoint<Weight>, out: string, dtype: QuantizeType): TypeChoice[] {
	const { tensors, metadata, choices } = ggufTensors(ckpt, dtype);
	writeGguf(out, metadata, tensors);
	return choices;
}
