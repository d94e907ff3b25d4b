// Speculative decoding with a subword drafter and byte-level verification (DESIGN.md §6).
//
// The pieces, used by Session (generate.ts), which runs the rounds:
// - ByteLevelTokenizer: the drafter's tokenizer.json (Hugging Face format, byte-level BPE) through
//   @huggingface/tokenizers. Token strings map to bytes through the GPT-2 byte↔unicode table, so any byte string
//   round-trips: well-formed UTF-8 runs are encoded by the library, and each ill-formed byte (which no JS string can
//   carry) becomes its single-byte token. Every tokenization is checked to give back its input bytes exactly; a run
//   that does not (a normalizer that rewrites text, an unknown token) falls back to single-byte tokens. The drafter
//   only proposes, so its view of the text can never change the output, only the acceptance rate.
// - DraftContext: the drafter's side of a conversation. The drafter has consumed the committed text up to a token
//   boundary q; the bytes after q (`unfed`) are re-tokenized at each round. All tokens but the last are fed (they
//   are final); the last token's bytes are the "tail", which drafting re-derives ("token healing"): the first drafted
//   subwords must agree with the tail (the greedy argmax is taken over tokens consistent with it), and the proposal is
//   what the drafted bytes add after it. So after a rejection the drafter is never conditioned on half a word, and a
//   trailing space (which byte-level BPE glues to the next word) is drafted together with that word. Rollback of the
//   drafter = re-tokenizing from q; drafter states after each drafted subword are kept so that subwords the verifier
//   accepted are not fed again.
// - Verifier rollback without a second forward: RecordingKernels wraps the kernels of the session's view of the byte
//   model and, during a verify pass only, keeps per layer the conv and SSM states before the pass and the inputs of
//   the elementwise recurrence (x, Δ, B, C). Rolling back to "the first j verified bytes" then rebuilds the conv state
//   from the recorded inputs and replays the selective scan over j steps with the same scan kernel — no projections,
//   bit-identical to having fed only those j bytes (tested). If the records are not what is expected (a model that
//   calls the kernels differently), it falls back to restoring a clone of the state and a forward over the j bytes.
// - The acceptance rules (--accept):
//   exact, temperature 0: accept drafted byte b while b is the argmax → output identical to plain greedy decoding.
//   exact, sampling: the drafter is deterministic given the text, so accept b with probability p(b) under the
//     processed distribution (mask, temperature, top-k, top-p; sampling.ts), and on rejection sample from p with b
//     removed and renormalised → every output byte is distributed exactly as under plain sampling.
//   top:K (the paper's rule, β = K): accept b while it is among the K allowed bytes with the highest logits (the
//     UTF-8 mask still applies); on rejection the byte model samples position c as usual. This changes the output.
import { concatBytes } from '../util/bytes.js';
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import type { Matrix } from '../../kernels/types.js';
import type { Epilogue, Kernels } from '../backend/types.js';
import type { MambaState } from '../model/state.js';
import type { LanguageModel, ModelState } from '../model/types.js';
import { UserError } from '../errors.js';
import { splitUtf8 } from './utf8.js';
import { drawFrom, logitRank, type ByteDistribution, type Sampler } from './sampling.js';
import type { Profile } from './profile.js';

// ---------------------------------------------------------------------------------------------------------------
// GPT-2 byte ↔ unicode table (the one every byte-level BPE uses).

/** BYTE_TO_UNICODE[b] = the character byte b is written as inside byte-level BPE token strings. */
export const BYTE_TO_UNICODE: string[] = (() => {
	const bs: number[] = [];
	for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
	for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
	for (let b = 0xae; b <= 0xff; b++) bs.push(b);
	const table: string[] = new Array(256);
	for (const b of bs) table[b] = String.fromCharCode(b);
	let n = 0;
	for (let b = 0; b < 256; b++) if (table[b] === undefined) table[b] = String.fromCharCode(256 + n++);
	return table;
})();

const UNICODE_TO_BYTE = new Map<string, number>(BYTE_TO_UNICODE.map((c, b) => [c, b]));

/** Bytes of a byte-level token string, or null when a character is outside the table (not a byte-level token). */
export function tokenStringToBytes(s: string): Uint8Array | null {
	const out = new Uint8Array(s.length);
	for (let i = 0; i < s.length; i++) {
		const b = UNICODE_TO_BYTE.get(s[i]);
		if (b === undefined) return null;
		out[i] = b;
	}
	return out;
}

