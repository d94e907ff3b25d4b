// The subword drafter (docs/speculative.md): a small subword Mamba and its tokenizer, and its side of one conversation.
//
// DraftContext: the drafter has consumed the committed text up to a token boundary q; the bytes after q (`unfed`)
// are the "tail", which drafting re-derives ("token healing"): the first drafted subwords must agree with the tail
// (the greedy argmax is taken over tokens consistent with it), and the proposal is what the drafted bytes add after
// it. So after a rejection the drafter is never conditioned on half a word, and a trailing space (which byte-level
// BPE glues to the next word) is drafted together with that word. The drafter's states after each drafted subword
// are kept: when the verifier accepts the bytes of drafted subwords, the drafter moves to the state after the last
// of them with no tokenization and no feeding; only otherwise is the unfed text re-tokenized and fed.
import path from 'node:path';
import { existsSync } from 'node:fs';
import type { LanguageModel, ModelState } from '../model/types.js';
import { UserError } from '../errors.js';
import { ByteBuffer } from './byte-buffer.js';
import { ByteLevelTokenizer } from './tokenizer.js';
import { abortError, breathe } from './loop.js';
import type { Profile } from './profile.js';
import { gumbelArgmax } from './sampling.js';
import { childRange, drawByte, exactToken, firstByteDistribution, pickToken, prefixRange, softmaxAt, tokenDistribution } from './draft-vocab.js';

/** A subword Mamba and its tokenizer. */
export class Drafter {
	constructor(readonly model: LanguageModel, readonly tokenizer: ByteLevelTokenizer) {
		if (tokenizer.size > model.config.vocabSize) {
			throw new UserError(`drafter: tokenizer has ${tokenizer.size} tokens but the model only ${model.config.vocabSize}`);
		}
		const ids: number[] = [];
		tokenizer.tokenBytes.forEach((b, id) => {
			if (b && b.length > 0) ids.push(id);
		});
		const cmp = (a: Uint8Array, b: Uint8Array) => {
			for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
			return a.length - b.length;
		};
		ids.sort((x, y) => cmp(tokenizer.tokenBytes[x]!, tokenizer.tokenBytes[y]!) || x - y);
		this.sorted = Int32Array.from(ids);
	}

	/** The drafting tokens (those with bytes) sorted by their bytes: tokens sharing a prefix are a contiguous run. */
	readonly sorted: Int32Array;

	get name(): string {
		return this.model.checkpoint.name;
	}

	/** The tokenizer of a drafter checkpoint folder (its tokenizer.json). */
	static tokenizerOf(model: LanguageModel): ByteLevelTokenizer {
		const file = model.checkpoint.tokenizerPath ?? path.join(model.checkpoint.dir, 'tokenizer.json');
		if (!existsSync(file)) throw new UserError(`drafter ${model.checkpoint.dir}: no tokenizer.json (a drafter is a subword Mamba with its tokenizer)`);
		return ByteLevelTokenizer.load(file);
	}
}

const FEED_CHUNK = 256; // tokens per drafter forward when feeding long text (bounds the logits array)
/**
 * A sampled draft steps on a token that may end (to draw the next byte from the mixture of "it ends" and "it goes
 * on") only when it ends with at least this probability: below it the step is nearly always wasted.
 */
const MIX_MIN = 0.02;

export interface DraftSnapshot {
	state: ModelState;
	logits: Float32Array | null;
	unfed: Uint8Array;
	fed: boolean;
}

export interface Draft {
	ids: number[]; // drafted subwords (the last one possibly unfinished when sampling)
	proposal: Uint8Array; // the bytes they add after the committed text
	/**
	 * When the draft was sampled (DraftOptions.temperature > 0): for each proposal byte, the distribution over the 256
	 * bytes it was drawn from given everything drafted before it (tests check the draws follow it). null for a
	 * greedy draft, which is a function of the text.
	 */
	q: Float64Array[] | null;
}

export interface DraftOptions {
	subwords: number; // at most this many subwords
	maxBytes: number; // at most this many new bytes
	/** Stop once the drafter's own probability of its proposal falls below this (0 = never). */
	minConfidence: number;
	/** 0: greedy drafting (the argmax subword). > 0: sample bytes from the drafter's byte distribution at this temperature. */
	temperature: number;
	/** Uniform numbers for a sampled draft's choices that draw no byte (the session's seeded stream). */
	uniform?: () => number;
	/**
	 * Gumbel noise for proposal byte i's text position (Sampler.noise): a sampled draft draws each byte as the
	 * verifier will (accept.ts), so that the two agree as often as the Gumbel coupling allows.
	 */
	noise?: (i: number) => Float64Array;
}

