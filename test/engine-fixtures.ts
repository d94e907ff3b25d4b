// Test fixtures for the engine tests: a byte-level BPE tokenizer.json trained here on a few sentences (the real
// HF format, read by @huggingface/tokenizers), tiny random models, and an "oracle" drafter whose proposals follow a
// known text (to get high acceptance from a random byte model, which no small random drafter would give).
import { Mamba } from '../src/model/mamba.js';
import { MambaState } from '../src/model/state.js';
import { randomCheckpoint, rng, shapeConfig } from '../src/model/random.js';
import type { Kernels } from '../src/backend/types.js';
import { BYTE_TO_UNICODE, ByteLevelTokenizer } from '../src/engine/tokenizer.js';
import { Drafter } from '../src/engine/drafter.js';

export const CORPUS = [
	'It was a dark and stormy night; the rain fell in torrents, except at occasional intervals, when it was checked',
	'by a violent gust of wind which swept up the streets (for it is in London that our scene lies), rattling along',
	'the housetops, and fiercely agitating the scanty flame of the lamps that struggled against the darkness.',
	'The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore. Ünïcödé — “quotes” 日本語 ✓.',
].join('\n');

const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** A byte-level BPE tokenizer.json (HF format) with all 256 byte tokens and `merges` learned merges. */
export function trainByteBpe(text: string, merges: number, opts: { addPrefixSpace?: boolean; special?: boolean } = {}): Record<string, unknown> {
	const enc = new TextEncoder();
	const words = new Map<string, number>();
	for (const w of text.match(GPT2_SPLIT) ?? []) {
		const s = Array.from(enc.encode(w), (b) => BYTE_TO_UNICODE[b]).join('\u0001');
		words.set(s, (words.get(s) ?? 0) + 1);
	}
	const vocab: Record<string, number> = {};
	for (let b = 0; b < 256; b++) vocab[BYTE_TO_UNICODE[b]] = b;
	let next = 256;
	const mergeList: string[] = [];
	let split = [...words].map(([w, n]) => ({ parts: w.split('\u0001'), n }));
	for (let m = 0; m < merges; m++) {
		const counts = new Map<string, number>();
		for (const { parts, n } of split) {
			for (let i = 0; i + 1 < parts.length; i++) {
				const key = parts[i] + ' ' + parts[i + 1];
				counts.set(key, (counts.get(key) ?? 0) + n);
			}
		}
		let best = '';
		let bestN = 1;
		for (const [k, n] of counts) if (n > bestN || (n === bestN && best !== '' && k < best)) [best, bestN] = [k, n];
		if (!best) break;
		const [a, b] = best.split(' ');
		mergeList.push(best);
		vocab[a + b] = next++;
		split = split.map(({ parts, n }) => {
			const out: string[] = [];
			for (let i = 0; i < parts.length; i++) {
				if (i + 1 < parts.length && parts[i] === a && parts[i + 1] === b) {
					out.push(a + b);
					i++;
				} else out.push(parts[i]);
			}
			return { parts: out, n };
		});
	}
	const added = opts.special ? [{ id: next, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }] : [];
	if (opts.special) vocab['<|endoftext|>'] = next++;
	return {
		version: '1.0',
		truncation: null,
		padding: null,
		added_tokens: added,
		normalizer: null,
		pre_tokenizer: { type: 'ByteLevel', add_prefix_space: opts.addPrefixSpace ?? false, trim_offsets: true, use_regex: true },
		post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
		decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
		model: {
			type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
			fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: mergeList,
		},
	};
}

let cachedTokenizer: ByteLevelTokenizer | null = null;
export function tinyTokenizer(): ByteLevelTokenizer {
	return (cachedTokenizer ??= new ByteLevelTokenizer(trainByteBpe(CORPUS, 200)));
}

export function byteModel(kernels: Kernels, seed = 11, d = 16, layers = 2, chunk = 64): Mamba {
	return new Mamba(randomCheckpoint({ ...shapeConfig(d, layers), dtRank: 2 }, seed), kernels, chunk);
}

/**
 * A random byte model whose untied head maps each byte of a small alphabet (letters, space, punctuation, newline) to
 * the embedding of its successor in a shuffled cycle: greedy output is varied text with boundary bytes (a plain random
 * model's greedy output collapses into one repeated byte), and sampling at moderate temperature has a peaked but
 * nontrivial distribution.
 */
