// Seeded fuzz of chat saves and tokenizer.json files, run as a child of hostile-fuzz.test.ts under a heap cap and
// a time limit. Each case is a random mutation of a good file; it must either load into a well-formed value or be
// refused with one UserError line — never another exception, a hang or unbounded memory. Prints one JSON report.
import * as fs from 'node:fs';
import * as os from 'node:os';
import path from 'node:path';
import { UserError } from '../../src/errors.js';
import { ByteLevelTokenizer } from '../../src/engine/tokenizer.js';
import { rng } from '../../src/model/random.js';
import { decodeSave, encodeSave } from '../../src/ui/save.js';

const [kind, seedArg, countArg] = process.argv.slice(2);
const seed = Number(seedArg), count = Number(countArg);
const rand = rng(seed);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];

const WEIRD: unknown[] = [
	null, true, false, 0, -1, -5, 0.5, 1.5, 2 ** 31 - 1, 2 ** 53, 1e308, -1e308, '', 'hot', '\x1b]0;owned\x07', '\x1b[31m',
	'a b', [], [1, 2], [['a', 'b']], {}, { kind: 'top', k: 0 }, { kind: 'exact' }, { type: 'Sequence' }, { __proto__: null },
];
const randomValue = (): unknown => (rand() < 0.1 ? JSON.parse('{"__proto__": {"polluted": 1}}') : structuredClone(pick(WEIRD)));

/** Replace, delete or add one field somewhere in the value (a random walk from the root). */
function mutate(root: unknown): unknown {
	if (rand() < 0.05) return randomValue();
	let node = root;
	for (let depth = 0; depth < 8; depth++) {
		if (typeof node !== 'object' || node === null) break;
		const keys = Object.keys(node);
		if (keys.length === 0 || rand() < 0.25) {
			const k = keys.length && rand() < 0.5 ? pick(keys) : pick(['__proto__', 'extra', 'kind', 'spans', 'text', 'type', '0']);
			const o = node as Record<string, unknown>;
			const r = rand();
			if (r < 0.2) delete o[k];
			else Object.defineProperty(o, k, { value: randomValue(), enumerable: true, writable: true, configurable: true });
			return root;
		}
		const next = (node as Record<string, unknown>)[pick(keys)];
		if (typeof next !== 'object' || next === null) {
			const o = node as Record<string, unknown>;
			o[pick(keys)] = randomValue();
			return root;
		}
		node = next;
	}
	return root;
}

/** Byte-level damage: flip, truncate or insert bytes of the encoded file. */
function damage(bytes: Uint8Array): Uint8Array {
	const r = rand();
	if (r < 0.4) {
		const out = bytes.slice();
		for (let i = 0; i < 1 + Math.floor(rand() * 4); i++) out[Math.floor(rand() * out.length)] = Math.floor(rand() * 256);
		return out;
	}
	if (r < 0.7) return bytes.slice(0, Math.floor(rand() * bytes.length));
	const at = Math.floor(rand() * bytes.length);
	return Uint8Array.from([...bytes.subarray(0, at), ...Array.from({ length: 8 }, () => Math.floor(rand() * 256)), ...bytes.subarray(at)]);
}

const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

function checkSave(s: ReturnType<typeof decodeSave>): string | null {
	const st = s.settings;
	if (!(Number.isFinite(st.temperature) && st.temperature >= 0)) return 'temperature';
	if (!(st.topP > 0 && st.topP <= 1)) return 'topP';
	if (!(Number.isInteger(st.topK) && st.topK >= 0)) return 'topK';
	if (!(Number.isInteger(st.maxBytes) && st.maxBytes >= 1)) return 'maxBytes';
	if (typeof st.draft !== 'boolean') return 'draft';
	if (!(st.accept.kind === 'exact' || (st.accept.kind === 'top' && st.accept.k >= 1))) return 'accept';
	if (Object.keys(st).length !== 6) return 'extra settings keys';
	for (const t of s.transcript) {
		if (t.kind === 'user') {
			if (typeof t.text !== 'string' || CONTROL.test(t.text)) return 'user text';
		} else if (t.kind === 'model') {
			if (!Array.isArray(t.spans) || t.spans.some((x) => typeof x.text !== 'string' || CONTROL.test(x.text) || !['user', 'model', 'draft'].includes(x.source))) return 'spans';
		} else return 'item kind';
	}
	if (({} as Record<string, unknown>).polluted !== undefined) return 'prototype polluted';
	return null;
}

