// /save and /load: a chat session in one file, so a long conversation resumes instantly (the recurrent state is
// restored; no text is re-read).
//
// File format (version 1), all integers little-endian:
//   bytes 0-7    magic "MBCHAT1\n"
//   bytes 8-11   uint32 H: length of the header
//   next H bytes header: UTF-8 JSON
//                  { format: "mambabyte-chat", version: 1, saved: ISO time,
//                    model: { name, dModel, nLayer, dInner, dState, dConv, vocabSize },
//                    contextBytes, settings: { temperature, topP, topK, maxBytes, draft, accept },
//                    transcript: [ { kind: "user", text } | { kind: "model", spans: [ { text, source } ] } ],
//                    state: { meta: {...engine-defined...}, lengths: [n0, n1, ...] } }
//   zero padding to a multiple of 4 bytes from the start of the file
//   the state arrays: float32 little-endian, n0 values, then n1 values, ... (nothing after them)
// A state loads only into the same model: name and every dimension must match.
import { readFileSync, writeFileSync } from 'node:fs';
import { UserError } from '../errors.js';
import type { SavedItem } from './items.js';
import type { ChatSettings, ModelIdentity, StateBlob } from './session.js';

export const MAGIC = 'MBCHAT1\n';
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export interface ChatSave {
	model: ModelIdentity;
	contextBytes: number;
	settings: Omit<ChatSettings, 'seed' | 'stop'>;
	transcript: SavedItem[];
	state: StateBlob;
}

export function encodeSave(s: ChatSave): Uint8Array {
	const header = new TextEncoder().encode(JSON.stringify({
		format: 'mambabyte-chat', version: 1, saved: new Date().toISOString(),
		model: s.model, contextBytes: s.contextBytes, settings: s.settings, transcript: s.transcript,
		state: { meta: s.state.meta, lengths: s.state.arrays.map((a) => a.length) },
	}));
	const bodyStart = Math.ceil((12 + header.length) / 4) * 4;
	const total = bodyStart + 4 * s.state.arrays.reduce((n, a) => n + a.length, 0);
	const out = new Uint8Array(total);
	out.set(new TextEncoder().encode(MAGIC), 0);
	new DataView(out.buffer).setUint32(8, header.length, true);
	out.set(header, 12);
	let off = bodyStart;
	for (const a of s.state.arrays) {
		if (LITTLE_ENDIAN) out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), off);
		else {
			const dv = new DataView(out.buffer, off, a.byteLength);
			for (let i = 0; i < a.length; i++) dv.setFloat32(4 * i, a[i], true);
		}
		off += a.byteLength;
	}
	return out;
}

export function decodeSave(buf: Uint8Array, file = 'file'): ChatSave {
	const bad = (why: string) => new UserError(`${file}: not a mambabyte chat save (${why})`);
	if (buf.length < 12 || new TextDecoder().decode(buf.subarray(0, 8)) !== MAGIC) throw bad('wrong magic');
	const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
	const h = dv.getUint32(8, true);
	if (12 + h > buf.length) throw bad('truncated header');
	let header: {
		format?: string; version?: number; model?: ModelIdentity; contextBytes?: number;
		settings?: ChatSave['settings']; transcript?: SavedItem[]; state?: { meta?: Record<string, unknown>; lengths?: number[] };
	};
	try {
		header = JSON.parse(new TextDecoder().decode(buf.subarray(12, 12 + h)));
	} catch {
		throw bad('header is not JSON');
	}
	if (header.format !== 'mambabyte-chat') throw bad('wrong format name');
	if (header.version !== 1) throw new UserError(`${file}: chat save version ${String(header.version)} is not supported (this is version 1)`);
	const lengths = header.state?.lengths;
	if (!header.model || !Array.isArray(lengths) || !lengths.every((n) => Number.isInteger(n) && n >= 0)) throw bad('no state');
	let off = Math.ceil((12 + h) / 4) * 4;
	const need = off + 4 * lengths.reduce((n, l) => n + l, 0);
	if (buf.length !== need) throw bad(`expected ${need} bytes, found ${buf.length}`);
	const arrays = lengths.map((n) => {
		const a = new Float32Array(n);
		if (LITTLE_ENDIAN) new Uint8Array(a.buffer).set(buf.subarray(off, off + 4 * n));
		else for (let i = 0; i < n; i++) a[i] = dv.getFloat32(off + 4 * i, true);
		off += 4 * n;
		return a;
	});
	return {
		model: header.model,
		contextBytes: Number(header.contextBytes ?? 0),
		settings: header.settings as ChatSave['settings'],
		transcript: Array.isArray(header.transcript) ? header.transcript : [],
		state: { meta: header.state?.meta ?? {}, arrays },
	};
}

/** Why a save does not fit this model, or null when it does. */
export function mismatch(saved: ModelIdentity, current: ModelIdentity): string | null {
	const keys: (keyof ModelIdentity)[] = ['name', 'dModel', 'nLayer', 'dInner', 'dState', 'dConv', 'vocabSize'];
	const diff = keys.filter((k) => saved[k] !== current[k]);
	if (diff.length === 0) return null;
	return `saved with model ${saved.name} (${diff.map((k) => `${k} ${saved[k]}`).join(', ')}), but this chat runs ${current.name} (${diff.map((k) => `${k} ${current[k]}`).join(', ')})`;
}

export function writeSave(file: string, s: ChatSave): number {
	const bytes = encodeSave(s);
	try {
		writeFileSync(file, bytes);
	} catch (e) {
		throw new UserError(`${file}: cannot write (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
	}
	return bytes.length;
}

export function readSave(file: string): ChatSave {
	let buf: Uint8Array;
	try {
		buf = readFileSync(file);
	} catch (e) {
		const code = (e as NodeJS.ErrnoException).code;
		throw new UserError(`${file}: ${code === 'ENOENT' ? 'no such file' : `cannot read (${code ?? String(e)})`}`);
	}
	return decodeSave(buf, file);
}