export function cycleModel(kernels: Kernels, seed = 1, d = 16, layers = 2, chunk = 64): Mamba {
	const c = randomCheckpoint({ ...shapeConfig(d, layers), dtRank: 2, tied: false }, seed);
	const r = rng(seed + 100);
	const alphabet = [...' etaoinshrdlucmfwyp,.\nETAOINS'].map((ch) => ch.charCodeAt(0));
	const perm = alphabet.slice();
	for (let i = perm.length - 1; i > 0; i--) {
		const j = Math.floor(r() * (i + 1));
		[perm[i], perm[j]] = [perm[j], perm[i]];
	}
	const E = c.weights.embedding;
	const H = E.map((x) => x * 0.3);
	for (let i = 0; i < perm.length; i++) H.set(E.subarray(perm[i] * d, (perm[i] + 1) * d), perm[(i + 1) % perm.length] * d);
	c.weights.lmHead = H;
	return new Mamba(c, kernels, chunk);
}

/** A random subword Mamba over the tiny tokenizer. */
export function randomDrafter(kernels: Kernels, seed = 5): Drafter {
	const tok = tinyTokenizer();
	const model = new Mamba(randomCheckpoint({ ...shapeConfig(12, 2, tok.size + 3), dtRank: 1 }, seed), kernels);
	return new Drafter(model, tok);
}

/** A state for the oracle drafter: the bytes it has been fed (MambaState API, no arrays). */
class TextState extends MambaState {
	text: number[] = [];
	constructor() {
		super([], []);
	}
	override clone(): TextState {
		const s = new TextState();
		s.text = this.text.slice();
		s.position = this.position;
		return s;
	}
	override copyFrom(o: MambaState): void {
		this.text = (o as TextState).text.slice();
		this.position = o.position;
	}
}

/**
 * A drafter "model" that knows a reference text: at each point its logits favour the longest token continuing the
 * reference after the text it was fed (and, every `corruptEvery`-th call, a wrong token instead), so proposals are
 * mostly right and sometimes wrong. Good for exercising acceptance, bonus bytes, mid-draft rejection and rollback.
 */
export function oracleDrafter(reference: Uint8Array, corruptEvery = 4): Drafter {
	const tok = tinyTokenizer();
	const V = tok.size;
	let calls = 0;
	const row = (text: number[]): Float32Array => {
		const z = new Float32Array(V).fill(-10);
		calls++;
		let at = text.length;
		// Matches only if the fed text is a prefix of the reference; otherwise propose something plausible anyway.
		let ok = at <= reference.length;
		for (let i = 0; ok && i < at; i++) ok = text[i] === reference[i];
		if (!ok) at = reference.length;
		for (let id = 0; id < V; id++) {
			const b = tok.tokenBytes[id];
			if (!b) continue;
			let match = at + b.length <= reference.length;
			for (let i = 0; match && i < b.length; i++) match = reference[at + i] === b[i];
			if (match) z[id] = 4 * b.length; // confident enough that a sampled draft (temperature 1) mostly follows the reference
			else if (b.length === 1) z[id] = -1 - ((id * 7 + calls) % 13) / 13;
		}
		if (calls % corruptEvery === 0) {
			const wrong = (calls * 31) % 256; // a single byte, usually not the reference's
			z[tok.byteToken[wrong]] = 100;
		}
		return z;
	};
	const fake = {
		config: { ...shapeConfig(4, 1, V) },
		checkpoint: { name: 'oracle', dir: '(oracle)' },
		kernels: { name: 'oracle' }, // the draft schedule keys its measurements by the drafter's backend
		chunk: 64,
		newState: () => new TextState(),
		async forward(tokens: ArrayLike<number>, state: TextState): Promise<Float32Array> {
			const out = new Float32Array(tokens.length * V);
			for (let t = 0; t < tokens.length; t++) {
				state.text.push(...tok.tokenBytes[tokens[t]]!);
				state.position++;
				out.set(row(state.text), t * V);
			}
			return out;
		},
		async step(token: number, state: TextState): Promise<Float32Array> {
			return this.forward([token], state);
		},
	};
	return new Drafter(fake as unknown as Mamba, tok);
}

export const enc = (s: string) => new TextEncoder().encode(s);

export { concatBytes as concat } from '../src/util/bytes.js';
