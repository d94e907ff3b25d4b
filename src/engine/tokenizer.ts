// The drafter's tokenizer: a Hugging Face tokenizer.json (byte-level BPE) through @huggingface/tokenizers.
// Token strings map to bytes through the GPT-2 byte↔unicode table, so any byte string round-trips: well-formed UTF-8
// runs are encoded by the library, and each ill-formed byte (which no JS string can carry) becomes its single-byte
// token. Every tokenization is checked to give back its input bytes exactly; a run that does not (a normalizer that
// rewrites text, an unknown token) falls back to single-byte tokens. The drafter only proposes, so its view of the
// text can never change the output, only the acceptance rate.
import { Tokenizer } from '@huggingface/tokenizers';
import { concatBytes } from '../util/bytes.js';
import { UserError } from '../errors.js';
import { splitUtf8 } from './utf8.js';
import { checkTokenizerJson, readTokenizerFiles } from './tokenizer-json.js';

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

	constructor(json: Record<string, unknown>, config: Record<string, unknown> = {}, file = 'tokenizer.json') {
		checkTokenizerJson(json, file); // ids bounded before the tables below are sized from them
		try {
			this.tokenizer = new Tokenizer(withoutPrefixSpace(json), config);
		} catch {
			throw new UserError(`${file}: the tokenizer library refused this tokenizer.json (a field has the wrong type)`);
		}
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
		const { json, config } = readTokenizerFiles(file); // bounded read, shape checked (tokenizer-json.ts)
		return new ByteLevelTokenizer(json, config, file);
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
