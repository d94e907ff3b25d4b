// config.json of either layout (HF MambaForCausalLM or mamba_ssm MambaLMHeadModel) -> MambaConfig, with the
// defaults of docs/formats.md and hard limits checked before anything is allocated.
import * as os from 'node:os';
import { UserError } from '../errors.js';
import type { MambaConfig } from '../model/types.js';
import { READ_CAPS, readBoundedJson } from '../util/read-bounded.js';

/** What config.json says, before the tensors settle the vocabulary, the norm kind and tying. */
interface ConfigDraft {
	format: 'hf' | 'mamba_ssm';
	dModel: number;
	nLayer: number;
	vocabSize?: number; // already padded to pad_vocab_size_multiple
	dInner: number;
	dState: number;
	dConv: number;
	dtRank: number;
	eps: number;
	/** The config's tying flag; lm_head.weight present and different from the embedding overrides it. */
	tied: boolean;
	/** false only when the config says the depthwise conv has no bias. */
	convBias: boolean;
	contextLength?: number;
}

/** Sizes no real Mamba checkpoint comes near; larger values mean a corrupt or hostile config. */
export const LIMITS = { dModel: 65536, nLayer: 1024, vocabSize: 1_000_000, dInner: 262144, dState: 1024, dConv: 64 } as const;

export function readConfig(path: string): ConfigDraft {
	const raw = readBoundedJson(path, 'config.json', READ_CAPS.config);
	if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UserError(`${path}: expected a JSON object`);
	return normaliseConfig(raw as Record<string, unknown>, path);
}

