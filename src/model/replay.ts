// Rolling a host model's state back inside a verify pass, without a second forward (Mamba.verify).
//
// RecordingKernels wraps a model's kernels and, while recording (one verify pass), keeps per layer the conv and SSM
// states before the pass and the inputs of the elementwise recurrence (xz, Δ, xs, B/C). "Keep the first j tokens"
// then rebuilds the conv state from the recorded inputs (kernels/conv.ts nextConvState, as the forward does) and
// replays the selective scan over j steps with the same scan kernel — no projections, bit-identical to having fed
// only those j tokens (tested). The records are checked to cover the pass (one conv and one scan call per layer and
// chunk, over the state's own arrays) before they are used.
import type { Matrix } from '../../kernels/types.js';
import { nextConvState } from '../../kernels/conv.js';
import type { Epilogue, Kernels } from '../backend/types.js';
import type { MambaState } from './state.js';

interface ConvRecord {
	state: Float32Array; // the layer's conv state array (identifies the layer)
	before: Float32Array; // (E, k−1) before this call
	xz: Float32Array; // (T, 2E): the conv's raw inputs are its x half
	T: number;
	E: number;
	k: number;
}

interface ScanRecord {
	h: Float32Array; // the layer's SSM state array
	before: Float32Array; // (E, N) before this call
	delta: Float32Array; // (T, E)
	xs: Float32Array; // (T, E)
	dbc: Float32Array; // (T, R + 2N)
	A: Float32Array;
	D: Float32Array;
	T: number;
	E: number;
	N: number;
	R: number;
}

/**
 * Kernels that pass every call through and, while recording, keep what a rollback needs (see the header): per call
 * the conv and SSM states before it and the recurrence's inputs (x, Δ, xs, B/C). z is not kept: the state does not
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

	linear(w: Matrix, x: Float32Array, T: number, S: number, epi?: Epilogue): Promise<Float32Array> {
		return this.inner.linear(w, x, T, S, epi);
	}

	norm(x: Float32Array, T: number, d: number, w: Float32Array, b: Float32Array | undefined, eps: number): Promise<Float32Array> {
		return this.inner.norm(x, T, d, w, b, eps);
	}

	logProb(logits: Float32Array, T: number, V: number, target: ArrayLike<number>): Promise<Float64Array> {
		return this.inner.logProb(logits, T, V, target);
	}

	convSilu(xz: Float32Array, T: number, E: number, k: number, state: Float32Array, w: Float32Array, b: Float32Array): Promise<Float32Array> {
		if (this.recording) {
			this.conv.push({ state, before: state.slice(), xz: xz.slice(0, T * 2 * E), T, E, k });
		}
		return this.inner.convSilu(xz, T, E, k, state, w, b);
	}

	scan(
		delta: Float32Array, xs: Float32Array, dbc: Float32Array, xz: Float32Array,
		A: Float32Array, D: Float32Array, h: Float32Array, T: number, E: number, N: number, R: number,
	): Promise<Float32Array> {
		if (this.recording) {
			this.scans.push({
				h, before: h.slice(), delta: delta.slice(0, T * E), xs: xs.slice(0, T * E),
				dbc: dbc.slice(0, T * (R + 2 * N)), A, D, T, E, N, R,
			});
		}
		return this.inner.scan(delta, xs, dbc, xz, A, D, h, T, E, N, R);
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
				if (conv[l][i].T !== scan[l][i].T) return null;
				sum += conv[l][i].T;
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
				if (j > s + c.T) {
					s += c.T;
					continue;
				}
				const jj = j - s;
				if (jj === 0) {
					conv.push(c.before);
					ssm.push(r.before);
				} else {
					conv.push(nextConvState(c.before, c.xz, jj, c.E, c.k));
					const h = r.before.slice();
					const { E, N, R } = r;
					if (this.zeros.length < jj * 2 * E) this.zeros = new Float32Array(jj * 2 * E);
					await this.inner.scan(
						r.delta.subarray(0, jj * E), r.xs.subarray(0, jj * E), r.dbc.subarray(0, jj * (R + 2 * N)),
						this.zeros.subarray(0, jj * 2 * E), r.A, r.D, h, jj, E, N, R,
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
