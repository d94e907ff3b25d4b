// Session snapshots as files (/save, /load): the byte model's and the drafter's recurrent state, the committed bytes
// not yet consumed, the last logits and the UTF-8 mask state. Layout: "MBSNAP1\n", a little-endian u32 header
// length, a JSON header, then the float arrays in order (little-endian f32).
import { MambaState } from '../model/state.js';
import type { ModelState } from '../model/types.js';
import type { DraftSnapshot } from './drafter.js';

/** Everything a Session needs to continue a conversation (Session.snapshot / restore). */
export interface SessionSnapshot {
	model: string; // checkpoint name + shape, checked on restore
	state: ModelState;
	pending: Uint8Array;
	logits: Float32Array | null;
	utf8: { need: number; lo: number; hi: number };
	draft: DraftSnapshot | null;
	promptBytes: number;
	recent?: Uint8Array; // the last context bytes, for the repeat penalty (in memory only; not in encodeSnapshot)
}


const MAGIC = new TextEncoder().encode('MBSNAP1\n');

export function encodeSnapshot(s: SessionSnapshot): Uint8Array {
	const host = (st: ModelState) => {
		if (!(st instanceof MambaState)) throw new Error('internal: encode a host snapshot (Session.hostSnapshot)');
		return st;
	};
	const state = host(s.state);
	const draftState = s.draft ? host(s.draft.state) : null;
	const arrays: Float32Array[] = [];
	const push = (a: Float32Array) => arrays.push(a) - 1;
	const header = {
		model: s.model,
		position: s.state.position,
		conv: state.conv.map(push),
		ssm: state.ssm.map(push),
		pending: Array.from(s.pending),
		logits: s.logits ? push(s.logits) : null,
		utf8: s.utf8,
		promptBytes: s.promptBytes,
		draft: s.draft
			? {
				position: s.draft.state.position,
				conv: draftState!.conv.map(push),
				ssm: draftState!.ssm.map(push),
				logits: s.draft.logits ? push(s.draft.logits) : null,
				unfed: Array.from(s.draft.unfed),
				fed: s.draft.fed,
			}
			: null,
		lengths: [] as number[],
	};
	header.lengths = arrays.map((a) => a.length);
	const json = new TextEncoder().encode(JSON.stringify(header));
	const floats = arrays.reduce((n, a) => n + a.length, 0);
	const pad = (4 - ((MAGIC.length + 4 + json.length) % 4)) % 4;
	const out = new Uint8Array(MAGIC.length + 4 + json.length + pad + floats * 4);
	out.set(MAGIC);
	new DataView(out.buffer).setUint32(MAGIC.length, json.length + pad, true);
	out.set(json, MAGIC.length + 4);
	out.fill(0x20, MAGIC.length + 4 + json.length, MAGIC.length + 4 + json.length + pad);
	let at = MAGIC.length + 4 + json.length + pad;
	const dv = new DataView(out.buffer);
	for (const a of arrays) {
		for (let i = 0; i < a.length; i++, at += 4) dv.setFloat32(at, a[i], true);
	}
	return out;
}

export function decodeSnapshot(bytes: Uint8Array): SessionSnapshot {
	for (let i = 0; i < MAGIC.length; i++) if (bytes[i] !== MAGIC[i]) throw new Error('not a mambabyte session snapshot');
	const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
	const hlen = dv.getUint32(MAGIC.length, true);
	type H = {
		model: string; position: number; conv: number[]; ssm: number[]; pending: number[]; logits: number | null;
		utf8: SessionSnapshot['utf8']; promptBytes: number; lengths: number[];
		draft: { position: number; conv: number[]; ssm: number[]; logits: number | null; unfed: number[]; fed: boolean } | null;
	};
	const h = JSON.parse(new TextDecoder().decode(bytes.subarray(MAGIC.length + 4, MAGIC.length + 4 + hlen))) as H;
	const arrays: Float32Array[] = [];
	let at = MAGIC.length + 4 + hlen;
	for (const n of h.lengths) {
		if (at + n * 4 > bytes.length) throw new Error('session snapshot is truncated');
		const a = new Float32Array(n);
		for (let i = 0; i < n; i++, at += 4) a[i] = dv.getFloat32(at, true);
		arrays.push(a);
	}
	const get = (i: number) => arrays[i];
	return {
		model: h.model,
		state: new MambaState(h.conv.map(get), h.ssm.map(get), h.position),
		pending: Uint8Array.from(h.pending),
		logits: h.logits === null ? null : get(h.logits),
		utf8: h.utf8,
		promptBytes: h.promptBytes,
		draft: h.draft
			? {
				state: new MambaState(h.draft.conv.map(get), h.draft.ssm.map(get), h.draft.position),
				logits: h.draft.logits === null ? null : get(h.draft.logits),
				unfed: Uint8Array.from(h.draft.unfed),
				fed: h.draft.fed,
			}
			: null,
	};
}

/** Give a snapshot's states back (Session.snapshot() copies them; the caller owns the copy). */
export function freeSnapshot(s: SessionSnapshot): void {
	s.state.free();
	s.draft?.state.free();
}
