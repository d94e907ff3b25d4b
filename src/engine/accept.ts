// The acceptance rules of speculative decoding (--accept). p is the byte model's processed distribution at a
// position (mask, temperature, top-k, top-p; sampling.ts), b the drafted byte, q the distribution b was drawn from.
//   exact, temperature 0: accept b while it is the argmax → output identical to plain greedy decoding.
//   exact, sampled draft (q known; drafter.ts sampleDraft): speculative sampling — accept with min(1, p(b)/q(b)), on
//     rejection draw from max(0, p − q) renormalised. P(out = x) = q(x)·min(1, p(x)/q(x)) + Σ_y q(y)(1 − min(1,
//     p(y)/q(y)))·r(x) = min(q(x), p(x)) + (1 − Σ_y min(p(y), q(y)))·(p(x) − min(p(x), q(x)))/(1 − Σ_y min(p, q))
//     = p(x): every output byte is distributed exactly as under plain sampling (tested by enumeration).
//   exact, greedy draft under sampling (q = a point mass on b): the same rule, which becomes accept with p(b) and on
//     rejection draw from p with b removed and renormalised.
//   top:K (the paper's rule, β = K): accept b while it is among the K allowed bytes with the highest logits (the
//     UTF-8 mask still applies); on rejection the byte model samples the position as usual. This changes the output.
import { drawFrom, logitRank, type ByteDistribution, type Sampler } from './sampling.js';

export type AcceptRule = { kind: 'exact' } | { kind: 'top'; k: number };

/**
 * The probability that drafted byte b is accepted at a position with distribution d; q is the draft's distribution
 * of b (null: b was chosen deterministically). Greedy decoding and top:K give 0 or 1.
 */
export function acceptProbability(rule: AcceptRule, greedy: boolean, d: ByteDistribution, b: number, q: Float64Array | null): number {
	if (rule.kind === 'top') return logitRank(d, b) < rule.k ? 1 : 0;
	if (greedy) return b === d.argmax ? 1 : 0;
	const pb = d.p[b];
	const qb = q ? q[b] : 1;
	if (pb <= 0) return 0;
	return pb >= qb ? 1 : pb / qb;
}

/** The distribution the replacement byte is drawn from after b was rejected (not normalised). */
export function residual(rule: AcceptRule, greedy: boolean, d: ByteDistribution, b: number, q: Float64Array | null): Float64Array {
	if (rule.kind === 'top' || greedy) return d.p;
	const r = new Float64Array(256);
	let mass = 0;
	for (let x = 0; x < 256; x++) {
		const qx = q ? q[x] : x === b ? 1 : 0;
		r[x] = Math.max(0, d.p[x] - qx);
		mass += r[x];
	}
	// p ≤ q everywhere up to rounding: a rejection then has probability ~0; fall back to p itself
	return mass > 1e-12 ? r : d.p;
}

/** Whether drafted byte b is accepted (draws one uniform number unless the answer is certain). */
export function acceptByte(rule: AcceptRule, sampler: Sampler, d: ByteDistribution, b: number, q: Float64Array | null = null): boolean {
	const a = acceptProbability(rule, sampler.greedy, d, b, q);
	if (a <= 0) return false;
	if (a >= 1) return true;
	return sampler.uniform() < a;
}

/** The byte the byte model emits at the bifurcation point after drafted byte b was rejected. */
export function replacementByte(rule: AcceptRule, sampler: Sampler, d: ByteDistribution, b: number, q: Float64Array | null = null): number {
	if (rule.kind === 'top' || sampler.greedy) return sampler.sample(d);
	return drawFrom(residual(rule, false, d, b, q), sampler.uniform());
}

/**
 * Boundary bytes: after a rejection the byte model decodes on its own until it emits one of these, then drafting
 * resumes. ASCII whitespace (tab, newline, vertical tab, form feed, carriage return, space) and ASCII punctuation:
 * where a subword drafter's next token most likely starts.
 */
export function isBoundaryByte(b: number): boolean {
	return (b >= 0x09 && b <= 0x0d) || b === 0x20 || (b >= 0x21 && b <= 0x2f) || (b >= 0x3a && b <= 0x40) ||
		(b >= 0x5b && b <= 0x60) || (b >= 0x7b && b <= 0x7e);
}
