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
//                    state: { bytes: N } }
//   zero padding to a multiple of 4 bytes from the start of the file
//   N bytes: the engine's session snapshot (an "MBSNAP1" blob: both models' recurrent states, the bytes committed
//   but not yet consumed, the UTF-8 mask state; see encodeSnapshot in src/engine/snapshot.ts). Nothing after it.
// A state loads only into the same model: name and every dimension must match (checked here from the header, and
// again by the engine).
import { readFileSync, writeFileSync } from 'node:fs';
import { UserError } from '../errors.js';
import type { SavedItem } from './items.js';
import type { ChatSettings, ModelIdentity } from './session.js';

export const MAGIC = 'MBCHAT1\n';

export interface ChatSave {
	model: ModelIdentity;
	contextBytes: number;
	settings: Omit<ChatSettings, 'seed' | 'stop'>;
	transcript: SavedItem[];
	state: Uint8Array; // the engine's snapshot, opaque here
}

export function encodeSave(s: ChatSave): Uint8Array {
	const header = new TextEncoder().encode(JSON.stringify({
		format: 'mambabyte-chat', version: 1, saved: new Date().toISOString(),
		model: s.model, contextBytes: s.contextBytes, settings: s.settings, transcript: s.transcript,
		state: { bytes: s.state.length },
	}));
	const bodyStart = Math.ceil((12 + header.length) / 4) * 4;
	const out = new Uint8Array(bodyStart + s.state.length);
	out.set(new TextEncoder().encode(MAGIC), 0);
	new DataView(out.buffer).setUint32(8, header.length, true);
	out.set(header, 12);
	out.set(s.state, bodyStart);
	return out;
}

export function decodeSave(buf: Uint8Array, file = 'file'): ChatSave {
	const bad = (why: string) => new UserError(`${file}: not a mambabyte chat save (${why})`);
	if (buf.length < 12 || new TextDecoder().decode(buf.subarray(0, 8)) !== MAGIC) throw bad('wrong magic');
	const h = new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getUint32(8, true);
	if (12 + h > buf.length) throw bad('truncated header');
	let header: {
		format?: string; version?: number; model?: ModelIdentity; contextBytes?: number;
		settings?: ChatSave['settings']; transcript?: SavedItem[]; state?: { bytes?: number };
	};
	try {
		header = JSON.parse(new TextDecoder().decode(buf.subarray(12, 12 + h)));
	} catch {
		throw bad('header is not JSON');
	}
	if (header.format !== 'mambabyte-chat') throw bad('wrong format name');
	if (header.version !== 1) throw new UserError(`${file}: chat save version ${String(header.version)} is not supported (this is version 1)`);
	const n = header.state?.bytes;
	if (!header.model || !Number.isInteger(n) || (n as number) < 0) throw bad('no state');
	const start = Math.ceil((12 + h) / 4) * 4;
	if (buf.length !== start + (n as number)) throw bad(`expected ${start + (n as number)} bytes, found ${buf.length}`);
	return {
		model: header.model,
		contextBytes: Number(header.contextBytes ?? 0),
		settings: header.settings as ChatSave['settings'],
		transcript: Array.isArray(header.transcript) ? header.transcript : [],
		state: buf.slice(start),
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
