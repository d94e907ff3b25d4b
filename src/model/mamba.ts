// The Mamba-1 language model forward (docs/model.md), one function top to bottom, the PyTorch line above each step.
// It runs on any Kernels implementation (gpu.js or the plain references) over an explicit MambaState:
// forward(tokens) consumes a chunk — projections as matrix-matrix products over the chunk's positions, the scan
// sequential in time and parallel over channels — and a single step is the same code with T = 1.
import { matrix, type Matrix } from '../../kernels/types.js';
import { nextConvState } from '../../kernels/conv.js';
import { splitDbc, splitXz } from '../../kernels/layout.js';
import type { Kernels } from '../backend/types.js';
import { NativeKernels, type NativeModel } from '../backend/native.js';
import { MambaState } from './state.js';
import { RecordingKernels } from './replay.js';
import type { Checkpoint, MambaConfig, Verification, Weight } from './types.js';
import { verifyPass } from './verification.js';
import { denseWeight, embeddingRow, layerA } from './weights.js';
import type { QMatrix } from '../tensor/qmatrix.js';
import { isQMatrix } from '../tensor/qmatrix.js';

interface Layer {
	norm: Float32Array; // (d)
	normBias?: Float32Array; // (d)
	inProj: Matrix | QMatrix; // (2E, d)
	convWeight: Float32Array; // (E, k)
	convBias: Float32Array; // (E)
	xProj: Matrix | QMatrix; // (R + 2N, E)
	dtProj: Matrix | QMatrix; // (E, R)
	dtBias: Float32Array; // (E)
	A: Float32Array; // (E, N) = −exp(A_log), computed once here
	D: Float32Array; // (E)
	outProj: Matrix | QMatrix; // (d, E)
}

export class Mamba {
	readonly config: MambaConfig;
	private readonly embedding: Weight; // (V, d): rows are read (dequantized) one token at a time
	private readonly layers: Layer[];
	private readonly normF: Float32Array;
	private readonly normFBias?: Float32Array;
	private readonly head: Matrix | QMatrix; // (V, d): the embedding when tied
	/** On the native backend, a decode step is one native call (NativeModel); false: the per-operation path. */
	fusedStep = true;
	private fused?: NativeModel;
	private row?: Float32Array; // the embedding row of the token being stepped
	private rows?: Float32Array; // the embedding rows of a fused forward's tokens
	private recorder: RecordingKernels | null = null; // the same kernels, keeping what verify() rolls back with

	constructor(readonly checkpoint: Checkpoint<Weight>, readonly kernels: Kernels, readonly chunk = 64) {
		const c = (this.config = checkpoint.config);
		const w = checkpoint.weights;
		const E = c.dInner, d = c.dModel, N = c.dState, R = c.dtRank;
		this.embedding = w.embedding;
		this.normF = w.normF;
		this.normFBias = w.normFBias;
		// The native kernels compute on stored blocks as they are (resident memory ≈ the file); every other kernel
		// set takes float32, so blocks are dequantized once here.
		const blocks = kernels instanceof NativeKernels;
		const weight = (m: Weight, rows: number, cols: number): Matrix | QMatrix =>
			blocks && isQMatrix(m) ? m : matrix(denseWeight(m), rows, cols);
		this.head = weight(w.lmHead ?? w.embedding, c.vocabSize, d);
		this.layers = w.layers.map((l) => ({
			norm: l.norm,
			normBias: l.normBias,
			inProj: weight(l.inProj, 2 * E, d),
			convWeight: l.convWeight,
			convBias: l.convBias,
			xProj: weight(l.xProj, R + 2 * N, E),
			dtProj: weight(l.dtProj, E, R),
			dtBias: l.dtBias,
			A: layerA(l),
			D: l.D,
			outProj: weight(l.outProj, d, E),
		}));
	}

	newState(): MambaState {
		return MambaState.zeros(this.config);
	}

	/** Logits (T, V) for every position of tokens, advancing state. Long inputs run in chunks. */
	forward(tokens: ArrayLike<number>, state: MambaState): Promise<Float32Array> {
		return this.feed(tokens, state, this.kernels);
	}

	private async feed(tokens: ArrayLike<number>, state: MambaState, kernels: Kernels): Promise<Float32Array> {
		const V = this.config.vocabSize;
		const logits = new Float32Array(tokens.length * V);
		for (let s = 0; s < tokens.length; s += this.chunk) {
			const part = Array.prototype.slice.call(tokens, s, s + this.chunk) as number[];
			const fused = kernels === this.kernels ? this.fusedModel() : null;
			logits.set(fused ? this.fusedForward(fused, part, state, false) : await this.forwardChunk(part, state, kernels), s * V);
		}
		return logits;
	}

	/**
	 * Logits (T, V) of tokens fed from state, then keep(j) leaves state as if only tokens[0..j) had been fed: the
	 * recurrence is replayed over the j kept positions from records of this pass (replay.ts; on the native backend
	 * the fused forward keeps them itself, native/src/step.h), no second forward.
	 */
	async verify(tokens: ArrayLike<number>, state: MambaState): Promise<Verification> {
		const fused = this.fusedModel();
		if (fused && tokens.length <= this.chunk) return this.fusedVerify(fused, Array.from(tokens), state);
		const rec = (this.recorder ??= new RecordingKernels(this.kernels));
		const start = state.position;
		const T = tokens.length;
		return verifyPass(T, {
			feed: async () => {
				rec.start();
				const logits = await this.feed(tokens, state, rec);
				rec.stop();
				return logits;
			},
			rollback: async (j) => {
				if (!(await rec.rollback(state, start, T, j))) throw new Error('internal: the replay records do not cover the verify pass');
			},
			release: () => rec.clear(),
		});
	}

