// The chat screen: components rendered to frames, and the whole ChatApp driven by keystrokes against a scripted
// engine. No clock: the fake engine pauses where a test wants to look, and settle() lets renders run.
import chalk from 'chalk';
import { tmpDir } from './helpers/checkpoint-fixtures.js';
import { Box, renderToString } from 'ink';
import { render } from 'ink-testing-library';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ChatApp } from '../src/ui/chat.js';
import { LiveTurn } from '../src/ui/live-turn.js';
import { Prompt } from '../src/ui/prompt.js';
import { settingsWith, type GenerationSettings } from '../src/app/options.js';
import { StatusLine, type StatusProps } from '../src/ui/status-line.js';
import { ItemLine } from '../src/ui/transcript.js';
import { commit, deferred, done, draft, FakeSession, genStats, reject, settle } from './ui-fakes.js';

// eslint-disable-next-line no-control-regex
const strip = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');
const plain = () => (chalk.level = 0);
const colour = () => (chalk.level = 3);

const status: StatusProps = {
	phase: 'generating',
	stats: genStats({ generatedBytes: 256, bytesPerSecond: 43.21 }, {}),
	generated: 200,
	backend: 'webasm',
	model: 'byte-model',
	drafter: 'subword-drafter',
	draftOn: true,
	accept: { kind: 'top', k: 3 },
	contextBytes: 1234,
	stateBytes: 98304,
	temperature: 0.8,
	topP: 1,
};

test('status line: speed, acceptance (accepted/tested), mean run, bytes, model, backend, context, fixed state', () => {
	plain();
	const out = renderToString(<StatusLine {...status} />, { columns: 160 });
	assert.match(out, '● 43.2 B/s · accept 78% (91/117) · mean run 4.3 · 256 B generated');
	assert.match(out, 'byte-model on webasm · draft subword-drafter (top:3) · context 1.2 KiB · state 96 KiB (fixed) · t 0.8');
	const noDraft = renderToString(<StatusLine {...status} phase="ready" stats={genStats({ bytesPerSecond: 12 })} drafter={null} />, { columns: 160 });
	assert.match(noDraft, '○ 12.0 B/s · no draft · 256 B generated');
	assert.match(noDraft, 'no drafter');
	const off = renderToString(<StatusLine {...status} draftOn={false} topP={0.9} />, { columns: 160 });
	assert.match(off, 'draft off');
	assert.match(off, 'top-p 0.9');
	const first = renderToString(<StatusLine {...status} phase="reading" stats={null} generated={0} />, { columns: 160 });
	assert.match(first, '● – B/s · accept – (0/0) · mean run – · 0 B generated · reading prompt…');
	const firstPlain = renderToString(<StatusLine {...status} phase="reading" stats={null} generated={0} draftOn={false} />, { columns: 160 });
	assert.match(firstPlain, '● – B/s · no draft · 0 B generated · reading prompt…');
});