function normaliseConfig(c: Record<string, unknown>, path: string): ConfigDraft {
	const int = (v: unknown, field: string, max: number, dflt?: number): number => {
		if (v === undefined || v === null) {
			if (dflt === undefined) throw new UserError(`${path}: missing field ${field}`);
			return dflt;
		}
		if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new UserError(`${path}: ${field} must be a positive integer (got ${JSON.stringify(v)})`);
		if (v > max) throw new UserError(`${path}: ${field} = ${v} is absurd (at most ${max}); refusing before allocating`);
		return v;
	};
	const num = (v: unknown, field: string, dflt: number): number => {
		if (v === undefined || v === null) return dflt;
		if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) throw new UserError(`${path}: ${field} must be a positive number (got ${JSON.stringify(v)})`);
		return v;
	};
	const bool = (v: unknown, field: string, dflt: boolean): boolean => {
		if (v === undefined || v === null) return dflt;
		if (typeof v !== 'boolean') throw new UserError(`${path}: ${field} must be true or false (got ${JSON.stringify(v)})`);
		return v;
	};
	const rank = (v: unknown, field: string, d: number): number => (v === undefined || v === null || v === 'auto' ? Math.ceil(d / 16) : int(v, field, LIMITS.dInner));
	const inner = (expand: number, d: number, field: string): number => {
		const v = Math.floor(expand * d);
		if (v < 1 || v > LIMITS.dInner) throw new UserError(`${path}: ${field} gives d_inner = ${v} (expected 1..${LIMITS.dInner})`);
		return v;
	};
	// A stray `pad_id` (published MambaByte configs) and other unknown fields are ignored on purpose.
	let draft: ConfigDraft;
	if ('d_model' in c || 'n_layer' in c) {
		const ssm = (c.ssm_cfg ?? {}) as Record<string, unknown>;
		if (typeof ssm !== 'object' || Array.isArray(ssm)) throw new UserError(`${path}: ssm_cfg must be an object`);
		if (ssm.layer !== undefined && ssm.layer !== 'Mamba1') throw new UserError(`${path}: ssm_cfg.layer = ${JSON.stringify(ssm.layer)} is not supported (Mamba-1 only)`);
		if (typeof c.d_intermediate === 'number' && c.d_intermediate > 0) throw new UserError(`${path}: d_intermediate = ${c.d_intermediate} (MLP blocks) is not supported`);
		if (Array.isArray(c.attn_layer_idx) && c.attn_layer_idx.length) throw new UserError(`${path}: attention layers (attn_layer_idx) are not supported`);
		if (ssm.bias === true) throw new UserError(`${path}: ssm_cfg.bias = true (biased in/out projections) is not supported`);
		const d = int(c.d_model, 'd_model', LIMITS.dModel);
		draft = {
			format: 'mamba_ssm',
			dModel: d,
			nLayer: int(c.n_layer, 'n_layer', LIMITS.nLayer),
			vocabSize: c.vocab_size === undefined ? undefined : int(c.vocab_size, 'vocab_size', LIMITS.vocabSize),
			dInner: inner(num(ssm.expand, 'ssm_cfg.expand', 2), d, 'ssm_cfg.expand'),
			dState: int(ssm.d_state, 'ssm_cfg.d_state', LIMITS.dState, 16),
			dConv: int(ssm.d_conv, 'ssm_cfg.d_conv', LIMITS.dConv, 4),
			dtRank: rank(ssm.dt_rank, 'ssm_cfg.dt_rank', d),
			eps: num(c.norm_epsilon, 'norm_epsilon', 1e-5),
			// `rms_norm` is not read: published MambaByte configs say true while the weights hold LayerNorm biases.
			tied: bool(c.tie_embeddings, 'tie_embeddings', true),
			convBias: bool(ssm.conv_bias, 'ssm_cfg.conv_bias', true),
		};
	} else if ('hidden_size' in c) {
		if (c.use_bias === true) throw new UserError(`${path}: use_bias = true (biased in/out projections) is not supported`);
		const d = int(c.hidden_size, 'hidden_size', LIMITS.dModel);
		draft = {
			format: 'hf',
			dModel: d,
			nLayer: int(c.num_hidden_layers, 'num_hidden_layers', LIMITS.nLayer),
			vocabSize: c.vocab_size === undefined ? undefined : int(c.vocab_size, 'vocab_size', LIMITS.vocabSize),
			dInner: c.intermediate_size !== undefined ? int(c.intermediate_size, 'intermediate_size', LIMITS.dInner) : inner(num(c.expand, 'expand', 2), d, 'expand'),
			dState: int(c.state_size, 'state_size', LIMITS.dState, 16),
			dConv: int(c.conv_kernel, 'conv_kernel', LIMITS.dConv, 4),
			dtRank: rank(c.time_step_rank, 'time_step_rank', d),
			eps: num(c.layer_norm_epsilon, 'layer_norm_epsilon', 1e-5),
			tied: bool(c.tie_word_embeddings, 'tie_word_embeddings', true),
			convBias: bool(c.use_conv_bias, 'use_conv_bias', true),
		};
	} else {
		throw new UserError(`${path}: neither hidden_size (HF layout) nor d_model (mamba_ssm layout) found`);
	}
	if (draft.dtRank > draft.dInner) throw new UserError(`${path}: dt rank ${draft.dtRank} exceeds d_inner ${draft.dInner}`);
	if (draft.vocabSize !== undefined && c.pad_vocab_size_multiple !== undefined) {
		const m = int(c.pad_vocab_size_multiple, 'pad_vocab_size_multiple', 4096);
		draft.vocabSize = Math.ceil(draft.vocabSize / m) * m; // as mamba_ssm pads its embedding
	}
	if (c.training_context_length !== undefined) draft.contextLength = int(c.training_context_length, 'training_context_length', 2 ** 40);
	checkMemory({ ...draft, vocabSize: draft.vocabSize ?? 256, norm: 'layer' }, path);
	return draft;
}

/** Parameters of a model of this shape (norm biases counted for LayerNorm, the head only when untied). */
export function countParameters(c: Pick<MambaConfig, 'dModel' | 'nLayer' | 'vocabSize' | 'dInner' | 'dState' | 'dConv' | 'dtRank' | 'norm' | 'tied'>): number {
	const { dModel: d, dInner: e, dState: n, dConv: k, dtRank: r } = c;
	const norm = c.norm === 'layer' ? 2 * d : d;
	const layer = norm + 2 * e * d + e * k + e + (r + 2 * n) * e + e * r + e + e * n + e + d * e;
	return c.vocabSize * d * (c.tied ? 1 : 2) + c.nLayer * layer + norm;
}

/** Refuse a model whose float32 weights cannot fit in this machine's memory, before allocating any of it. */
export function checkMemory(c: Parameters<typeof countParameters>[0], path: string): void {
	const bytes = countParameters(c) * 4;
	if (bytes > os.totalmem()) {
		const gb = (b: number) => (b / 2 ** 30).toFixed(1);
		throw new UserError(`${path}: the model needs ${gb(bytes)} GiB as float32 but this machine has ${gb(os.totalmem())} GiB of memory`);
	}
}
