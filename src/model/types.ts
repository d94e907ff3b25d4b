// The shapes every part agrees on (docs/model.md). Weights are row-major Float32Array, shapes in comments; the six
// matrices may instead be stored blocks (QMatrix, from a GGUF file), which backends without quantized kernels
// turn into float32 once with denseWeight (weights.ts).
import type { QMatrix, QType } from '../tensor/qmatrix.js';

/** A weight matrix: float32 values, or its stored (possibly quantized) blocks. */
export type Weight = Float32Array | QMatrix;

/** Architecture of a Mamba-1 language model, normalised from either config layout (HF or mamba_ssm). */
export interface MambaConfig {
	dModel: number; // d
	nLayer: number; // L
	vocabSize: number; // V (256 for a byte model; may be padded above the tokenizer's size)
	dInner: number; // E·d, usually 2·d
	dState: number; // N, usually 16
	dConv: number; // k, usually 4
	dtRank: number; // R, usually ceil(d/16)
	eps: number; // norm epsilon
	norm: 'rms' | 'layer'; // chosen by the tensors present: LayerNorm when *.norm.bias exists
	tied: boolean; // lm head = embedding (true unless lm_head.weight is present)
	/** Training context length in tokens when the checkpoint records it (config `max_position_embeddings`-like field). */
	contextLength?: number;
}

/** W: Float32Array for checkpoints from folders (safetensors, torch); Weight for any file (GGUF). */
export interface LayerWeights<W extends Weight = Float32Array> {
	norm: Float32Array; // (d)
	normBias?: Float32Array; // (d) LayerNorm only
	inProj: W; // (2·dInner, d)
	convWeight: Float32Array; // (dInner, k)   from conv1d.weight (dInner, 1, k)
	convBias: Float32Array; // (dInner)
	xProj: W; // (R + 2N, dInner)
	dtProj: W; // (dInner, R)
	dtBias: Float32Array; // (dInner)
	aLog: Float32Array; // (dInner, N)
	/** A = −exp(A_log) (dInner, N) exactly as the file stores it (GGUF holds A, not A_log); the model uses it when present. */
	A?: Float32Array;
	D: Float32Array; // (dInner)
	outProj: W; // (d, dInner)
}

export interface MambaWeights<W extends Weight = Float32Array> {
	embedding: W; // (V, d)
	layers: LayerWeights<W>[];
	normF: Float32Array; // (d)
	normFBias?: Float32Array; // (d)
	lmHead?: W; // (V, d) only when untied
}

export interface Checkpoint<W extends Weight = Float32Array> {
	dir: string; // folder (or .gguf file) it came from
	name: string; // short name for display (folder basename, or file name without .gguf)
	format: 'hf' | 'mamba_ssm' | 'gguf';
	dtype: Uppercase<QType>; // the stored type of the weights (of ssm_in for GGUF)
	config: MambaConfig;
	weights: MambaWeights<W>;
	/** Path of tokenizer.json when the folder holds one (a subword drafter). */
	tokenizerPath?: string;
}

/** The recurrent state a model carries between calls: host arrays (MambaState) or device buffers (DeviceState). */
export interface ModelState {
	position: number; // tokens consumed so far
	readonly byteLength: number;
	clone(): ModelState;
	/** Restore from a snapshot of the same model (in place). */
	copyFrom(other: ModelState): void;
	/** A host copy, for saving a session. */
	toHost(): Promise<HostState>;
	/**
	 * Give the state's memory back: a DeviceState's buffers now, a host state's arrays to the garbage collector. The
	 * state must not be used afterwards. Whoever created or cloned a state frees it (a Session frees its own).
	 */
	free(): void;
}

/** A state held in host arrays (MambaState, state.ts): what a snapshot file stores. */
export interface HostState extends ModelState {
	readonly conv: Float32Array[]; // per layer (E, k−1)
	readonly ssm: Float32Array[]; // per layer (E, N)
}

/** A verify pass (LanguageModel.verify): the logits of every fed position, then keep() exactly once. */
export interface Verification {
	readonly logits: Float32Array; // (T, V)
	/** Leave the state as if only the first j verified tokens had been fed (0 ≤ j ≤ T). */
	keep(j: number): Promise<void>;
}

/** What the engine runs: the host-kernel forward (mamba.ts) or the GPU-resident one (resident.ts). */
export interface LanguageModel {
	readonly config: MambaConfig;
	readonly checkpoint: Checkpoint<Weight>;
	readonly kernels: import('../backend/types.js').Kernels; // the backend it runs on (its name is the backend's)
	readonly chunk: number;
	newState(): ModelState;
	/** Logits (T, V) for every position of tokens, advancing state. */
	forward(tokens: ArrayLike<number>, state: ModelState): Promise<Float32Array>;
	step(token: number, state: ModelState): Promise<Float32Array>;
	/** Feed tokens like forward(), then roll back to any prefix of them (speculative decoding's verify pass). */
	verify(tokens: ArrayLike<number>, state: ModelState): Promise<Verification>;
	/** ln p(targets[t]) under each row of logits (T, V) from forward(), T = targets.length. */
	logProbs(logits: Float32Array, targets: ArrayLike<number>): Promise<Float64Array>;
}
