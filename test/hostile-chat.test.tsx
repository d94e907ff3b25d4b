// Issue 17, kinds 4-6: hostile chat saves. Each is refused with one line before anything is applied; the chat
// keeps working (a later good /load and turn behave normally); a refused snapshot leaves the live engine state
// exactly as it was; transcript text cannot drive the terminal; /save never leaves a truncated file.
import chalk from 'chalk';
import { render } from 'ink-testing-library';
import * as fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generationOptions } from '../src/cli/options.js';
import { ChatApp, initialSettings } from '../src/ui/chat.js';
import { openChatSession } from '../src/ui/engine-session.js';
import { decodeSave, encodeSave, MAGIC, readSave, writeSave, type ChatSave } from '../src/ui/save.js';
import { settingsWith, type GenerationSettings } from '../src/app/options.js';
import type { ChatSession } from '../src/ui/session.js';
import { writeFileAtomic } from '../src/util/atomic-write.js';
import { removeTempDirs, tempDir, TINY, userError, userErrorAsync } from './helpers/hostile.js';
import { commit, done, FakeSession, settle, settleUntil } from './ui-fakes.js';

test.after(removeTempDirs);

const settings: GenerationSettings = settingsWith({ temperature: 0.8, topP: 1, topK: 0, maxBytes: 64, seed: 1, stop: [], draft: false, accept: { kind: 'exact' } });
const identity = { name: 'tiny-test', dModel: 8, nLayer: 2, dInner: 16, dState: 4, dConv: 4, vocabSize: 256 };
const goodHeader = () => ({
	format: 'mambabyte-chat', version: 1, saved: 'x', model: { ...identity }, contextBytes: 30,
	settings: { temperature: 0.5, topP: 0.9, topK: 5, maxBytes: 32, draft: false, accept: { kind: 'top', k: 3 } },
	transcript: [{ kind: 'user', text: 'It was' }, { kind: 'model', spans: [{ text: ' a dark night', source: 'model' }] }],
	state: { bytes: 8 },
});
const STATE = Uint8Array.from([30, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef]);

/** A save file from a raw header object (any JSON) and state bytes, laid out as encodeSave does. */
export function rawSave(header: unknown, state: Uint8Array = STATE): Uint8Array {
	const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
	const start = Math.ceil((12 + json.length) / 4) * 4;
	const out = new Uint8Array(start + state.length);
	out.set(new TextEncoder().encode(MAGIC));
	new DataView(out.buffer).setUint32(8, json.length, true);
	out.set(json, 12);
	out.set(state, start);
	return out;
}

function mount(session: ChatSession) {
	const r = render(<ChatApp session={session} settings={settings} intervalMs={0} />);
	const line = async (text: string) => {
		r.stdin.write(text);
		await settle();
		r.stdin.write('\r');
		await settle();
		await settle();
	};
	return { ...r, line, frame: () => r.lastFrame() ?? '' };
}

const edit = (f: (h: ReturnType<typeof goodHeader>) => unknown) => {
	const h = goodHeader();
	const out = f(h);
	return out === undefined ? h : out;
};

