// tokenizer.json (and its tokenizer_config.json) read and checked before @huggingface/tokenizers sees them: the
// file through the bounded reader, then its shape — a BPE model with a vocabulary of string → id where every id
// is a small non-negative integer (tables are sized from the largest id, so a 2^31 id must be refused before any
// allocation), merges of one of the two known spellings, added tokens with valid ids, and normalizer /
// pre-tokenizer / decoder / post-processor trees of known types and bounded depth. Every failure is one line that
// names the field and never quotes the file (it may be a symlink to a secret).
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { UserError } from '../errors.js';
import { READ_CAPS, readBoundedJson } from '../util/read-bounded.js';

/** Ids at or above this are refused: no subword vocabulary comes near it, and tables are sized from the largest. */
const MAX_TOKEN_ID = 1_000_000;
/** Nesting allowed in the component trees (a Sequence of Sequences …); real files use 2 or 3. */
const MAX_COMPONENT_DEPTH = 8;
/** Nesting allowed anywhere in the file (checked iteratively before anything recurses). */
const MAX_JSON_DEPTH = 64;

const COMPONENT_TYPES: Record<string, ReadonlySet<string>> = {
	normalizer: new Set(['BertNormalizer', 'Precompiled', 'Sequence', 'Replace', 'NFC', 'NFD', 'NFKC', 'NFKD', 'Strip', 'StripAccents', 'Lowercase', 'Prepend']),
	pre_tokenizer: new Set(['BertPreTokenizer', 'Sequence', 'Whitespace', 'WhitespaceSplit', 'Metaspace', 'ByteLevel', 'Split', 'Punctuation', 'Digits', 'Replace', 'FixedLength']),
	post_processor: new Set(['TemplateProcessing', 'ByteLevel', 'BertProcessing', 'RobertaProcessing', 'Sequence']),
	decoder: new Set(['ByteLevel', 'WordPiece', 'Metaspace', 'BPEDecoder', 'CTC', 'Sequence', 'Replace', 'Fuse', 'Strip', 'ByteFallback']),
};
/** Where a Sequence keeps its children, per component kind. */
const SEQUENCE_FIELDS: Record<string, string> = {
	normalizer: 'normalizers', pre_tokenizer: 'pretokenizers', post_processor: 'processors', decoder: 'decoders',
};

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isId = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < MAX_TOKEN_ID;

/** The depth of a parsed JSON value, without recursion (so a 100k-deep file cannot overflow the stack here). */
function jsonDepth(root: unknown, limit: number): number {
	let max = 0;
	const stack: [unknown, number][] = [[root, 1]];
	while (stack.length > 0) {
		const [v, d] = stack.pop()!;
		if (typeof v !== 'object' || v === null) continue;
		if (d > max) max = d;
		if (max > limit) return max;
		for (const child of Array.isArray(v) ? v : Object.values(v)) {
			if (typeof child === 'object' && child !== null) stack.push([child, d + 1]);
		}
	}
	return max;
}