interface Snap {
	state: ModelState;
	logits: Float32Array;
}

/** The drafter's view of one conversation: its state at a token boundary and the committed bytes after it. */
export class DraftContext {
	private state: ModelState;
	private logits: Float32Array | null = null; // next-token logits at the boundary (null before anything was fed)
	private readonly unfed = new ByteBuffer();
	private fed = false;
	/** The last draft's subwords and the drafter's states after each of them (owned here, freed when dropped). */
	private reuse: { ids: number[]; snaps: Snap[] } | null = null;
	/** Tokens fed to the drafter so far (a measure of drafter work). */
	tokensFed = 0;
	/** Where to add this context's time, while a profiled generation runs. */
	profile: Profile | null = null;

	constructor(readonly drafter: Drafter) {
		this.state = drafter.model.newState();
	}

	get stateBytes(): number {
		return this.state.byteLength;
	}

	/** Committed bytes (prompt or output) the drafter has not consumed yet. */
	append(bytes: ArrayLike<number>): void {
		this.unfed.pushAll(bytes);
	}

	push(b: number): void {
		this.unfed.push(b);
	}

	/**
	 * Bring the drafter up to the committed text. When the text now covers drafted subwords, move to the state after
	 * the last of them (kept from drafting: no tokenization, no forward). Otherwise re-tokenize the unfed text and feed
	 * all of it but the last token (all of it the first time).
	 */
	async sync(signal?: AbortSignal): Promise<void> {
		let t0 = performance.now();
		if (this.takeDrafted()) {
			this.profile?.add('tokenize', t0);
			return;
		}
		const tok = this.drafter.tokenizer;
		const pieces = tok.tokenize(this.unfed.view());
		if (this.profile) t0 = this.profile.add('tokenize', t0);
		const stable = this.fed ? pieces.slice(0, Math.max(0, pieces.length - 1)) : pieces;
		const ids: number[] = [];
		let consumed = 0;
		for (const piece of stable) {
			if (piece.id >= 0) ids.push(piece.id);
			consumed += piece.length;
		}
		const V = this.drafter.model.config.vocabSize;
		for (let s = 0; s < ids.length; s += FEED_CHUNK) {
			await breathe();
			if (signal?.aborted) throw abortError();
			const part = ids.slice(s, s + FEED_CHUNK);
			const rows = await this.drafter.model.forward(part, this.state);
			this.logits = rows.slice((part.length - 1) * V, part.length * V);
			this.tokensFed += part.length;
			this.fed = true;
		}
		this.unfed.shift(consumed);
		this.profile?.add('drafter-feed', t0);
	}

	/** The fast path of sync(): the longest run of drafted subwords that the unfed text starts with. */
	private takeDrafted(): boolean {
		const r = this.reuse;
		if (!r) return false;
		const u = this.unfed.view();
		const bytes = this.drafter.tokenizer.tokenBytes;
		let at = 0;
		let k = 0;
		while (k < r.snaps.length) {
			const b = bytes[r.ids[k]]!;
			if (at + b.length > u.length) break;
			let same = true;
			for (let i = 0; i < b.length && same; i++) same = u[at + i] === b[i];
			if (!same) break;
			at += b.length;
			k++;
		}
		if (k === 0) {
			this.dropReuse();
			return false;
		}
		const taken = r.snaps[k - 1];
		r.snaps.splice(k - 1, 1);
		this.state.free();
		this.state = taken.state;
		this.logits = taken.logits;
		this.unfed.shift(at);
		this.dropReuse();
		return true;
	}

	/** Draft from the synced state (call sync() first); greedy or sampled (DraftOptions.temperature), healing the tail. */
	async draft(o: DraftOptions): Promise<Draft> {
		this.dropReuse();
		if (!this.logits || o.maxBytes <= 0 || o.subwords <= 0) return { ids: [], proposal: new Uint8Array(0), q: null };
		const t0 = performance.now();
		try {
			return o.temperature > 0 ? await this.sampleDraft(this.logits, o) : await this.greedyDraft(this.logits, o);
		} finally {
			this.profile?.add('drafter-step', t0);
		}
	}

	/** Feed subword id after the last snap (or the boundary state) into a new state, kept for reuse; its logits. */
	private async advance(id: number, snaps: Snap[]): Promise<Float32Array> {
		const next = (snaps.length > 0 ? snaps[snaps.length - 1].state : this.state).clone();
		let logits: Float32Array;
		try {
			logits = await this.drafter.model.step(id, next);
		} catch (e) {
			next.free();
			throw e;
		}
		this.tokensFed++;
		snaps.push({ state: next, logits });
		return logits;
	}

