// What a quantization costs, as llama-perplexity --kl-divergence reports it: both models read the same bytes in one
// recurrent pass each (same chunks, same positions); at every position the next-byte distributions are compared.
// KL(base ‖ q) = Σ_v p(v) (ln p(v) − ln q(v)) in nats, from log-softmax in float64; top-1 agreement counts positions
// where both put the most mass on the same byte. Bits per byte of both models come along (first byte is context).
import type { LanguageModel } from '../model/types.js';

interface KlResult {
	file: string;
	bytes: number;
	scored: number;
	kl_mean: number; // nats per byte
	kl_median: number;
	kl_p90: number;
	kl_p99: number;
	kl_max: number;
	top1_agreement: number; // fraction in [0, 1]
	bits_per_byte_base: number;
	bits_per_byte: number;
	base: string;
	model: string;
}

/** ln softmax of row r of logits (T, V), in float64. */
function logSoftmax(logits: Float32Array, r: number, V: number, out: Float64Array): void {
	let max = -Infinity;
	for (let v = 0; v < V; v++) max = Math.max(max, logits[r * V + v]);
	let sum = 0;
	for (let v = 0; v < V; v++) sum += Math.exp(logits[r * V + v] - max);
	const lse = max + Math.log(sum);
	for (let v = 0; v < V; v++) out[v] = logits[r * V + v] - lse;
}

const argmax = (a: Float64Array) => a.reduce((best, v, i) => (v > a[best] ? i : best), 0);

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: Float64Array, p: number): number {
	if (sorted.length === 0) return NaN;
	return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export async function klDivergence(base: LanguageModel, model: LanguageModel, file: string, bytes: Uint8Array): Promise<KlResult> {
	const V = base.config.vocabSize;
	if (model.config.vocabSize !== V) throw new Error(`vocabularies differ (${V} vs ${model.config.vocabSize})`);
	const n = Math.max(0, bytes.length - 1); // positions 0..n−1 predict bytes 1..n
	const kl = new Float64Array(n);
	const sb = base.newState(), sq = model.newState();
	const lp = new Float64Array(V), lq = new Float64Array(V);
	let agree = 0, natsBase = 0, natsQ = 0;
	const chunk = Math.max(1, Math.min(base.chunk, model.chunk)) * 16;
	for (let s = 0; s < n; s += chunk) {
		const inputs = bytes.subarray(s, Math.min(n, s + chunk));
		const [a, b] = [await base.forward(inputs, sb), await model.forward(inputs, sq)];
		for (let t = 0; t < inputs.length; t++) {
			logSoftmax(a, t, V, lp);
			logSoftmax(b, t, V, lq);
			let d = 0;
			for (let v = 0; v < V; v++) d += Math.exp(lp[v]) * (lp[v] - lq[v]);
			kl[s + t] = Math.max(0, d); // rounding can leave −1e−17 where the two agree
			if (argmax(lp) === argmax(lq)) agree++;
			const next = bytes[s + t + 1];
			natsBase -= lp[next];
			natsQ -= lq[next];
		}
	}
	const sorted = kl.slice().sort();
	const mean = n ? kl.reduce((x, y) => x + y, 0) / n : NaN;
	return {
		file, bytes: bytes.length, scored: n,
		kl_mean: mean, kl_median: percentile(sorted, 50), kl_p90: percentile(sorted, 90), kl_p99: percentile(sorted, 99),
		kl_max: n ? sorted[n - 1] : NaN, top1_agreement: n ? agree / n : NaN,
		bits_per_byte_base: natsBase / Math.LN2 / n, bits_per_byte: natsQ / Math.LN2 / n,
		base: base.checkpoint.name, model: model.checkpoint.name,
	};
}

export const formatKl = (r: KlResult): string =>
	`${r.file}  ${r.model} vs ${r.base}: KL mean ${r.kl_mean.toExponential(3)} nats/byte  median ${r.kl_median.toExponential(3)}  ` +
	`p90 ${r.kl_p90.toExponential(3)}  p99 ${r.kl_p99.toExponential(3)}  max ${r.kl_max.toExponential(3)}  ` +
	`top-1 agreement ${(100 * r.top1_agreement).toFixed(2)}%  bits/byte ${r.bits_per_byte.toFixed(4)} (base ${r.bits_per_byte_base.toFixed(4)}, ` +
	`${r.bits_per_byte - r.bits_per_byte_base >= 0 ? '+' : ''}${(r.bits_per_byte - r.bits_per_byte_base).toFixed(4)})  ${r.scored} bytes scored`;
