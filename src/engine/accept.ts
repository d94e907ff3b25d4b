// The acceptance rules of speculative decoding (--accept). d is the byte model's processed distribution at a text
// position (mask, temperature, top-k, top-p, min-p, repeat penalty; sampling.ts), b the drafted byte.
//   exact: the byte at a position is the one plain decoding emits there — the argmax when greedy, else the Gumbel-max
//     draw with the position's own noise (Sampler.sample) — and a drafted byte is kept while it is that byte. So the
//     output is identical to plain decoding with the same seed, greedy or sampled, whatever was drafted. A sampled
//     draft uses the same noise on the drafter's byte distribution q (drafter.ts sampleDraft): the two draws agree
//     with the Gumbel coupling's probability, at least (1 − TV(p, q)) / (1 + TV(p, q)): a little below speculative
//     sampling's Σ min(p, q) (docs/speculative.md gives both, measured), which cannot give the same text for the
//     same seed (its random numbers are consumed as the draft lengths dictate).
//   top:K (the paper's rule, β = K): accept b while it is among the K allowed bytes with the highest logits (the
//     UTF-8 mask still applies); on rejection the byte model samples the position as usual. This changes the output.
import { logitRank, type ByteDistribution, type Sampler } from './sampling.js';

export type AcceptRule = { kind: 'exact' } | { kind: 'top'; k: number };

/** Whether drafted byte b is kept at text position `position` with distribution d. */
export function acceptByte(rule: AcceptRule, sampler: Sampler, d: ByteDistribution, b: number, position: number): boolean {
	if (rule.kind === 'top') return logitRank(d, b) < rule.k;
	return b === sampler.sample(d, position);
}

/** The byte the byte model emits at the position where a drafted byte was rejected: what plain decoding emits there. */
export function replacementByte(sampler: Sampler, d: ByteDistribution, position: number): number {
	return sampler.sample(d, position);
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
