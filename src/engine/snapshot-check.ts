// A session snapshot from a file (/load) checked completely before Session.restore touches anything, so a refused
// load leaves the live state as it was: the header's structure, every array of exactly the length this model's
// state needs (a shorter array would otherwise copy a prefix; a longer one would throw after earlier layers were
// overwritten), every value finite, positions non-negative integers, the UTF-8 automaton's fields in range.
// The snapshot is then rebuilt from the checked fields only (no object from the file is assigned onto live state).
import { UserError } from '../errors.js';
import { MambaState } from '../model/state.js';
import type { MambaConfig } from '../model/types.js';
import { decodeSnapshot, type SessionSnapshot } from './snapshot.js';

/** Bytes committed but not consumed that a snapshot may carry (a session flushes them every 1024 bytes). */
const MAX_PENDING = 1 << 20;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const own = (o: Obj, k: string): unknown => (Object.prototype.hasOwnProperty.call(o, k) ? o[k] : undefined);

interface SnapshotShapes {
	model: MambaConfig;
	drafter: MambaConfig | null;
}

/** decodeSnapshot of bytes from a file, with every field checked against the shapes the live session has. */
export function decodeCheckedSnapshot(bytes: Uint8Array, shapes: SnapshotShapes): SessionSnapshot {
	const bad = (why: string): never => {
		throw new UserError(`saved state: ${why}`);
	};
	const magic = 'MBSNAP1\n';
	if (bytes.length < magic.length + 4 || new TextDecoder().decode(bytes.subarray(0, magic.length)) !== magic) bad('not a mambabyte session snapshot');
	const hlen = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(magic.length, true);
	if (magic.length + 4 + hlen > bytes.length) bad('header runs past the end');
	let h: unknown;
	try {
		h = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(magic.length + 4, magic.length + 4 + hlen)));
	} catch {
		bad('header is not JSON');
	}
	if (!isObj(h)) return bad('header is not an object');
	const lengths = own(h, 'lengths');
	if (!Array.isArray(lengths) || !lengths.every((n) => Number.isSafeInteger(n) && n >= 0)) return bad('lengths must be a list of whole numbers');
	const floats = lengths.reduce((a: number, n: number) => a + n, 0);
	if (magic.length + 4 + hlen + floats * 4 !== bytes.length) bad(`expected ${floats} floats after the header, found ${(bytes.length - magic.length - 4 - hlen) / 4}`);
	const used = new Set<number>();
	const ref = (v: unknown, field: string, length: number): void => {
		if (!Number.isSafeInteger(v) || (v as number) < 0 || (v as number) >= lengths.length) bad(`${field} does not name an array`);
		if (used.has(v as number)) bad(`${field} names an array used twice`);
		used.add(v as number);
		if (lengths[v as number] !== length) bad(`${field} has ${lengths[v as number]} values, this model needs ${length}`);
	};
	const state = (o: unknown, field: string, c: MambaConfig): void => {
		if (!isObj(o)) return bad(`${field} is missing`);
		const pos = own(o, 'position');
		if (!Number.isSafeInteger(pos) || (pos as number) < 0) bad(`${field}.position must be a non-negative whole number`);
		for (const [k, len] of [['conv', c.dInner * (c.dConv - 1)], ['ssm', c.dInner * c.dState]] as const) {
			const list = own(o, k);
			if (!Array.isArray(list) || list.length !== c.nLayer) bad(`${field}.${k} must list ${c.nLayer} layers`);
			(list as unknown[]).forEach((v, l) => ref(v, `${field}.${k}[${l}]`, len));
		}
		const logits = own(o, 'logits');
		if (logits !== null) ref(logits, `${field}.logits`, c.vocabSize);
	};
	const byteList = (v: unknown, field: string): void => {
		if (!Array.isArray(v) || v.length > MAX_PENDING || !v.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)) bad(`${field} must be a list of bytes`);
	};
	state(h, 'state', shapes.model);
	if (own(h, 'model') === undefined || typeof own(h, 'model') !== 'string') bad('model must be a string');
	byteList(own(h, 'pending'), 'pending');
	const u = own(h, 'utf8');
	if (!isObj(u)) return bad('utf8 is missing');
	const need = own(u, 'need'), lo = own(u, 'lo'), hi = own(u, 'hi');
	const inRange = (v: unknown, a: number, b: number) => Number.isInteger(v) && (v as number) >= a && (v as number) <= b;
	if (!inRange(need, 0, 3) || !inRange(lo, 0x80, 0xbf) || !inRange(hi, 0x80, 0xbf) || (lo as number) > (hi as number)) bad('utf8 must be {need 0-3, lo and hi in 0x80-0xbf}');
	const pb = own(h, 'promptBytes');
	if (!Number.isSafeInteger(pb) || (pb as number) < 0) bad('promptBytes must be a non-negative whole number');
	const d = own(h, 'draft');
	if (d !== null && d !== undefined) {
		if (shapes.drafter) state(d, 'draft', shapes.drafter);
		if (!isObj(d)) return bad('draft must be an object or null');
		byteList(own(d, 'unfed'), 'draft.unfed');
		if (typeof own(d, 'fed') !== 'boolean') bad('draft.fed must be true or false');
	}

	const snap = decodeSnapshot(bytes);
	const finite = (a: Float32Array | null, field: string) => {
		if (a) for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) bad(`${field} holds a non-finite value at index ${i}`);
	};
	const finiteState = (s: MambaState, field: string) => {
		s.conv.forEach((a, l) => finite(a, `${field}.conv[${l}]`));
		s.ssm.forEach((a, l) => finite(a, `${field}.ssm[${l}]`));
	};
	finiteState(snap.state as MambaState, 'state');
	finite(snap.logits, 'state.logits');
	const draft = shapes.drafter && snap.draft ? snap.draft : null;
	if (draft) {
		finiteState(draft.state as MambaState, 'draft');
		finite(draft.logits, 'draft.logits');
	}
	// Rebuilt from checked values: fresh objects, no key from the file (a `__proto__`) carried along.
	return {
		model: snap.model,
		state: snap.state,
		pending: snap.pending,
		logits: snap.logits,
		utf8: { need: need as number, lo: lo as number, hi: hi as number },
		promptBytes: pb as number,
		draft: draft ? { state: draft.state, logits: draft.logits, unfed: draft.unfed, fed: draft.fed } : null,
	};
}