export function bytesToTokenString(bytes: ArrayLike<number>): string {
	let s = '';
	for (let i = 0; i < bytes.length; i++) s += BYTE_TO_UNICODE[bytes[i]];
	return s;
}

// ---------------------------------------------------------------------------------------------------------------

/** One token of a tokenization and the bytes it covers; id −1 = a byte the vocabulary has no token for (not fed). */
export interface Piece {
	id: number;
	length: number;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
	if (a.length !== b.length) return false;
	for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
	return true;
}

/** Set add_prefix_space = false in every ByteLevel pre-tokenizer: a prefix space would break byte round trips. */
function withoutPrefixSpace(json: Record<string, unknown>): Record<string, unknown> {
	const copy = structuredClone(json);
	const visit = (node: unknown) => {
		if (!node || typeof node !== 'object') return;
		const o = node as Record<string, unknown>;
		if (o.type === 'ByteLevel' && 'add_prefix_space' in o) o.add_prefix_space = false;
		for (const v of Object.values(o)) visit(v);
	};
	visit(copy.pre_tokenizer);
	return copy;
}

export class ByteLevelTokenizer {
	readonly tokenizer: Tokenizer;
	/** Bytes of each token id (null for special tokens and ids without a byte-level string: never drafted). */
	readonly tokenBytes: (Uint8Array | null)[];
	/** Bytes of added/special tokens when the library's encoder emits them for literal text (for round-trip checks). */
	private readonly addedBytes = new Map<number, Uint8Array>();
	/** Id of the single-byte token of each byte, −1 when the vocabulary lacks it. */
	readonly byteToken = new Int32Array(256).fill(-1);
	readonly size: number;

	constructor(json: Record<string, unknown>, config: Record<string, unknown> = {}) {
		const model = json.model as { type?: string } | undefined;
		if (!model || model.type !== 'BPE') throw new UserError(`tokenizer.json: expected a BPE model, found ${model?.type ?? 'none'}`);
		this.tokenizer = new Tokenizer(withoutPrefixSpace(json), config);
		const vocab = this.tokenizer.get_vocab(true);
		let size = 0;
		for (const id of vocab.values()) size = Math.max(size, id + 1);
		this.size = size;
		const added = this.tokenizer.get_added_tokens_decoder();
		const enc = new TextEncoder();
		for (const [id, tok] of added) this.addedBytes.set(id, enc.encode(tok.content));
		this.tokenBytes = new Array(size).fill(null);
		let byteLevel = 0;
		for (let id = 0; id < size; id++) {
			if (added.has(id)) continue;
			const s = this.tokenizer.id_to_token(id);
			if (s === undefined || s.length === 0) continue;
			const b = tokenStringToBytes(s);
			if (!b) continue;
			byteLevel++;
			this.tokenBytes[id] = b;
			if (b.length === 1 && this.byteToken[b[0]] < 0) this.byteToken[b[0]] = id;
		}
		if (byteLevel < size / 2) throw new UserError('tokenizer.json: not a byte-level BPE vocabulary (token strings do not map to bytes)');
	}

