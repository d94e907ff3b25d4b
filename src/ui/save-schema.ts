// The schema of a chat save's JSON header, checked field by field before /load applies anything. Values are
// copied into fresh objects (never spread from the parsed JSON), so a `__proto__` key, an extra field or a value of
// the wrong type cannot reach the chat's settings or transcript. Transcript text goes through the same printable
// filter as live model output, so a save cannot drive the terminal (OSC titles, CSI colours).
// Every failure is one line naming the field and what was expected; field values are never quoted.
import { UserError } from '../errors.js';
import type { AcceptRule, GenerationSettings } from '../app/options.js';
import type { SavedItem } from './items.js';
import type { ModelIdentity } from './session.js';
import { printable } from './text.js';
import type { Source, Span } from './turn.js';

/** The settings a save keeps (the seed and stop strings belong to the run, not to the conversation). */
export type SavedSettings = Pick<GenerationSettings, 'temperature' | 'topP' | 'topK' | 'maxBytes' | 'draft' | 'accept'>;

export const savedSettings = ({ temperature, topP, topK, maxBytes, draft, accept }: GenerationSettings): SavedSettings =>
	({ temperature, topP, topK, maxBytes, draft, accept });

export interface SaveHeader {
	model: ModelIdentity;
	contextBytes: number;
	settings: SavedSettings;
	transcript: SavedItem[];
	stateBytes: number;
}

/** Bounds no real save comes near (a save is one conversation; the header cap bounds the rest). */
export const SAVE_LIMITS = { transcriptItems: 1_000_000, spansPerItem: 100_000, nameLength: 256, maxBytes: 1_000_000_000, topK: 65536, acceptK: 256, temperature: 100 } as const;

const SOURCES: readonly Source[] = ['user', 'model', 'draft'];

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const own = (o: Obj, k: string): unknown => (Object.prototype.hasOwnProperty.call(o, k) ? o[k] : undefined);

export function checkSaveHeader(raw: unknown, file: string): SaveHeader {
	const bad = (field: string, expected: string): never => {
		throw new UserError(`${file}: chat save field ${field} is invalid (expected ${expected})`);
	};
	const obj = (v: unknown, field: string): Obj => (isObj(v) ? v : bad(field, 'an object'));
	const int = (v: unknown, field: string, min: number, max: number): number =>
		typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max ? v : bad(field, `a whole number from ${min} to ${max}`);
	const str = (v: unknown, field: string, maxLen: number): string =>
		typeof v === 'string' && v.length <= maxLen ? v : bad(field, `a string of at most ${maxLen} characters`);

	const h = obj(raw, 'header');
	if (own(h, 'format') !== 'mambabyte-chat') throw new UserError(`${file}: not a mambabyte chat save (wrong format name)`);
	if (own(h, 'version') !== 1) throw new UserError(`${file}: chat save version is not supported (this is version 1)`);

	const m = obj(own(h, 'model'), 'model');
	const dim = (k: keyof ModelIdentity) => int(own(m, k), `model.${k}`, 1, 2 ** 31);
	const model: ModelIdentity = {
		name: str(own(m, 'name'), 'model.name', SAVE_LIMITS.nameLength),
		dModel: dim('dModel'), nLayer: dim('nLayer'), dInner: dim('dInner'), dState: dim('dState'), dConv: dim('dConv'), vocabSize: dim('vocabSize'),
	};

	const contextBytes = own(h, 'contextBytes') === undefined ? 0 : int(own(h, 'contextBytes'), 'contextBytes', 0, Number.MAX_SAFE_INTEGER);
	const settings = checkSettings(obj(own(h, 'settings'), 'settings'), bad, int);

	const t = own(h, 'transcript') ?? [];
	if (!Array.isArray(t) || t.length > SAVE_LIMITS.transcriptItems) bad('transcript', `a list of at most ${SAVE_LIMITS.transcriptItems} items`);
	const transcript = (t as unknown[]).map((x, i) => checkItem(x, `transcript[${i}]`, bad));

	const st = obj(own(h, 'state'), 'state');
	const stateBytes = int(own(st, 'bytes'), 'state.bytes', 0, Number.MAX_SAFE_INTEGER);
	return { model, contextBytes, settings, transcript, stateBytes };
}

function checkSettings(
	s: Obj,
	bad: (field: string, expected: string) => never,
	int: (v: unknown, field: string, min: number, max: number) => number,
): SavedSettings {
	const t = own(s, 'temperature');
	const temperature = typeof t === 'number' && Number.isFinite(t) && t >= 0 && t <= SAVE_LIMITS.temperature ? t : bad('settings.temperature', `a number from 0 to ${SAVE_LIMITS.temperature}`);
	const p = own(s, 'topP');
	const topP = typeof p === 'number' && p > 0 && p <= 1 ? p : bad('settings.topP', 'a number in (0, 1]');
	const topK = int(own(s, 'topK'), 'settings.topK', 0, SAVE_LIMITS.topK);
	const maxBytes = int(own(s, 'maxBytes'), 'settings.maxBytes', 1, SAVE_LIMITS.maxBytes);
	const d = own(s, 'draft');
	const draft = typeof d === 'boolean' ? d : bad('settings.draft', 'true or false');
	const a = own(s, 'accept');
	let accept: AcceptRule;
	if (isObj(a) && own(a, 'kind') === 'exact') accept = { kind: 'exact' };
	else if (isObj(a) && own(a, 'kind') === 'top') accept = { kind: 'top', k: int(own(a, 'k'), 'settings.accept.k', 1, SAVE_LIMITS.acceptK) };
	else return bad('settings.accept', '{"kind":"exact"} or {"kind":"top","k":K}');
	return { temperature, topP, topK, maxBytes, draft, accept };
}

function checkItem(x: unknown, field: string, bad: (field: string, expected: string) => never): SavedItem {
	if (!isObj(x)) return bad(field, 'an object');
	const kind = own(x, 'kind');
	if (kind === 'user') {
		const text = own(x, 'text');
		if (typeof text !== 'string') return bad(`${field}.text`, 'a string');
		return { kind: 'user', text: printable(text) };
	}
	if (kind !== 'model') return bad(`${field}.kind`, '"user" or "model"');
	const spans = own(x, 'spans');
	if (!Array.isArray(spans) || spans.length > SAVE_LIMITS.spansPerItem) return bad(`${field}.spans`, `a list of at most ${SAVE_LIMITS.spansPerItem} spans`);
	const out: Span[] = spans.map((sp, j): Span => {
		if (!isObj(sp)) return bad(`${field}.spans[${j}]`, 'an object');
		const text = own(sp, 'text');
		const source = own(sp, 'source');
		if (typeof text !== 'string') return bad(`${field}.spans[${j}].text`, 'a string');
		if (!SOURCES.includes(source as Source)) return bad(`${field}.spans[${j}].source`, '"user", "model" or "draft"');
		// One transcript item is one line on screen: a newline inside a span would break that, so it is shown as ␊.
		return { text: printable(text).replace(/\n/g, '\u240a'), source: source as Source };
	});
	return { kind: 'model', spans: out };
}
