// The UI's plain parts: UTF-8 streaming, the live-turn buffer, the line editor, /commands, the save format, numbers.
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpDir } from './helpers/checkpoint-fixtures.js';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseLine } from '../src/ui/commands.js';
import { initialSettings } from '../src/ui/chat.js';
import { DEFAULT_DRAFT } from '../src/app/sources.js';
import { generationOptions } from '../src/cli/options.js';
import { fixed, formatBytes, formatDuration, formatPercent, formatRate } from '../src/ui/format.js';
import { editLine, emptyEditor, type EditorState, type KeyLike } from '../src/ui/line-editor.js';
import { decodeSave, encodeSave, mismatch, readSave, writeSave, type ChatSave } from '../src/ui/save.js';
import { incompleteTail, printable, Utf8Stream } from '../src/ui/text.js';
import { applyColorEnv } from '../src/ui/theme.js';
import chalk from 'chalk';
import { spansText, TurnBuffer } from '../src/ui/turn.js';
import { commit, done, draft, genStats, reject, tinyModel } from './ui-fakes.js';

const enc = new TextEncoder();

test('incompleteTail finds an unfinished character at the end', () => {
	assert.is(incompleteTail(enc.encode('abc')), 0);
	const euro = enc.encode('€'); // e2 82 ac
	assert.is(incompleteTail(euro.subarray(0, 1)), 1);
	assert.is(incompleteTail(euro.subarray(0, 2)), 2);
	assert.is(incompleteTail(euro), 0);
	const smile = enc.encode('a🙂'); // 61 f0 9f 99 82
	assert.is(incompleteTail(smile.subarray(0, 4)), 3);
	assert.is(incompleteTail(Uint8Array.from([0x80, 0x80])), 0); // stray continuations: nothing to wait for
});

test('Utf8Stream fed one byte at a time never shows half a character', () => {
	const text = 'héllo — 世界 🙂!';
	const bytes = enc.encode(text);
	const s = new Utf8Stream();
	let out = '';
	for (const b of bytes) {
		const piece = s.push(Uint8Array.of(b));
		assert.not.match(piece, /\ufffd/);
		out += piece;
		assert.ok(text.startsWith(out), `prefix ${JSON.stringify(out)}`);
	}
	assert.is(out + s.flush(), text);
});

test('Utf8Stream shows invalid bytes as U+FFFD and flushes an unfinished character as one', () => {
	const s = new Utf8Stream();
	assert.is(s.push(Uint8Array.of(0x41, 0xff, 0x42)), 'A\ufffdB');
	assert.is(s.push(Uint8Array.of(0xf0, 0x9f)), '');
	assert.is(s.pending, 2);
	assert.is(s.flush(), '\ufffd');
});

test('Utf8Stream.peek previews drafted bytes without consuming, complete characters only', () => {
	const s = new Utf8Stream();
	const dash = enc.encode('—'); // e2 80 94
	assert.is(s.push(dash.subarray(0, 1)), '');
	assert.is(s.peek(dash.subarray(1, 2)), ''); // still unfinished
	assert.is(s.peek(Uint8Array.from([...dash.subarray(1), 0x41])), '—A');
	assert.is(s.push(dash.subarray(1)), '—');
	assert.is(s.peek(new Uint8Array(0)), '');
});

test('printable shows control bytes as pictures (a model cannot drive the terminal)', () => {
	assert.is(printable('a\x1b[2Jb\r\x07\tc\nd'), 'a\u241b[2Jb\u240d\u2407    c\nd');
	assert.is(printable('\x7f\u0085'), '\u2421\ufffd');
});

test('TurnBuffer: drafts are pending until committed or rejected; sources kept apart', () => {
	const t = new TurnBuffer();
	t.apply(commit('It '));
	t.apply(draft('was a dark'));
	assert.is(t.view().draft, 'was a dark');
	assert.equal(t.view().line, [{ text: 'It ', source: 'model' }]);
	t.apply(commit('was a ', 'draft'));
	t.apply(reject(4));
	assert.is(t.view().draft, '');
	t.apply(commit('stormy'));
	assert.equal(t.view().line, [
		{ text: 'It ', source: 'model' },
		{ text: 'was a ', source: 'draft' },
		{ text: 'stormy', source: 'model' },
	]);
	assert.is(t.view().generated, 15);
	t.apply(draft(' night'));
	t.apply(done(genStats({ generatedBytes: 15 })));
	assert.is(t.view().draft, '', 'done drops any leftover draft');
	assert.is(t.view().stats?.generatedBytes, 15);
	assert.is(t.doneReason, 'max-bytes');
});

test('TurnBuffer: a draft splitting a character shows only whole characters', () => {
	const t = new TurnBuffer();
	const b = enc.encode('né');
	t.apply(commit(b.subarray(0, 2))); // 'n' + first byte of é
	assert.is(spansText(t.view().line), 'n');
	t.apply(draft(b.subarray(2)));
	assert.is(t.view().draft, 'é');
	t.apply(commit(b.subarray(2), 'draft'));
	assert.equal(t.view().line, [{ text: 'n', source: 'model' }, { text: 'é', source: 'draft' }]);
});