	static load(file: string): ByteLevelTokenizer {
		let json: Record<string, unknown>;
		try {
			json = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
		} catch (e) {
			throw new UserError(`${file}: cannot read tokenizer (${e instanceof Error ? e.message.split('\n')[0] : String(e)})`);
		}
		const cfgFile = path.join(path.dirname(file), 'tokenizer_config.json');
		let config: Record<string, unknown> = {};
		if (existsSync(cfgFile)) {
			try {
				config = JSON.parse(readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
			} catch {
				config = {};
			}
		}
		return new ByteLevelTokenizer(json, config);
	}

	/** Bytes a token stands for (special tokens: their text), or null. */
	bytesOf(id: number): Uint8Array | null {
		return this.tokenBytes[id] ?? this.addedBytes.get(id) ?? null;
	}

	/** Tokenize arbitrary bytes; the pieces cover the input exactly, in order. */
	tokenize(bytes: Uint8Array): Piece[] {
		const out: Piece[] = [];
		const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
		for (const run of splitUtf8(bytes)) {
			const chunk = bytes.subarray(run.start, run.end);
			if (run.valid) {
				const ids = this.tokenizer.encode(decoder.decode(chunk), { add_special_tokens: false }).ids;
				const pieces: Piece[] = [];
				const got = new Uint8Array(chunk.length);
				let at = 0;
				let ok = true;
				for (const id of ids) {
					const b = id === undefined || id === null ? null : this.bytesOf(id);
					if (!b || at + b.length > chunk.length) {
						ok = false;
						break;
					}
					got.set(b, at);
					at += b.length;
					pieces.push({ id, length: b.length });
				}
				if (ok && at === chunk.length && bytesEqual(got, chunk)) {
					out.push(...pieces);
					continue;
				}
			}
			for (const b of chunk) out.push({ id: this.byteToken[b], length: 1 });
		}
		return out;
	}

	/** Bytes of a token sequence (special tokens contribute nothing). */
	detokenize(ids: readonly number[]): Uint8Array {
		return concatBytes(ids.map((id) => this.tokenBytes[id] ?? new Uint8Array(0)));
	}
}

/** A subword Mamba and its tokenizer. */
export class Drafter {
	constructor(readonly model: LanguageModel, readonly tokenizer: ByteLevelTokenizer) {
		if (tokenizer.size > model.config.vocabSize) {
			throw new UserError(`drafter: tokenizer has ${tokenizer.size} tokens but the model only ${model.config.vocabSize}`);
		}
	}

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

// ---------------------------------------------------------------------------------------------------------------
// A growable byte buffer (the drafter's unfed text).

export class ByteBuffer {
	private buf = new Uint8Array(64);
	length = 0;

	push(b: number): void {
		if (this.length === this.buf.length) this.grow(this.length + 1);
		this.buf[this.length++] = b;
	}

	pushAll(bytes: ArrayLike<number>): void {
		if (this.length + bytes.length > this.buf.length) this.grow(this.length + bytes.length);
		for (let i = 0; i < bytes.length; i++) this.buf[this.length + i] = bytes[i];
		this.length += bytes.length;
	}

	/** Drop the first n bytes. */
	shift(n: number): void {
		this.buf.copyWithin(0, n, this.length);
		this.length -= n;
	}

	view(): Uint8Array {
		return this.buf.subarray(0, this.length);
	}

	clear(): void {
		this.length = 0;
	}

	private grow(min: number): void {
		let cap = this.buf.length * 2;
		while (cap < min) cap *= 2;
		const b = new Uint8Array(cap);
		b.set(this.buf.subarray(0, this.length));
		this.buf = b;
	}
}

// ---------------------------------------------------------------------------------------------------------------

const FEED_CHUNK = 256; // tokens per drafter forward when feeding long text (bounds the logits array)

export interface DraftSnapshot {
	state: ModelState;
	logits: Float32Array | null;
	unfed: Uint8Array;
	fed: boolean;
}

export interface Draft {
	ids: number[]; // drafted subwords
	proposal: Uint8Array; // the bytes they add after the committed text
}

/** The drafter's view of one conversation: its state at a token boundary and the committed bytes after it. */
export class DraftContext {
	readonly state: ModelState;
	private logits: Float32Array | null = null; // next-token logits at the boundary (null before anything was fed)
	private readonly unfed = new ByteBuffer();
	private fed = false;
	private reuse: { ids: number[]; snaps: { state: ModelState; logits: Float32Array }[] } | null = null;
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

