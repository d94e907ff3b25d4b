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
import { UserError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { READ_CAPS, readBoundedFile } from '../util/read-bounded.js';
import { checkSaveHeader, type SavedSettings } from './save-schema.js';
import type { SavedItem } from './items.js';
import type { ModelIdentity } from './session.js';

export const MAGIC = 'MBCHAT1\n';

export interface ChatSave {
	model: ModelIdentity;
	contextBytes: number;
	settings: SavedSettings;
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

/** Bytes of header a save may carry (the transcript of a very long conversation is a few MB). */
export const MAX_HEADER_BYTES = 64_000_000;

export function decodeSave(buf: Uint8Array, file = 'file'): ChatSave {
	const bad = (why: string) => new UserError(`${file}: not a mambabyte chat save (${why})`);
	if (buf.length < 12 || new TextDecoder().decode(buf.subarray(0, 8)) !== MAGIC) throw bad('wrong magic');
	const h = new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getUint32(8, true);
	if (h > MAX_HEADER_BYTES) throw bad(`header over ${MAX_HEADER_BYTES} bytes`);
	if (12 + h > buf.length) throw bad('truncated header');
	let text: string;
	try {
		text = new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(12, 12 + h));
	} catch {
		throw bad('header is not UTF-8');
	}
	let raw: unknown;
	try {
		raw = JSON.parse(text);
	} catch {
		throw bad('header is not JSON');
	}
	// Every field is checked and copied into fresh objects: nothing from the file (a `__proto__` key, an extra
	// field, a wrong type) reaches the chat's state.
	const header = checkSaveHeader(raw, file);
	const start = Math.ceil((12 + h) / 4) * 4;
	if (buf.length !== start + header.stateBytes) throw bad(`expected ${start + header.stateBytes} bytes, found ${buf.length}`);
	return { model: header.model, contextBytes: header.contextBytes, settings: header.settings, transcript: header.transcript, state: new Uint8Array(buf.subarray(start)) };
}

/** Why a save does not fit this model, or null when it does. */
export function mismatch(saved: ModelIdentity, current: ModelIdentity): string | null {
	const keys: (keyof ModelIdentity)[] = ['name', 'dModel', 'nLayer', 'dInner', 'dState', 'dConv', 'vocabSize'];
	const diff = keys.filter((k) => saved[k] !== current[k]);
	if (diff.length === 0) return null;
	return `saved with model ${saved.name} (${diff.map((k) => `${k} ${saved[k]}`).join(', ')}), but this chat runs ${current.name} (${diff.map((k) => `${k} ${current[k]}`).join(', ')})`;
}

/** Write a save atomically: the previous file at `file` stays whole until the new one is complete on disk. */
export function writeSave(file: string, s: ChatSave): number {
	return writeFileAtomic(file, encodeSave(s));
}

/**
 * Read a save through the bounded reader (regular files only, a FIFO cannot block, at most `maxStateBytes` of
 * state plus the header cap) and validate it completely; nothing is applied here.
 */
export function readSave(file: string, maxStateBytes: number = READ_CAPS.chatSave): ChatSave {
	return decodeSave(readBoundedFile(file, 'a chat save', Math.min(READ_CAPS.chatSave, 16 + MAX_HEADER_BYTES + maxStateBytes)), file);
}