/** The hostile saves of the issue (and neighbours), each with the field its message must name. */
export const HOSTILE_SAVES: [string, unknown, RegExp][] = [
	['model item without spans', edit((h) => void (h.transcript[1] = { kind: 'model' } as never)), /transcript\[1\]\.spans/],
	['spans a string', edit((h) => void ((h.transcript[1] as Record<string, unknown>).spans = 'abc')), /transcript\[1\]\.spans/],
	['user text an object', edit((h) => void ((h.transcript[0] as Record<string, unknown>).text = { a: 1 })), /transcript\[0\]\.text/],
	['span text a number', edit((h) => void (((h.transcript[1] as { spans: unknown[] }).spans[0] as Record<string, unknown>).text = 5)), /spans\[0\]\.text/],
	['span source unknown', edit((h) => void (((h.transcript[1] as { spans: unknown[] }).spans[0] as Record<string, unknown>).source = 'evil')), /spans\[0\]\.source/],
	['transcript item null', edit((h) => void (h.transcript[0] = null as never)), /transcript\[0\]/],
	['transcript not a list', edit((h) => void ((h as Record<string, unknown>).transcript = { 0: 1 })), /transcript/],
	['accept null', edit((h) => void ((h.settings as Record<string, unknown>).accept = null)), /settings\.accept/],
	['accept top:0', edit((h) => void (h.settings.accept = { kind: 'top', k: 0 })), /settings\.accept\.k/],
	['accept unknown kind', edit((h) => void (h.settings.accept = { kind: 'all' } as never)), /settings\.accept/],
	['temperature "hot"', edit((h) => void ((h.settings as Record<string, unknown>).temperature = 'hot')), /settings\.temperature/],
	['temperature -1', edit((h) => void (h.settings.temperature = -1)), /settings\.temperature/],
	['temperature 1e308*10 (null in JSON)', edit((h) => void ((h.settings as Record<string, unknown>).temperature = null)), /settings\.temperature/],
	['top-p -1', edit((h) => void (h.settings.topP = -1)), /settings\.topP/],
	['top-p 0', edit((h) => void (h.settings.topP = 0)), /settings\.topP/],
	['top-p 1.5', edit((h) => void (h.settings.topP = 1.5)), /settings\.topP/],
	['top-k 2.5', edit((h) => void (h.settings.topK = 2.5)), /settings\.topK/],
	['maxBytes -5', edit((h) => void (h.settings.maxBytes = -5)), /settings\.maxBytes/],
	['maxBytes 0', edit((h) => void (h.settings.maxBytes = 0)), /settings\.maxBytes/],
	['draft "yes"', edit((h) => void ((h.settings as Record<string, unknown>).draft = 'yes')), /settings\.draft/],
	['settings missing', edit((h) => void delete (h as Partial<typeof h>).settings), /settings/],
	['settings an array', edit((h) => void ((h as Record<string, unknown>).settings = [])), /settings/],
	['model name an object', edit((h) => void ((h.model as Record<string, unknown>).name = {})), /model\.name/],
	['model dimension negative', edit((h) => void (h.model.dModel = -8)), /model\.dModel/],
	['contextBytes a string', edit((h) => void ((h as Record<string, unknown>).contextBytes = '30')), /contextBytes/],
	['state bytes missing', edit((h) => void ((h as Record<string, unknown>).state = {})), /state\.bytes/],
	['header null', null, /header/],
	['header a list', [], /header/],
	['version 2', edit((h) => void (h.version = 2)), /version is not supported/],
	['format wrong', edit((h) => void (h.format = 'other')), /wrong format name/],
];

test('every hostile save header is refused with one line naming the field', () => {
	for (const [name, header, field] of HOSTILE_SAVES) {
		const m = userError(() => decodeSave(rawSave(header), 'talk.mbchat'), field);
		assert.match(m, /^talk\.mbchat: /, name);
	}
	userError(() => decodeSave(rawSave('{"format": '), 'f'), /header is not JSON/);
	userError(() => decodeSave(rawSave(goodHeader()).subarray(0, 20), 'f'), /truncated header/);
	userError(() => decodeSave(rawSave(goodHeader(), new Uint8Array(3)), 'f'), /expected .* bytes, found/);
});

test('__proto__ and extra keys in a save are dropped, never applied', () => {
	const text = JSON.stringify(goodHeader())
		.replace('"temperature"', '"__proto__":{"polluted":1},"extra":2,"temperature"')
		.replace('"kind":"top"', '"__proto__":{"k":9},"kind":"top"');
	const s = decodeSave(rawSave(text), 'f');
	assert.equal(Object.keys(s.settings).sort(), ['accept', 'draft', 'maxBytes', 'temperature', 'topK', 'topP']);
	assert.is(Object.getPrototypeOf(s.settings), Object.prototype);
	assert.is(({} as Record<string, unknown>).polluted, undefined);
	assert.equal(s.settings.accept, { kind: 'top', k: 3 });
});

test('transcript text passes the printable filter: OSC titles and CSI colours become control pictures', () => {
	const h = goodHeader();
	h.transcript = [{ kind: 'user', text: 'hi\x1b]0;owned\x07' }, { kind: 'model', spans: [{ text: '\x1b[31mred\x9b\nnext', source: 'model' }] }];
	const s = decodeSave(rawSave(h), 'f');
	const all = JSON.stringify(s.transcript);
	assert.not.match(all, /\\u001b|\\u0007|\\u009b/);
	assert.match(all, '␛]0;owned␇');
	assert.match(all, '␛[31mred\ufffd␊next');
});