test('TurnBuffer: finished lines leave through takeLines; long lines wrap at a space; finish flushes', () => {
	const t = new TurnBuffer(20);
	t.apply(commit('one\ntwo\n\nthree'));
	assert.equal(t.takeLines().map(spansText), ['one', 'two', '']);
	assert.is(spansText(t.view().line), 'three');
	t.apply(commit(' four five six seven eight nine'));
	const wrapped = t.takeLines().map(spansText);
	assert.ok(wrapped.length >= 1);
	for (const l of wrapped) assert.ok(l.length <= 20, l);
	assert.is(wrapped.join('') + spansText(t.view().line), 'three four five six seven eight nine');
	const rest = t.finish().map(spansText);
	assert.is(wrapped.join('') + rest.join(''), 'three four five six seven eight nine');
	assert.equal(t.view().line, []);
});

test('TurnBuffer: escape bytes from the model are shown as pictures', () => {
	const t = new TurnBuffer();
	t.apply(commit('\x1b[31mred'));
	assert.is(spansText(t.view().line), '\u241b[31mred');
});

const keys = (s: EditorState, ...seq: [string, KeyLike?][]) => {
	let submitted: string | undefined;
	for (const [input, key] of seq) {
		const r = editLine(s, input, key ?? {});
		s = r.state;
		if (r.submit !== undefined) submitted = r.submit;
	}
	return { s, submitted };
};

test('line editor: type, move, erase, submit', () => {
	let { s, submitted } = keys(emptyEditor(), ['helo'], ['', { leftArrow: true }], ['l'], ['', { end: true }], [' wrld'],
		['', { leftArrow: true }], ['', { leftArrow: true }], ['', { leftArrow: true }], ['o']);
	assert.is(s.value, 'hello world');
	assert.is(submitted, undefined);
	({ s } = keys(s, ['', { delete: true }], ['', { backspace: true }]));
	assert.is(s.value, 'hello  rld'.replace('  ', ' '));
	({ s, submitted } = keys(s, ['', { return: true }]));
	assert.is(submitted, 'hello rld');
	assert.is(s.value, '');
	assert.equal(s.history, ['hello rld']);
});

test('line editor: history up/down keeps the line being typed', () => {
	let s = emptyEditor(['first', 'second']);
	({ s } = keys(s, ['new']));
	({ s } = keys(s, ['', { upArrow: true }]));
	assert.is(s.value, 'second');
	({ s } = keys(s, ['', { upArrow: true }], ['', { upArrow: true }]));
	assert.is(s.value, 'first');
	({ s } = keys(s, ['', { downArrow: true }], ['', { downArrow: true }]));
	assert.is(s.value, 'new');
	({ s } = keys(s, ['', { downArrow: true }]));
	assert.is(s.value, 'new');
});

test('line editor: Ctrl-W, Ctrl-U, surrogate pairs, pasted line breaks', () => {
	let { s } = keys(emptyEditor(), ['a 🙂'], ['', { backspace: true }]);
	assert.is(s.value, 'a ');
	({ s } = keys(s, ['x🙂y'], ['', { leftArrow: true }], ['', { leftArrow: true }]));
	assert.is(s.cursor, 3);
	({ s } = keys(emptyEditor(), ['one two three'], ['w', { ctrl: true }]));
	assert.is(s.value, 'one two ');
	({ s } = keys(s, ['u', { ctrl: true }]));
	assert.is(s.value, '');
	({ s } = keys(emptyEditor(), ['a\r\nb\x07c']));
	assert.is(s.value, 'a bc');
	({ s } = keys(emptyEditor(), ['   '], ['', { return: true }]));
	assert.equal(s.history, [], 'blank lines are not kept in history');
});

test('parseLine: text, commands, bad values', () => {
	assert.equal(parseLine('hello'), { kind: 'text', text: 'hello' });
	assert.equal(parseLine(''), { kind: 'text', text: '' });
	assert.equal(parseLine('//etc'), { kind: 'text', text: '/etc' });
	assert.equal(parseLine('/temp 0.5'), { kind: 'temp', value: 0.5 });
	assert.equal(parseLine('/topp 1'), { kind: 'topp', value: 1 });
	assert.equal(parseLine('/draft off'), { kind: 'draft', on: false });
	assert.equal(parseLine('/accept top:3'), { kind: 'accept', accept: { kind: 'top', k: 3 } });
	assert.equal(parseLine('/accept exact'), { kind: 'accept', accept: { kind: 'exact' } });
	assert.equal(parseLine('/save my chat.mbchat'), { kind: 'save', file: 'my chat.mbchat' });
	assert.equal(parseLine('/EXIT'), { kind: 'exit' });
	for (const bad of ['/temp', '/temp -1', '/temp x', '/topp 0', '/topp 1.5', '/draft maybe', '/accept top:0', '/save', '/nope']) {
		assert.is(parseLine(bad).kind, 'error', bad);
	}
});

