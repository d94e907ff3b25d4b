// Rolling a host model's state back inside a verify pass, without a second forward (Mamba.verify).
//
// RecordingKernels wraps a model's kernels and, while recording (one verify pass), keeps per layer the conv and SSM
// states before the pass and the inputs of the elementwise recurrence (the conv's x; Δ, the scan's x, B and C).
// "Keep the first j tokens" then rebuilds the conv state from the recorded inputs (kernels/conv.ts nextConvState,
// as the forward does) and replays the selective scan over j steps with the same scan kernel — no projections,
// bit-identical to having fed only those j tokens (tested). The records are checked to cover the pass (one conv and one scan call per layer and
// chunk, over the state's own arrays) before they are used.
import type { Matrix } from '../../kernels/types.js';
import { columns, copyColumns, rows, type Rows } from '../../kernels/layout.js';
import { nextConvState, type ConvArgs, type ConvDims } from '../../kernels/conv.js';
import type { Epilogue } from '../../kernels/projection.js';
import type { NormArgs, NormDims } from '../../kernels/norms.js';
import type { ScanArgs, ScanDims } from '../../kernels/scan.js';
import type { Kernels } from '../backend/types.js';
import type { MambaState } from './state.js';

interface ConvRecord {
	state: Float32Array; // the layer's conv state array (identifies the layer)
	before: Float32Array; // (E, k−1) before this call
	x: Float32Array; // (T, E) the conv's inputs
	dims: ConvDims;
}

interface ScanRecord {
	h: Float32Array; // the layer's SSM state array (identifies the layer)
	before: Float32Array; // (E, N) before this call
	delta: Float32Array; // (T, E)
	x: Float32Array; // (T, E)
	BC: Float32Array; // (T, 2N): [B | C]
	A: Float32Array;
	D: Float32Array;
	dims: ScanDims;
}

/**
 * Kernels that pass every call through and, while recording, keep what a rollback needs (see the header): per call
 * the conv and SSM states before it and the recurrence's inputs (x, Δ, B, C). z is not kept: the state does not
 * depend on it (only the output y does), so the replay gives the scan zeros for it.
 */
export class RecordingKernels implements Kernels {
	readonly name;
	private recording = false;
	private conv: ConvRecord[] = [];
	private scans: ScanRecord[] = [];
	private zeros = new Float32Array(0);

	constructor(readonly inner: Kernels) {
		this.name = inner.name;
	}

	linear(w: Matrix, x: Rows, T: number, epi?: Epilogue): Promise<Float32Array> {
		return this.inner.linear(w, x, T, epi);
	}

	norm(args: NormArgs, dims: NormDims): Promise<Float32Array> {
		return this.inner.norm(args, dims);
	}

	logProb(logits: Float32Array, T: number, V: number, target: ArrayLike<number>): Promise<Float64Array> {
		return this.inner.logProb(logits, T, V, target);
	}

	convSilu(args: ConvArgs, dims: ConvDims): Promise<Float32Array> {
		if (this.recording) {
			this.conv.push({ state: args.state, before: args.state.slice(), x: copyColumns(args.x, dims.T, dims.E), dims: { ...dims } });
		}
		return this.inner.convSilu(args, dims);
	}

	scan(args: ScanArgs, dims: ScanDims): Promise<Float32Array> {
		if (this.recording) {
			const { T, E, N } = dims;
			const BC = new Float32Array(T * 2 * N);
			const B = copyColumns(args.B, T, N), C = copyColumns(args.C, T, N);
			for (let t = 0; t < T; t++) {
				BC.set(B.subarray(t * N, (t + 1) * N), t * 2 * N);
				BC.set(C.subarray(t * N, (t + 1) * N), t * 2 * N + N);
			}
			this.scans.push({
				h: args.h, before: args.h.slice(), delta: args.delta.slice(0, T * E), x: args.x.slice(0, T * E), BC,
				A: args.A, D: args.D, dims: { ...dims },
			});
		}
		return this.inner.scan(args, dims);
	}

	start(): void {
		this.conv = [];
		this.scans = [];
		this.recording = true;
	}

	stop(): void {
		this.recording = false;
	}

	clear(): void {
		this.conv = [];
		this.scans = [];
		this.recording = false;
	}

	/** The records grouped per layer, or null when they do not cover a forward of `total` tokens over `state`. */
	private group(state: MambaState, total: number): { conv: ConvRecord[][]; scan: ScanRecord[][] } | null {
		const L = state.conv.length;
		const conv: ConvRecord[][] = Array.from({ length: L }, () => []);
		const scan: ScanRecord[][] = Array.from({ length: L }, () => []);
		for (const r of this.conv) {
			const l = state.conv.indexOf(r.state);
			if (l < 0) return null;
			conv[l].push(r);
		}
		for (const r of this.scans) {
			const l = state.ssm.indexOf(r.h);
			if (l < 0) return null;
			scan[l].push(r);
		}
		for (let l = 0; l < L; l++) {
			if (conv[l].length !== scan[l].length) return null;
			let sum = 0;
			for (let i = 0; i < conv[l].length; i++) {
				if (conv[l][i].dims.T !== scan[l][i].dims.T) return null;
				sum += conv[l][i].dims.T;
			}
			if (sum !== total) return null;
		}
		return { conv, scan };
	}

	/**
	 * After a recorded forward of `total` tokens over `state`, set `state` to what it would be after only the first j
	 * of them (0 ≤ j ≤ total). Returns false (state untouched) when the records do not cover the forward as expected.
	 */
	async rollback(state: MambaState, startPosition: number, total: number, j: number): Promise<boolean> {
		const g = this.group(state, total);
		if (!g) return false;
		const L = state.conv.length;
		const conv: Float32Array[] = [];
		const ssm: Float32Array[] = [];
		for (let l = 0; l < L; l++) {
			let s = 0;
			for (let i = 0; i < g.conv[l].length; i++) {
				const c = g.conv[l][i];
				const r = g.scan[l][i];
				if (j > s + c.dims.T) {
					s += c.dims.T;
					continue;
				}
				const jj = j - s;
				if (jj === 0) {
					conv.push(c.before);
					ssm.push(r.before);
				} else {
					conv.push(nextConvState({ x: rows(c.x, c.dims.E), state: c.before }, { ...c.dims, T: jj }));
					const h = r.before.slice();
					const { E, N } = r.dims;
					if (this.zeros.length < jj * 2 * E) this.zeros = new Float32Array(jj * 2 * E);
					const z = columns(this.zeros, E, 2 * E); // as splitXz makes it, so no backend repacks it
					await this.inner.scan(
						{ delta: r.delta, x: r.x, B: columns(r.BC, 0, 2 * N), C: columns(r.BC, N, 2 * N), z, A: r.A, D: r.D, h },
						{ T: jj, E, N },
					);
					ssm.push(h);
				}
				break;
			}
		}
		if (conv.length !== L || ssm.length !== L) return false;
		for (let l = 0; l < L; l++) {
			state.conv[l].set(conv[l]);
			state.ssm[l].set(ssm[l]);
		}
		state.position = startPosition + j;
		return true;
	}
}