/** Throws a one-line UserError unless `json` is a BPE tokenizer.json this runtime can hand to the library. */
export function checkTokenizerJson(json: unknown, file = 'tokenizer.json'): asserts json is Record<string, unknown> {
	const bad = (why: string): never => {
		throw new UserError(`${file}: ${why}`);
	};
	if (!isObject(json)) bad('expected a JSON object (a Hugging Face tokenizer.json)');
	const root = json as Record<string, unknown>;
	if (jsonDepth(root, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) bad(`nested deeper than ${MAX_JSON_DEPTH} levels (not a tokenizer.json)`);
	const model = root.model;
	if (!isObject(model)) bad('no "model" object');
	const m = model as Record<string, unknown>;
	if (m.type !== 'BPE') bad(typeof m.type === 'string' ? 'model.type is not "BPE" (only byte-level BPE drafters are supported)' : 'model.type missing (expected "BPE")');
	if (!isObject(m.vocab)) bad('model.vocab must be an object of token → id');
	const vocab = m.vocab as Record<string, unknown>;
	let count = 0;
	for (const key in vocab) {
		if (++count > MAX_TOKEN_ID) bad(`model.vocab has more than ${MAX_TOKEN_ID} tokens`);
		if (!isId(vocab[key])) bad(`model.vocab entry ${count} has an id that is not an integer in 0..${MAX_TOKEN_ID - 1}`);
	}
	if (count === 0) bad('model.vocab is empty');
	if (!Array.isArray(m.merges)) bad('model.merges must be a list');
	const merges = m.merges as unknown[];
	// Either every merge is "a b" or every merge is ["a", "b"] (the library picks the spelling from the first one).
	const pairs = merges.length > 0 && Array.isArray(merges[0]);
	merges.forEach((x, i) => {
		const ok = pairs
			? Array.isArray(x) && x.length === 2 && typeof x[0] === 'string' && typeof x[1] === 'string'
			: typeof x === 'string' && x.includes(' ');
		if (!ok) bad(`model.merges[${i}] is not ${pairs ? 'a pair of strings' : 'a string "a b"'} like the first merge`);
	});
	if (m.unk_token !== undefined && m.unk_token !== null && typeof m.unk_token !== 'string') bad('model.unk_token must be a string or null');
	for (const f of ['end_of_word_suffix', 'continuing_subword_suffix'] as const) {
		if (m[f] !== undefined && m[f] !== null && typeof m[f] !== 'string') bad(`model.${f} must be a string or null`);
	}
	if (root.added_tokens !== undefined && root.added_tokens !== null) {
		if (!Array.isArray(root.added_tokens)) bad('added_tokens must be a list');
		(root.added_tokens as unknown[]).forEach((t, i) => {
			if (!isObject(t) || !isId(t.id) || typeof t.content !== 'string') bad(`added_tokens[${i}] needs an integer id in 0..${MAX_TOKEN_ID - 1} and a string content`);
		});
	}
	for (const kind of Object.keys(COMPONENT_TYPES)) checkComponent(root[kind], kind, kind, 1, bad);
}

function checkComponent(node: unknown, kind: string, where: string, depth: number, bad: (why: string) => never): void {
	if (node === undefined || node === null) return;
	if (depth > MAX_COMPONENT_DEPTH) bad(`${where}: nested deeper than ${MAX_COMPONENT_DEPTH} Sequence levels`);
	if (!isObject(node)) bad(`${where} must be an object or null`);
	const n = node as Record<string, unknown>;
	if (typeof n.type !== 'string' || !COMPONENT_TYPES[kind].has(n.type)) bad(`${where} has an unknown or missing type (expected one of ${[...COMPONENT_TYPES[kind]].join(', ')})`);
	if (n.type !== 'Sequence') return;
	const field = SEQUENCE_FIELDS[kind];
	const children = n[field];
	if (!Array.isArray(children)) {
		// post_processor Sequences and some writers omit the list: the library treats it as empty for pre-tokenizers only.
		if (children === undefined && kind === 'pre_tokenizer') return;
		bad(`${where}.${field} must be a list`);
	}
	(children as unknown[]).forEach((c, i) => checkComponent(c, kind, `${where}.${field}[${i}]`, depth + 1, bad));
}

/** tokenizer.json and, when present beside it, tokenizer_config.json (a bad one is ignored, as before). */
export function readTokenizerFiles(file: string): { json: Record<string, unknown>; config: Record<string, unknown> } {
	const json = readBoundedJson(file, 'tokenizer.json', READ_CAPS.tokenizer);
	checkTokenizerJson(json, file);
	const cfgFile = nodePath.join(nodePath.dirname(file), 'tokenizer_config.json');
	let config: Record<string, unknown> = {};
	if (fs.existsSync(cfgFile)) {
		let raw: unknown;
		try {
			raw = readBoundedJson(cfgFile, 'tokenizer_config.json', READ_CAPS.config);
		} catch (e) {
			// A config that is there but unreadable (a FIFO, a device, too big) is an error; one that is not JSON
			// was ignored before and still is (it only tunes special-token handling).
			if (e instanceof UserError && !/not valid JSON|nested too deeply|not UTF-8/.test(e.message)) throw e;
			raw = {};
		}
		if (isObject(raw) && jsonDepth(raw, MAX_JSON_DEPTH) <= MAX_JSON_DEPTH) config = copyPlain(raw);
	}
	return { json, config };
}

/** A copy with only own enumerable keys on a null-free plain object, dropping `__proto__` (JSON.parse makes it own). */
function copyPlain(o: Record<string, unknown>): Record<string, unknown> {
	const out: Record<string, unknown> = {};
	for (const [k, v] of Object.entries(o)) if (k !== '__proto__' && k !== 'constructor' && k !== 'prototype') out[k] = v;
	return out;
}