	/** ln p(targets[t]) under each row of logits (T, V), T = targets.length, on this model's kernels. */
	logProbs(logits: Float32Array, targets: ArrayLike<number>): Promise<Float64Array> {
		return this.kernels.logProb(logits, targets.length, this.config.vocabSize, targets);
	}

	private fusedVerify(fused: NativeModel, tokens: number[], state: MambaState): Promise<Verification> {
		const start = state.position;
		return verifyPass(tokens.length, {
			feed: async () => this.fusedForward(fused, tokens, state, true),
			rollback: async (j) => {
				if (!fused.keep(j, state.conv, state.ssm)) throw new Error('internal: no recorded verify pass to keep');
				state.position = start + j;
			},
			release: () => {},
		});
	}

	/** The native fused model (one call per step or chunk), when the kernels are native and fusedStep is on. */
	private fusedModel(): NativeModel | null {
		if (!(this.fusedStep && this.kernels instanceof NativeKernels)) return null;
		const { dModel: d, dInner: E, dState: N, dtRank: R, dConv: k, vocabSize: V, eps } = this.config;
		return (this.fused ??= this.kernels.model({ d, E, N, R, k, V, eps }, this.layers, this.normF, this.normFBias, this.head));
	}

	/** tokens (at most one chunk) through the fused model; record: keep what keep(j) needs. */
	private fusedForward(fused: NativeModel, tokens: number[], state: MambaState, record: boolean): Float32Array {
		const { dModel: d, vocabSize: V } = this.config;
		const T = tokens.length;
		for (const tok of tokens) {
			if (!(tok >= 0 && tok < V)) throw new RangeError(`token ${tok} outside the vocabulary 0..${V - 1}`);
		}
		if (!this.rows || this.rows.length < T * d) this.rows = new Float32Array(T * d); // read synchronously
		tokens.forEach((tok, t) => embeddingRow(this.embedding, tok, d, this.rows!, t * d));
		const logits = fused.forward(this.rows, T, state.conv, state.ssm, record);
		state.position += T;
		return logits;
	}

	/** Logits (V) of the next token after one token. */
	async step(token: number, state: MambaState): Promise<Float32Array> {
		const fused = this.fusedModel();
		if (!fused) return this.forwardChunk([token], state, this.kernels);
		const { dModel: d, vocabSize: V } = this.config;
		if (!(token >= 0 && token < V)) throw new RangeError(`token ${token} outside the vocabulary 0..${V - 1}`);
		this.row ??= new Float32Array(d); // read synchronously by the native step: one buffer for every step
		embeddingRow(this.embedding, token, d, this.row, 0);
		const logits = fused.step(this.row, state.conv, state.ssm);
		state.position += 1;
		return logits;
	}

	private async forwardChunk(tokens: number[], state: MambaState, kernels: Kernels): Promise<Float32Array> {
		// Matrices are QMatrix only when the kernels are native (the constructor), whose linear takes blocks
		// (RecordingKernels passes them through to the native kernels it wraps).
		const k = kernels as Omit<Kernels, 'linear'> & { linear: NativeKernels['linear'] };
		const { dModel: d, dInner: E, dState: N, dtRank: R, dConv, eps, vocabSize: V } = this.config;
		const T = tokens.length;
		for (const tok of tokens) {
			if (!(tok >= 0 && tok < V)) throw new RangeError(`token ${tok} outside the vocabulary 0..${V - 1}`);
		}
		// x = self.embedding(input_ids)                        # (T, d)
		let x: Float32Array = new Float32Array(T * d);
		tokens.forEach((tok, t) => embeddingRow(this.embedding, tok, d, x, t * d));
		for (let l = 0; l < this.layers.length; l++) {
			const L = this.layers[l];
			const h = state.ssm[l]; // (E, N)
			const conv = state.conv[l]; // (E, k−1)
			// u = self.norm(x)                                  # (T, d)
			const u = await k.norm({ x, w: L.norm, b: L.normBias }, { T, d, eps });
			// x, z = self.in_proj(u).chunk(2, dim=-1)           # (T, E) each, views of xz (T, 2E)
			const { x: xIn, z } = splitXz(await k.linear(L.inProj, u, T), E);
			// x = silu(self.conv1d(x)[..., :T])                 # (T, E), earlier inputs from the conv state
			const xc = await k.convSilu({ x: xIn, state: conv, w: L.convWeight, b: L.convBias }, { T, E, k: dConv });
			// conv_state = the last k−1 inputs of [conv_state | x]
			conv.set(nextConvState({ x: xIn, state: conv }, { T, E, k: dConv }));
			// dt_r, B, C = self.x_proj(x).split([R, N, N], dim=-1)   # views of (T, R + 2N)
			const { dt, B, C } = splitDbc(await k.linear(L.xProj, xc, T), R, N);
			// delta = softplus(self.dt_proj(dt_r))              # (T, E)
			const delta = await k.linear(L.dtProj, dt, T, { softplusBias: L.dtBias });
			// y = selective_scan(x, delta, A, B, C, D) * silu(z)   # (T, E), h carried in state.ssm
			const y = await k.scan({ delta, x: xc, B, C, z, A: L.A, D: L.D, h }, { T, E, N });
			// x = x + self.out_proj(y)                          # (T, d)
			x = await k.linear(L.outProj, y, T, { residual: x });
		}
		// logits = self.lm_head(self.norm_f(x))                # (T, V)
		const xf = await k.norm({ x, w: this.normF, b: this.normFBias }, { T, d, eps });
		state.position += T;
		return k.linear(this.head, xf, T);
	}
}