	/**
	 * Greedy: argmax subwords consistent with the tail until `subwords` of them go past it (the ones that only re-derive
	 * the tail do not count: a draft of one subword that merely ends at the tail would propose nothing); stops early
	 * once maxBytes new bytes are proposed, or once the product of softmax(top) over the subwords that go past the
	 * tail falls below minConfidence.
	 */
	private async greedyDraft(start: Float32Array, o: DraftOptions): Promise<Draft> {
		const tok = this.drafter.tokenizer;
		const tail = this.unfed.view().slice();
		const ids: number[] = [];
		const snaps: Snap[] = [];
		const full = new ByteBuffer();
		let logits = start;
		let confidence = 1;
		let extending = 0; // subwords that add bytes after the tail: what o.subwords counts
		this.reuse = { ids, snaps };
		while (extending < o.subwords) {
			const id = pickToken(logits, tok.tokenBytes, tail, full.length);
			if (id < 0) break;
			ids.push(id);
			full.pushAll(tok.tokenBytes[id]!);
			if (full.length > tail.length) extending++;
			if (extending === o.subwords || full.length - tail.length >= o.maxBytes) break;
			if (o.minConfidence > 0 && full.length > tail.length) {
				confidence *= softmaxAt(logits, id);
				if (confidence < o.minConfidence) break;
			}
			logits = await this.advance(id, snaps);
		}
		const proposal = full.length <= tail.length ? new Uint8Array(0) : full.view().slice(tail.length, Math.min(full.length, tail.length + o.maxBytes));
		return { ids, proposal, q: null };
	}