test('the chat survives every hostile save: one error line each, then a good /load and a turn work', async () => {
	chalk.level = 0;
	const dir = tempDir('chat');
	const s = new FakeSession(() => [commit(' and on'), done()]);
	const app = mount(s);
	for (const [i, [name, header, field]] of HOSTILE_SAVES.entries()) {
		const base = `bad-${i}.mbchat`; // a name of its own, so that its error line is told from the one before
		const file = path.join(dir, base);
		fs.writeFileSync(file, rawSave(header));
		await app.line(`/load ${file}`);
		// its error line, wrapped lines joined: where the frame wraps depends on how long the temporary path is
		const lineOf = () => {
			const frame = app.frame().replace(/ *\n */g, ' ');
			const at = frame.lastIndexOf(base);
			return at < 0 ? '' : frame.slice(at);
		};
		await settleUntil(() => lineOf() !== '');
		assert.match(lineOf(), field, name);
		assert.is(s.imported, null, `${name}: state imported from a refused save`);
	}
	const osc = goodHeader();
	osc.transcript = [{ kind: 'user', text: 'title\x1b]0;owned\x07' }];
	fs.writeFileSync(path.join(dir, 'good.mbchat'), rawSave(osc));
	await app.line(`/load ${path.join(dir, 'good.mbchat')}`);
	assert.ok(s.imported);
	assert.match(app.frame(), 'loaded');
	assert.not.match(app.frame(), '\x1b]0;');
	await app.line('more');
	await s.whenDone(1);
	await settle();
	assert.match(app.frame(), 'and on');
	assert.equal(s.settingsSeen.at(-1)?.accept, { kind: 'top', k: 3 }); // the good save's settings apply
	app.unmount();
});

// ---- the real engine: a refused snapshot leaves the live state as it was ----

type Snap = { header: Record<string, unknown>; floats: Float32Array };
function parseSnap(bytes: Uint8Array): Snap {
	const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
	const hlen = dv.getUint32(8, true);
	const header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + hlen)));
	const floats = new Float32Array(bytes.slice(12 + hlen).buffer);
	return { header, floats };
}
function encodeSnap(s: Snap, headerText = JSON.stringify(s.header)): Uint8Array {
	const json = new TextEncoder().encode(headerText);
	const out = new Uint8Array(12 + json.length + s.floats.length * 4);
	out.set(new TextEncoder().encode('MBSNAP1\n'));
	new DataView(out.buffer).setUint32(8, json.length, true);
	out.set(json, 12);
	out.set(new Uint8Array(s.floats.buffer, s.floats.byteOffset, s.floats.byteLength), 12 + json.length);
	return out;
}

async function continuation(s: ChatSession, st: GenerationSettings): Promise<string> {
	let out = '';
	for await (const e of s.generate(st, new AbortController().signal)) if (e.type === 'commit') out += Buffer.from(e.bytes).toString('latin1');
	return out;
}