	/** Re-tokenize the unfed text and feed all of it but the last token (all of it the first time). */
	async sync(signal?: AbortSignal): Promise<void> {
		const tok = this.drafter.tokenizer;
		let t0 = performance.now();
		const pieces = tok.tokenize(this.unfed.view());
		if (this.profile) t0 = this.profile.add('tokenize', t0);
		const stable = this.fed ? pieces.slice(0, Math.max(0, pieces.length - 1)) : pieces;
		let k = 0;
		let consumed = 0;
		if (this.reuse) {
			const r = this.reuse;
			while (k < stable.length && k < r.snaps.length && stable[k].id === r.ids[k]) consumed += stable[k++].length;
			if (k > 0) {
				this.state.copyFrom(r.snaps[k - 1].state);
				this.logits = r.snaps[k - 1].logits;
			}
			this.dropReuse();
		}
		const ids: number[] = [];
		for (let i = k; i < stable.length; i++) {
			if (stable[i].id >= 0) ids.push(stable[i].id);
			consumed += stable[i].length;
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

	/**
	 * Draft up to m subwords greedily from the synced state, healing the tail; stops early once `maxBytes` new bytes
	 * are proposed, or once the drafter's own probability of its proposal (the product of softmax(top) over the
	 * subwords that go past the tail) falls below `minConfidence`. Call sync() first.
	 */
	async draft(m: number, maxBytes: number, minConfidence = 0): Promise<Draft> {
		const empty = { ids: [], proposal: new Uint8Array(0) };
		if (!this.logits || maxBytes <= 0) return empty;
		const t0 = performance.now();
		try {
			return await this.draftFrom(this.logits, m, maxBytes, minConfidence);
		} finally {
			this.profile?.add('drafter-step', t0);
		}
	}

	private async draftFrom(start: Float32Array, m: number, maxBytes: number, minConfidence: number): Promise<Draft> {
		const tok = this.drafter.tokenizer;
		const model = this.drafter.model;
		const tail = this.unfed.view().slice();
		const ids: number[] = [];
		const parts: Uint8Array[] = [];
		let length = 0;
		let logits = start;
		let work: ModelState | null = null;
		const snaps: { state: ModelState; logits: Float32Array }[] = [];
		let confidence = 1;
		for (let i = 0; i < m; i++) {
			const id = pickToken(logits, tok.tokenBytes, tail, length);
			if (id < 0) break;
			ids.push(id);
			const b = tok.tokenBytes[id]!;
			parts.push(b);
			length += b.length;
			if (i === m - 1 || length - tail.length >= maxBytes) break;
			if (minConfidence > 0 && length > tail.length) {
				confidence *= softmaxAt(logits, id);
				if (confidence < minConfidence) break;
			}
			work = work ? work : this.state.clone();
			logits = await model.step(id, work);
			this.tokensFed++;
			snaps.push({ state: i === m - 2 ? work : work.clone(), logits });
		}
		this.dropReuse();
		this.reuse = { ids, snaps };
		if (length <= tail.length) return { ids, proposal: new Uint8Array(0) };
		const full = new Uint8Array(length);
		let at = 0;
		for (const p of parts) {
			full.set(p, at);
			at += p.length;
		}
		return { ids, proposal: full.slice(tail.length, Math.min(length, tail.length + maxBytes)) };
	}

	snapshot(): DraftSnapshot {
		return { state: this.state.clone(), logits: this.logits?.slice() ?? null, unfed: this.unfed.view().slice(), fed: this.fed };
	}

	restore(s: DraftSnapshot): void {
		this.state.copyFrom(s.state);
		this.logits = s.logits?.slice() ?? null;
		this.unfed.clear();
		this.unfed.pushAll(s.unfed);
		this.fed = s.fed;
		this.dropReuse();
	}

	/** Forget the last draft's states (on a device, give their memory back now). */
	private dropReuse(): void {
		for (const s of this.reuse?.snaps ?? []) s.state.free?.();
		this.reuse = null;
	}
}

/** softmax(logits)[id] in float64. */
function softmaxAt(logits: Float32Array, id: number): number {
	let max = -Infinity;
	for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
	let sum = 0;
	for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
	return Math.exp(logits[id] - max) / sum;
}

/**
 * Greedy choice of the next subword: the highest logit (lowest id on ties) among drafting tokens that agree with the
 * part of the tail not yet covered (tail[covered..]): the token is a prefix of it, or it is a prefix of the token.
 */
export function pickToken(logits: Float32Array, tokenBytes: (Uint8Array | null)[], tail: Uint8Array, covered: number): number {
	const rest = tail.length - covered;
	let best = -1;
	let bestZ = -Infinity;
	const n = Math.min(tokenBytes.length, logits.length);
	for (let id = 0; id < n; id++) {
		const b = tokenBytes[id];
		if (!b || b.length === 0) continue;
		const z = logits[id];
		if (!(z > bestZ)) continue;
		if (rest > 0) {
			const len = Math.min(rest, b.length);
			let ok = true;
			for (let i = 0; i < len && ok; i++) ok = b[i] === tail[covered + i];
			if (!ok) continue;
		}
		best = id;
		bestZ = z;
	}
	return best;
}

/**
 * Kernels may resolve without ever leaving the microtask queue (the cpu backend does), which would starve timers,
 * I/O and signal handlers (Ctrl-C) for a whole generation. Awaiting this lets the event loop run every 25 ms.
 */
let lastBreath = 0;
export async function breathe(): Promise<void> {
	const now = performance.now();
	if (now - lastBreath < 25) return;
	await new Promise<void>((resolve) => setImmediate(resolve));
	lastBreath = performance.now();
}

function abortError(): Error {
	const e = new Error('aborted');
	e.name = 'AbortError';
	return e;
}
export { abortError };

// ---------------------------------------------------------------------------------------------------------------
// Verifier rollback by replaying the recurrence.

interface ConvRecord {
	state: Float32Array; // the layer's conv state array (identifies the layer)
	before: Float32Array; // (E, k−1) before this call
	x: Float32Array; // (T, E): the x half of xz, the conv's raw inputs
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

/** The conv state after the first j inputs of a call: the last k−1 of [before | x[0..j)] (pure data movement). */
function convStateAfter(before: Float32Array, x: Float32Array, j: number, E: number, k: number): Float32Array {
	const m = k - 1;
	const next = new Float32Array(E * m);
	for (let c = 0; c < E; c++) {
		for (let i = 0; i < m; i++) {
			const t = j - m + i; // time index of the i-th kept input; negative = still in the old state
			next[c * m + i] = t >= 0 ? x[t * E + c] : before[c * m + m + t];
		}
	}
	return next;
}

/**
 * Kernels that pass every call through and, while recording, keep what a rollback needs (see the header): per call
 * the conv and SSM states before it and the recurrence's inputs (x, Δ, xs, B/C). z is not kept: the state does not
 * depend on it (only the output y does), so the replay gives the scan zeros for it.
 */
export class RecordingKernels implements Kernels {
	readonly name;
	/** True once a recorded forward was checked to be fully covered by the records (the model calls us as expected). */
	trusted = false;
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
			const x = new Float32Array(T * E);
			for (let t = 0; t < T; t++) x.set(xz.subarray(t * 2 * E, t * 2 * E + E), t * E);
			this.conv.push({ state, before: state.slice(), x, T, E, k });
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

	/** Whether the records cover a forward of `total` tokens over `state` (and if so, trust them from now on). */
	check(state: MambaState, total: number): boolean {
		const ok = this.group(state, total) !== null;
		if (ok) this.trusted = true;
		return ok;
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
					conv.push(convStateAfter(c.before, c.x, jj, c.E, c.k));
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

// ---------------------------------------------------------------------------------------------------------------
// Acceptance rules.

export type AcceptRule = { kind: 'exact' } | { kind: 'top'; k: number };

/** Whether drafted byte b is accepted at a position with distribution d (may draw one uniform number). */
export function acceptByte(rule: AcceptRule, sampler: Sampler, d: ByteDistribution, b: number): boolean {
	if (rule.kind === 'top') return logitRank(d, b) < rule.k;
	if (sampler.greedy) return b === d.argmax;
	const pb = d.p[b];
	if (pb <= 0) return false;
	if (pb >= 1) return true;
	return sampler.uniform() < pb;
}

/** The byte the byte model emits at the bifurcation point after drafted byte b was rejected. */
export function replacementByte(rule: AcceptRule, sampler: Sampler, d: ByteDistribution, b: number): number {
	if (rule.kind === 'top' || sampler.greedy) return sampler.sample(d);
	const q = d.p.slice();
	q[b] = 0;
	return drawFrom(q, sampler.uniform());
}

/**
 * Whether speculative decoding can pay on a backend. It needs a verify pass over T bytes to cost much less than T
 * single steps; gpu.js's cpu and webasm modes cost about the same per byte at any T (measured: 4.8 ms/byte at T = 1
 * and T = 32 for d = 256, 6 layers), so there the shipped pair decodes at 0.44-0.5x of plain decoding. On webgpu a
 * small model's every pass costs a fixed ~7 µs whatever T is, so the 4-layer drafter is not much cheaper than the
 * 9-layer byte model: measured 654 vs 1,316 bytes/s (0.50x) on an H200 (bench/results/h200-ab.txt).
 * Used to skip the *default* drafter in exact mode (where drafting changes nothing but speed); an explicit --draft
 * is always honoured.
 */
export function draftingPays(backend: string): boolean {
	return backend !== 'cpu' && backend !== 'webasm' && backend !== 'reference' && backend !== 'webgpu';
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