	/**
	 * Sampled: bytes drawn one at a time from the drafter's distribution over the next byte. At a token boundary with
	 * token distribution π (softmax of the logits at the temperature), the next byte's distribution given the bytes s
	 * already drawn inside the current token is q(b) ∝ Σ π(t) over tokens t that start with s·b. Two choices are made
	 * without drawing a byte, from the `uniform` stream (they only decide what is proposed, never an output byte):
	 * whether the token ends at s (probability π(s) over the mass of
	 * tokens that start with s), after which the drafter steps on it; and, while a tail is still to be covered, which
	 * consistent token covers its start.
	 */
	private async sampleDraft(start: Float32Array, o: DraftOptions): Promise<Draft> {
		const tok = this.drafter.tokenizer;
		const u = o.uniform ?? Math.random;
		const order = this.drafter.sorted;
		let rest = this.unfed.view().slice(); // tail bytes not covered yet
		const ids: number[] = [];
		const snaps: Snap[] = [];
		this.reuse = { ids, snaps };
		const proposal = new ByteBuffer();
		const qs: Float64Array[] = [];
		let confidence = 1;
		let logits = start;
		const pi = new Float64Array(order.length); // π in sorted order
		const piNext = new Float64Array(order.length); // π after a token that may end
		let extending = 0; // subwords that drew bytes: what o.subwords counts (covering the tail is free)
		while (extending < o.subwords && proposal.length < o.maxBytes) {
			tokenDistribution(logits, order, o.temperature, pi);
			// the tokens consistent with the tail: [lo, hi) start with it; a shorter one is a prefix of it
			let lo = 0;
			let hi = order.length;
			let depth = 0;
			if (rest.length > 0) {
				let massShort = 0;
				const short: number[] = [];
				for (let d = 1; d < rest.length; d++) {
					const at = exactToken(order, tok.tokenBytes, rest, d);
					if (at >= 0 && pi[at] > 0) {
						short.push(at);
						massShort += pi[at];
					}
				}
				[lo, hi] = prefixRange(order, tok.tokenBytes, rest, rest.length);
				let massLong = 0;
				for (let i = lo; i < hi; i++) massLong += pi[i];
				if (massShort + massLong <= 0) break; // nothing consistent with the text: no proposal
				let x = u() * (massShort + massLong);
				let chosen = -1;
				for (const at of short) {
					if (x < pi[at]) {
						chosen = at;
						break;
					}
					x -= pi[at];
				}
				if (chosen >= 0) {
					// covers a start of the tail: feed it and draft on (no byte drawn)
					const id = order[chosen];
					ids.push(id);
					rest = rest.slice(tok.tokenBytes[id]!.length);
					logits = await this.advance(id, snaps);
					continue;
				}
				depth = rest.length;
			}
			// draw bytes inside this token until it ends (or the draft is long enough)
			let ended = -1;
			let drawnBefore = proposal.length;
			let full = false; // the last subword ended inside the byte loop and the draft has its subwords
			while (proposal.length < o.maxBytes && lo < hi) {
				let total = 0;
				let endMass = 0;
				for (let i = lo; i < hi; i++) {
					total += pi[i];
					if (tok.tokenBytes[order[i]]!.length === depth) endMass += pi[i]; // sorted first
				}
				if (total <= 0) break;
				const cont = total - endMass;
				const mixed = endMass > 0 && cont > 0 && endMass >= MIX_MIN * total;
				if (!mixed && endMass > 0 && u() * total < endMass) {
					ended = lo;
					break;
				}
				if (!(cont > 0)) break;
				const qc = new Float64Array(256);
				for (let i = lo; i < hi; i++) {
					const t = tok.tokenBytes[order[i]]!;
					if (t.length > depth) qc[t[depth]] += pi[i] / cont;
				}
				let q = qc;
				let next: { id: number; logits: Float32Array; qe: Float64Array } | null = null;
				if (mixed) {
					// The token may end here, and the next byte would then start the next token: the next byte's
					// distribution is the mixture of the two, and drawing from it (not from a branch chosen first by a
					// coin the noise does not see) is what keeps the draw coupled with the byte model's. The step on
					// the ended token is taken now, and dropped if the token goes on.
					const id = order[lo];
					const le = await this.advance(id, snaps);
					tokenDistribution(le, order, o.temperature, piNext);
					const qe = firstByteDistribution(piNext, order, tok.tokenBytes);
					q = new Float64Array(256);
					for (let c = 0; c < 256; c++) q[c] = (cont * qc[c] + endMass * qe[c]) / total;
					next = { id, logits: le, qe };
				}
				const b = o.noise ? gumbelArgmax(q, o.noise(proposal.length)) : drawByte(q, u());
				proposal.push(b);
				qs.push(q);
				confidence *= q[b];
				if (next) {
					const e = endMass * next.qe[b], c = cont * qc[b];
					if (u() * (e + c) < e) {
						// the token ended before b, which starts the next one
						ids.push(next.id);
						rest = new Uint8Array(0);
						if (proposal.length - 1 > drawnBefore) extending++;
						logits = next.logits;
						pi.set(piNext);
						[lo, hi] = prefixRange(order, tok.tokenBytes, proposal.view().subarray(proposal.length - 1), 1);
						depth = 1;
						drawnBefore = proposal.length - 1;
						if (extending >= o.subwords || (o.minConfidence > 0 && confidence < o.minConfidence)) {
							full = true;
							break;
						}
						continue;
					}
					snaps.pop()!.state.free();
				}
				const [nlo, nhi] = childRange(order, tok.tokenBytes, lo, hi, depth, b);
				lo = nlo;
				hi = nhi;
				depth++;
				if (o.minConfidence > 0 && confidence < o.minConfidence) break;
			}
			if (full || ended < 0) break; // done, or the token is unfinished: the draft ends inside it
			const id = order[ended];
			ids.push(id);
			rest = new Uint8Array(0);
			if (proposal.length > drawnBefore) extending++;
			if (extending >= o.subwords || (o.minConfidence > 0 && confidence < o.minConfidence)) break;
			logits = await this.advance(id, snaps);
		}
		return { ids, proposal: proposal.view().slice(), q: qs };
	}

	snapshot(): DraftSnapshot {
		return { state: this.state.clone(), logits: this.logits?.slice() ?? null, unfed: this.unfed.view().slice(), fed: this.fed };
	}

	/** Continue from a snapshot (copied: the snapshot stays the caller's). */
	restore(s: DraftSnapshot): void {
		this.state.copyFrom(s.state);
		this.logits = s.logits?.slice() ?? null;
		this.unfed.clear();
		this.unfed.pushAll(s.unfed);
		this.fed = s.fed;
		this.dropReuse();
	}

	/** Back to an empty context. */
	reset(): void {
		const zero = this.drafter.model.newState();
		this.state.copyFrom(zero);
		zero.free();
		this.logits = null;
		this.unfed.clear();
		this.fed = false;
		this.dropReuse();
	}

	/** Give every state back (the context is not used afterwards). */
	free(): void {
		this.dropReuse();
		this.state.free();
	}

	/** Forget the last draft's states (on a device, give their memory back now). */
	private dropReuse(): void {
		for (const s of this.reuse?.snaps ?? []) s.state.free();
		this.reuse = null;
	}
}