test('hostile snapshots are refused before any layer is touched (lengths, NaN/Inf, position, utf8 __proto__)', async () => {
	const opts = generationOptions({ model: TINY, backend: 'cpu', draft: false, maxBytes: '16', seed: '3', temperature: '0' });
	const s = await openChatSession(opts);
	const st = initialSettings(opts, null);
	await s.append(new TextEncoder().encode('Once upon a time'));
	const good = await s.exportState();
	const expected = await continuation(s, st);
	const base = parseSnap(good);
	const lengths = base.header.lengths as number[];
	const convIdx = base.header.conv as number[];
	const cases: [string, Uint8Array, RegExp][] = [];
	const mutate = (name: string, f: (s: Snap) => void, why: RegExp, text?: (h: string) => string) => {
		const c = { header: structuredClone(base.header), floats: base.floats.slice() };
		f(c);
		cases.push([name, encodeSnap(c, text ? text(JSON.stringify(c.header)) : undefined), why]);
	};
	const last = convIdx.length - 1;
	mutate('last layer\'s conv state one value short', (c) => {
		const at = (c.header.conv as number[])[last];
		(c.header.lengths as number[])[at] = lengths[at] - 1;
		c.floats = c.floats.slice(0, c.floats.length - 1); // keep the file self-consistent: only the shape is wrong
	}, /has \d+ values, this model needs/);
	mutate('one layer too few', (c) => void (c.header.conv as number[]).pop(), /must list \d+ layers/);
	mutate('NaN in the last layer', (c) => {
		let off = 0;
		for (let i = 0; i < (c.header.ssm as number[])[last]; i++) off += lengths[i];
		c.floats[off + 2] = NaN;
	}, /non-finite/);
	mutate('Infinity in logits', (c) => {
		let off = 0;
		for (let i = 0; i < (c.header.logits as number); i++) off += lengths[i];
		c.floats[off] = Infinity;
	}, /state\.logits holds a non-finite/);
	mutate('negative position', (c) => void (c.header.position = -4), /position must be a non-negative/);
	mutate('fractional position', (c) => void (c.header.position = 1.5), /position/);
	mutate('utf8 __proto__', () => {}, /utf8/, (t) => t.replace(/"utf8":\{[^}]*\}/, '"utf8":{"__proto__":{}}'));
	mutate('pending not bytes', (c) => void (c.header.pending = [300]), /pending/);
	mutate('array used twice', (c) => void ((c.header.ssm as number[])[0] = (c.header.conv as number[])[0]), /used twice|values, this model/);
	mutate('lengths missing', (c) => void delete c.header.lengths, /lengths/);
	mutate('header not JSON', () => {}, /not JSON/, () => '{');
	cases.push(['not a snapshot', new Uint8Array(40), /not a mambabyte session snapshot/]);
	for (const [name, bytes, why] of cases) {
		const m = await userErrorAsync(() => s.importState(bytes), why);
		assert.match(m, /^cannot restore the saved state: /, name);
	}
	// After all of that the live state is the one before: restore the good state and continue identically.
	await s.importState(good);
	assert.is(await continuation(s, st), expected);
	// And a refused load right before generating does not change what is generated.
	await s.importState(good);
	await userErrorAsync(() => s.importState(cases[0][1]), /values/);
	assert.is(await continuation(s, st), expected);
});

// ---- /save and atomic replacement ----

test('/save replaces atomically: a failing write leaves the previous save whole and no temporary file', () => {
	const dir = tempDir('save');
	const file = path.join(dir, 'talk.mbchat');
	const save: ChatSave = { model: identity, contextBytes: 30, settings: { temperature: 0.5, topP: 1, topK: 0, maxBytes: 8, draft: false, accept: { kind: 'exact' } }, transcript: [], state: STATE };
	writeSave(file, save);
	const before = fs.readFileSync(file);
	function* failing() {
		yield new Uint8Array(100);
		throw Object.assign(new Error('no space'), { code: 'ENOSPC' });
	}
	assert.throws(() => writeFileAtomic(file, failing()));
	assert.equal(fs.readFileSync(file), before);
	assert.equal(fs.readdirSync(dir), ['talk.mbchat']);
	// A symlink planted at the target is replaced, never written through.
	const victim = path.join(dir, 'victim');
	fs.writeFileSync(victim, 'keep');
	fs.rmSync(file);
	fs.symlinkSync(victim, file);
	writeSave(file, save);
	assert.is(fs.readFileSync(victim, 'utf8'), 'keep');
	assert.ok(!fs.lstatSync(file).isSymbolicLink());
	assert.equal(readSave(file).state, STATE);
	// A folder that does not exist, or a target that is a folder: one line, nothing left behind.
	userError(() => writeSave(path.join(dir, 'no', 'x.mbchat'), save), /cannot write: file not found/);
	fs.mkdirSync(path.join(dir, 'sub'));
	userError(() => writeSave(path.join(dir, 'sub'), save), /sub: cannot write: /);
	assert.equal(fs.readdirSync(dir).sort(), ['sub', 'talk.mbchat', 'victim']);
	assert.equal(decodeSave(encodeSave(save)).settings, save.settings);
});

test.run();
