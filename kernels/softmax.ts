// Log-probabilities from logits (T, V): logp[t] = logits[t, target[t]] − logsumexp(logits[t, :]).
// Scoring a file needs only the target byte's log-probability per position, so this reduces each row to one
// number on the backend instead of reading T·V logits back.
import type { KernelThis } from './types.js';

export function logProbAt(this: KernelThis<{ V: number }>, logits: number[][], target: number[]) {
	const t = this.thread.x;
	let m = logits[t][0];
	for (let v = 1; v < this.constants.V; v++) m = Math.max(m, logits[t][v]);
	let s = 0;
	for (let v = 0; v < this.constants.V; v++) s += Math.exp(logits[t][v] - m);
	return logits[t][target[t]] - m - Math.log(s);
}

/** Reference in float64: natural-log probability of target[t] under row t. */
export function logProbReference(logits: Float32Array, T: number, V: number, target: ArrayLike<number>): Float64Array {
	const out = new Float64Array(T);
	for (let t = 0; t < T; t++) {
		const row = logits.subarray(t * V, (t + 1) * V);
		let m = -Infinity;
		for (const v of row) m = Math.max(m, v);
		let s = 0;
		for (const v of row) s += Math.exp(v - m);
		out[t] = row[target[t]] - m - Math.log(s);
	}
	return out;
}