const goodSave = () => encodeSave({
	model: { name: 'fuzz', dModel: 8, nLayer: 2, dInner: 16, dState: 4, dConv: 4, vocabSize: 256 },
	contextBytes: 12,
	settings: { temperature: 0.7, topP: 0.9, topK: 4, maxBytes: 64, draft: true, accept: { kind: 'top', k: 3 } },
	transcript: [{ kind: 'user', text: 'hello' }, { kind: 'model', spans: [{ text: ' there', source: 'model' }, { text: ' you', source: 'draft' }] }],
	state: Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]),
});

function headerOf(bytes: Uint8Array): { json: unknown; state: Uint8Array } {
	const h = new DataView(bytes.buffer, bytes.byteOffset).getUint32(8, true);
	return { json: JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + h))), state: bytes.slice(Math.ceil((12 + h) / 4) * 4) };
}
function withHeader(json: unknown, state: Uint8Array): Uint8Array {
	const text = new TextEncoder().encode(JSON.stringify(json) ?? 'null');
	const start = Math.ceil((12 + text.length) / 4) * 4;
	const out = new Uint8Array(start + state.length);
	out.set(new TextEncoder().encode('MBCHAT1\n'));
	new DataView(out.buffer).setUint32(8, text.length, true);
	out.set(text, 12);
	out.set(state, start);
	return out;
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mambabyte-fuzz-'));
const tokBase = fs.readFileSync(path.resolve('test/fixtures/tiny-drafter/tokenizer.json'), 'utf8');
const save0 = goodSave();
let handled = 0, loaded = 0, maxCaseMs = 0, maxHeapMb = 0;
const failures: string[] = [];
try {
	for (let i = 0; i < count; i++) {
		const t0 = performance.now();
		try {
			if (kind === 'save') {
				let bytes: Uint8Array;
				if (rand() < 0.25) bytes = damage(save0);
				else {
					const { json, state } = headerOf(save0);
					let j = json;
					for (let m = 0; m < 1 + Math.floor(rand() * 3); m++) j = mutate(j);
					bytes = withHeader(j, state);
				}
				const why = checkSave(decodeSave(bytes, 'fuzz.mbchat'));
				if (why) throw new Error(`accepted a bad save (${why})`);
			} else {
				let text: string;
				if (rand() < 0.2) text = Buffer.from(damage(Buffer.from(tokBase))).toString('utf8');
				else {
					let j: unknown = JSON.parse(tokBase);
					for (let m = 0; m < 1 + Math.floor(rand() * 3); m++) j = mutate(j);
					text = JSON.stringify(j) ?? 'null';
				}
				const file = path.join(dir, 'tokenizer.json');
				fs.writeFileSync(file, text);
				const tok = ByteLevelTokenizer.load(file);
				const bytes = new TextEncoder().encode('hello world, hello fuzz');
				const pieces = tok.tokenize(bytes);
				if (pieces.reduce((n, p) => n + p.length, 0) !== bytes.length) throw new Error('tokenization lost bytes');
			}
			loaded++;
			handled++;
		} catch (e) {
			if (e instanceof UserError && !e.message.includes('\n')) handled++;
			else failures.push(`case ${i}: ${e instanceof Error ? `${e.name}: ${e.message.split('\n')[0]}` : String(e)}`.slice(0, 300));
		}
		maxCaseMs = Math.max(maxCaseMs, performance.now() - t0);
		maxHeapMb = Math.max(maxHeapMb, process.memoryUsage().heapUsed / 2 ** 20);
	}
} finally {
	fs.rmSync(dir, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify({ kind, seed, tried: count, handled, loaded, maxCaseMs, maxHeapMb, failures: failures.slice(0, 10) }) + '\n');