test('live turn: accepted draft, model text and pending draft are rendered distinctly', () => {
	colour();
	const view = {
		line: [{ text: 'It ', source: 'model' as const }, { text: 'was a ', source: 'draft' as const }],
		draft: 'dark and',
		stats: null,
		generated: 9,
		done: false,
	};
	const out = renderToString(<LiveTurn view={view} />, { columns: 80 });
	assert.is(strip(out), '  It was a dark and');
	assert.match(out, '\x1b[36mwas a ', 'accepted draft in cyan');
	assert.match(out, '\x1b[90m\x1b[2mdark and', 'pending draft dim grey');
	assert.not.match(out, /\x1b\[[0-9;]*mIt /, 'model text in the terminal colour');
	plain();
	const bw = renderToString(<LiveTurn view={view} />, { columns: 80 });
	assert.is(bw, '  It was a ‹dark and›', 'without colour the unverified draft is bracketed');
	assert.is(renderToString(<LiveTurn view={{ ...view, line: [], draft: '' }} />), '');
});

test('transcript lines and prompt', () => {
	plain();
	assert.is(renderToString(<ItemLine item={{ id: 1, kind: 'user', text: 'It was' }} />), '› It was');
	assert.is(renderToString(<ItemLine item={{ id: 2, kind: 'model', spans: [{ text: 'a dark', source: 'model' }] }} />), '  a dark');
	const column = renderToString(
		<Box flexDirection="column">
			<ItemLine item={{ id: 5, kind: 'model', spans: [{ text: 'a', source: 'model' }] }} />
			<ItemLine item={{ id: 3, kind: 'model', spans: [] }} />
			<ItemLine item={{ id: 6, kind: 'model', spans: [{ text: 'b', source: 'model' }] }} />
		</Box>,
	);
	assert.is(column, '  a\n\n  b', 'a blank line keeps its row');
	assert.is(renderToString(<ItemLine item={{ id: 4, kind: 'note', tone: 'error', text: 'oops' }} />), 'oops');
	assert.is(renderToString(<Prompt value="abc" cursor={3} busy={false} />), '› abc_');
	assert.match(renderToString(<Prompt value="" cursor={0} busy={false} />), '› _type text for the model to continue');
	assert.is(renderToString(<Prompt value="next one" cursor={2} busy />), '  Ctrl-C stops · next: next one');
	colour();
	assert.match(renderToString(<Prompt value="abc" cursor={1} busy={false} />), '\x1b[7mb\x1b[27m');
});

const settings: GenerationSettings = settingsWith({ temperature: 0.8, topP: 1, topK: 0, maxBytes: 64, seed: 1, stop: [], draft: false, accept: { kind: 'exact' } });

function mount(session: FakeSession, s: GenerationSettings = settings) {
	let exited = 0;
	const r = render(<ChatApp session={session} settings={s} intervalMs={0} onExit={() => exited++} />);
	const type = async (text: string) => {
		r.stdin.write(text);
		await settle();
	};
	const enter = async () => {
		r.stdin.write('\r');
		await settle();
	};
	return { ...r, type, enter, frame: () => r.lastFrame() ?? '', exited: () => exited };
}

test('chat: a turn feeds only the new text, streams the reply, shows the status line', async () => {
	plain();
	const s = new FakeSession((turn) => turn === 0
		? [{ type: 'start', promptBytes: 6, backend: 'cpu', model: 'tiny-test', draft: null, stateBytes: 98304 }, commit(' a dark'), commit(' and stormy\nnight'), done(genStats({ generatedBytes: 24, bytesPerSecond: 11.5 }))]
		: [commit(' and then'), done(genStats({ generatedBytes: 9, bytesPerSecond: 9 }))]);
	const app = mount(s);
	assert.match(app.frame(), 'mambabyte chat · tiny-test on cpu');
	await app.type('It was');
	assert.match(app.frame(), '› It was');
	await app.enter();
	await s.whenDone(1);
	await settle();
	const f = app.frame();
	assert.equal(s.appended, ['It was']);
	assert.match(f, '› It was\n   a dark and stormy\n  night\n');
	assert.match(f, '○ 11.5 B/s · no draft · 24 B generated');
	assert.match(f, 'tiny-test on cpu · no drafter · context 30 B · state 96 KiB (fixed)');
	// the second turn sends only its own text; an empty line would send nothing and let the model go on
	await app.type('Then');
	await app.enter();
	await s.whenDone(2);
	await app.enter();
	await s.whenDone(3);
	await settle();
	assert.equal(s.appended, ['It was', 'Then']);
	assert.is(s.turns, 3);
	app.unmount();
});

test('chat: drafted bytes show pending, then accepted (cyan) or dropped', async () => {
	colour();
	const hold = deferred();
	const s = new FakeSession(() => [draft(' dark and'), commit(' dark', 'draft'), reject(4), commit(' stormy'), done(genStats({}, {}))], 'drafter-x');
	s.gate = (_e, i) => (i === 1 ? hold.promise : undefined); // stop after the draft event
	const app = mount(s, { ...settings, draft: true });
	await app.type('It was');
	await app.enter();
	const mid = app.frame();
	assert.match(strip(mid), '   dark and\n', 'the draft is on screen before it is verified');
	assert.match(mid, /\x1b\[2m.* dark and/, 'dim');
	assert.match(strip(mid), 'Ctrl-C stops');
	hold.resolve();
	await s.whenDone(1);
	await settle();
	const end = app.frame();
	assert.match(strip(end), '   dark stormy\n');
	assert.match(end, '\x1b[36m dark\x1b[39m', 'accepted draft text in cyan');
	assert.not.match(strip(end), ' dark and', 'the rejected part is gone');
	assert.match(strip(end), 'accept 78% (91/117) · mean run 4.3');
	assert.match(strip(end), 'draft drafter-x (exact)');
	assert.is(s.settingsSeen[0].draft, true);
	app.unmount();
});

test('chat: Ctrl-C stops a generation; Ctrl-C clears a typed line; Ctrl-C at an empty prompt exits', async () => {
	plain();
	const hold = deferred();
	const s = new FakeSession(() => [commit('one '), commit('two '), commit('three'), done()]);
	s.gate = (_e, i) => (i === 1 ? hold.promise : undefined);
	const app = mount(s);
	await app.type('go');
	await app.enter();
	assert.match(app.frame(), '  one');
	app.stdin.write('\x03');
	await settle();
	hold.resolve();
	await s.whenDone(1);
	await settle();
	const f = app.frame();
	assert.match(f, /\n {2}one *\n/);
	assert.not.match(f, 'two');
	assert.match(f, '· stopped');
	assert.is(app.exited(), 0, 'stopping a generation does not exit');
	await app.type('half typed');
	app.stdin.write('\x03');
	await settle();
	assert.match(app.frame(), '› _type text');
	assert.is(app.exited(), 0);
	app.stdin.write('\x03');
	await settle();
	assert.is(app.exited(), 1);
});

test('chat: up arrow recalls the last line; commands change the next turn; errors are one line', async () => {
	plain();
	const s = new FakeSession(() => [commit('x'), done()]);
	const app = mount(s);
	await app.type('first line');
	await app.enter();
	await s.whenDone(1);
	await settle();
	app.stdin.write('\x1b[A');
	await settle();
	assert.match(app.frame(), '› first line_');
	app.stdin.write('\x15'); // Ctrl-U
	await settle();
	await app.type('/temp 0');
	await app.enter();
	await app.type('/topp 0.9');
	await app.enter();
	await app.type('/accept top:3');
	await app.enter();
	await app.type('/draft on');
	await app.enter();
	await app.type('/bogus');
	await app.enter();
	const f = app.frame();
	assert.match(f, 'temperature 0 (greedy)');
	assert.match(f, 'top-p 0.9');
	assert.match(f, 'accept top:3');
	assert.match(f, 'no drafter loaded: start chat with --draft DIR');
	assert.match(f, '/bogus: unknown command (try /help)');
	await app.type('more');
	await app.enter();
	await s.whenDone(2);
	await settle();
	assert.equal(s.settingsSeen[1], { ...settings, temperature: 0, topP: 0.9, accept: { kind: 'top', k: 3 } });
	await app.type('/help');
	await app.enter();
	assert.match(app.frame(), '/save FILE');
	await app.type('/stats');
	await app.enter();
	assert.match(app.frame(), 'session: 2 turns · 512 B generated in 4.0 s (128 B/s) · 12 B of prompt read');
	assert.match(app.frame(), 'model: tiny-test (d 8, 2 layers) on cpu');
	app.unmount();
});

test('chat: /save then /load restores state and transcript; /reset zeroes; /exit leaves', async () => {
	plain();
	const dir = tmpDir('mbchat-ui');
	const file = path.join(dir, 'talk.mbchat');
	const s = new FakeSession(() => [commit(' a dark and stormy night'), done()]);
	const app = mount(s);
	await app.type('It was');
	await app.enter();
	await s.whenDone(1);
	await settle();
	await app.type(`/save ${file}`);
	await app.enter();
	// lines joined: where the frame wraps these depends on how long the temporary path is
	const flat = () => app.frame().replace(/ *\n */g, ' ');
	assert.match(flat(), `saved ${file} (`);
	await app.type('/reset');
	await app.enter();
	assert.is(s.resets, 1);
	assert.match(app.frame(), 'conversation reset');
	assert.match(app.frame(), 'context 0 B');
	await app.type(`/load ${file}`);
	await app.enter();
	await settle();
	assert.ok(s.imported);
	assert.equal([...s.imported], [30, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef]);
	const f = app.frame();
	assert.match(flat(), `loaded ${file}: context 30 B, 2 transcript lines`);
	assert.match(f, /› It was\n {3}a dark and stormy night\n[^]*› It was\n {3}a dark and stormy night/);
	assert.match(f, 'context 30 B');
	await app.type(`/load ${path.join(dir, 'nope')}`);
	await app.enter();
	assert.match(app.frame(), 'nope: file not found');
	await app.type('/exit');
	await app.enter();
	assert.is(app.exited(), 1);
});

test.run();