const sample = (): ChatSave => ({
	model: tinyModel,
	contextBytes: 1234,
	settings: { temperature: 0.5, topP: 0.9, topK: 0, maxBytes: 64, draft: true, accept: { kind: 'top', k: 3 } },
	transcript: [{ kind: 'user', text: 'It was' }, { kind: 'model', spans: [{ text: ' a dark', source: 'draft' }, { text: ' night', source: 'model' }] }],
	state: Uint8Array.from([1, 2, 3, 4, 5, 6, 7]),
});

test('save format: round trip, documented layout', () => {
	const bytes = encodeSave(sample());
	assert.is(new TextDecoder().decode(bytes.subarray(0, 8)), 'MBCHAT1\n');
	const h = new DataView(bytes.buffer).getUint32(8, true);
	const header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + h)));
	assert.is(header.format, 'mambabyte-chat');
	assert.equal(header.state, { bytes: 7 });
	assert.is(bytes.length, Math.ceil((12 + h) / 4) * 4 + 7);
	const back = decodeSave(bytes);
	assert.equal(back.model, tinyModel);
	assert.is(back.contextBytes, 1234);
	assert.equal(back.transcript, sample().transcript);
	assert.equal(back.settings, sample().settings);
	assert.equal([...back.state], [1, 2, 3, 4, 5, 6, 7]);
});

test('save format: files on disk; damaged or foreign files are one-line errors', () => {
	const dir = tmpDir('mbchat');
	const f = path.join(dir, 'a.mbchat');
	writeSave(f, sample());
	assert.is(readSave(f).contextBytes, 1234);
	const bytes = readFileSync(f);
	writeFileSync(f, bytes.subarray(0, bytes.length - 2));
	assert.throws(() => readSave(f), /not a mambabyte chat save \(expected/);
	writeFileSync(f, 'hello world, not a save');
	assert.throws(() => readSave(f), /wrong magic/);
	assert.throws(() => readSave(path.join(dir, 'missing')), /file not found/);
	assert.throws(() => writeSave(path.join(dir, 'no', 'such', 'dir'), sample()), /cannot write/);
	assert.is(mismatch(tinyModel, { ...tinyModel }), null);
	assert.match(mismatch(tinyModel, { ...tinyModel, nLayer: 3 }) ?? '', /nLayer 2.*nLayer 3/);
});

test('formatting', () => {
	assert.is(formatBytes(980), '980 B');
	assert.is(formatBytes(1536), '1.5 KiB');
	assert.is(formatBytes(98304), '96 KiB');
	assert.is(formatBytes(13 * 1024 * 1024), '13 MiB');
	assert.is(formatRate(43.21), '43.2 B/s');
	assert.is(formatRate(2.5 * 1024 * 1024), '2.5 MiB/s');
	assert.is(formatDuration(7), '0:07');
	assert.is(formatDuration(3723), '1:02:03');
	assert.is(formatDuration(NaN), '–');
	assert.is(formatPercent(91 / 117), '78%');
	assert.is(fixed(NaN, 3), '–');
});

test('NO_COLOR turns colour off unless FORCE_COLOR is given', () => {
	const level = chalk.level;
	try {
		chalk.level = 2;
		applyColorEnv({ NO_COLOR: '' });
		assert.is(chalk.level, 2, 'empty NO_COLOR is not set');
		applyColorEnv({ NO_COLOR: '1', FORCE_COLOR: '2' });
		assert.is(chalk.level, 2, 'FORCE_COLOR wins');
		applyColorEnv({ NO_COLOR: '1' });
		assert.is(chalk.level, 0);
	} finally {
		chalk.level = level;
	}
});

test('chat starts with the drafter on wherever one is loaded (the engine drafts only as much as pays)', () => {
	const opts = { ...generationOptions({ seed: '1' }), drafter: DEFAULT_DRAFT };
	assert.is(initialSettings(opts, 'subword-drafter').draft, true);
	assert.is(initialSettings({ ...opts, accept: { kind: 'top', k: 3 } }, 'subword-drafter').draft, true);
	assert.is(initialSettings({ ...opts, drafter: '/some/drafter' }, 'd').draft, true);
	assert.is(initialSettings({ ...opts, drafter: null }, null).draft, false);
	assert.is(initialSettings(opts, null).draft, false, 'no drafter could be loaded');
});

test('the chat starts from every generation flag, not only the ones it can change with /commands', () => {
	const opts = generationOptions({ seed: '7', minP: '0.05', repeatPenalty: '1.3', repeatLastN: '32', utf8: false, draftSubwords: '5', stop: ['END'] });
	const s = initialSettings(opts, 'subword-drafter');
	assert.equal(
		[s.minP, s.repeatPenalty, s.repeatLastN, s.utf8, s.draftSubwords, s.stop, s.seed],
		[0.05, 1.3, 32, false, 5, ['END'], 7],
	);
	assert.not.ok('model' in s || 'json' in s || 'drafter' in s, 'only generation settings, not the sources or output flags');
});

test.run();
