// The chat when the terminal changes width, and lines sent while the model writes. Frames come from
// ink-testing-library, which writes every render whole (all <Static> output so far, then the live part); the part
// after the chat's screen clear is taken as what a terminal shows.
import chalk from 'chalk';
import { render } from 'ink-testing-library';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { settingsWith } from '../src/app/options.js';
import { ChatApp } from '../src/ui/chat.js';
import { CLEAR_SCREEN } from '../src/ui/resize.js';
import { commit, deferred, done, FakeSession, genStats, settle } from './ui-fakes.js';

const settings = settingsWith({ temperature: 0.8, maxBytes: 64, seed: 1, draft: false });
const HEADER = 'mambabyte chat ·'; // the transcript's first line begins so (short enough not to wrap)
const STATUS = /[○●] (?:[\d.]+|–) B\/s · no draft ·\s+\d+ B\s+generated/g; // wraps on a narrow screen
const SETTING = /tiny-test on cpu · no drafter · context/g;

function mount(session: FakeSession) {
	chalk.level = 0;
	const r = render(<ChatApp session={session} settings={settings} intervalMs={0} resizeDelayMs={0} />);
	let columns = 100;
	Object.defineProperty(r.stdout, 'columns', { get: () => columns, configurable: true });
	return {
		...r,
		type: async (text: string) => {
			r.stdin.write(text);
			await settle();
		},
		enter: async () => {
			r.stdin.write('\r');
			await settle();
		},
		resize: async (to: number) => {
			columns = to;
			r.stdout.emit('resize');
			await settle();
		},
		/** The screen: the last frame, from where the transcript was printed again after the last clear. */
		screen: () => {
			const frames = r.frames;
			const cleared = frames.lastIndexOf(CLEAR_SCREEN);
			const last = frames[frames.length - 1] ?? '';
			if (cleared < 0) return last;
			// the transcript printed before the clear is everything before its header's last appearance
			return last.slice(last.lastIndexOf(HEADER));
		},
	};
}

const count = (s: string, re: RegExp) => s.match(re)?.length ?? 0;
const widest = (s: string) => Math.max(...s.split('\n').map((l) => [...l].length));

const LONG = 'It was the best of times, it was the worst of times, it was the age of wisdom';

test('a narrower terminal: the screen is cleared and the transcript printed again at the new width, one status line', async () => {
	const s = new FakeSession(() => [commit(` ${LONG}\n`), commit('and so on'), done(genStats({ generatedBytes: 87 }))]);
	const app = mount(s);
	await app.type('A tale');
	await app.enter();
	await s.whenDone(1);
	await settle();
	const wide = app.screen();
	assert.ok(widest(wide) > 60, 'at 100 columns the long line is one row');
	const writes = app.frames.length;

	await app.resize(40);
	assert.ok(app.frames.slice(writes).includes(CLEAR_SCREEN), 'the screen (and scrollback) is cleared');
	const narrow = app.screen();
	assert.ok(widest(narrow) <= 40, `every row fits 40 columns:\n${narrow}`);
	assert.is(count(narrow, new RegExp(HEADER, 'g')), 1);
	assert.match(narrow, /^mambabyte chat · tiny-test on cpu ·\n\/help for commands\n/, `the first line too, at the new width:\n${narrow}`);
	assert.is(count(narrow, /› A tale/g), 1, 'the transcript once');
	assert.is(count(narrow, /the age of\s+wisdom/g), 1, narrow);
	assert.is(count(narrow, STATUS), 1, `one status line:\n${narrow}`);
	assert.is(count(narrow, SETTING), 1);
	assert.match(narrow, /\n {3}It was the best of times, it was the\n {2}worst of times, it was the age of\n {2}wisdom\n/, `the long line wrapped at the new width:\n${narrow}`);

	// Same width again (a rows-only change): nothing is redrawn.
	const before = app.frames.length;
	app.stdout.emit('resize');
	await settle();
	assert.not.ok(app.frames.slice(before).includes(CLEAR_SCREEN));
	app.unmount();
});

test('a resize during a turn: the live line and the status follow the new width; the turn goes on', async () => {
	const hold = deferred();
	const s = new FakeSession(() => [commit(' first line\n'), commit('half a'), commit(' line'), done(genStats({ generatedBytes: 22 }))]);
	s.gate = (_e, i) => (i === 2 ? hold.promise : undefined);
	const app = mount(s);
	await app.type('Go');
	await app.enter();
	assert.match(app.lastFrame() ?? '', 'half a');
	await app.resize(30);
	const mid = app.screen();
	assert.ok(widest(mid) <= 30, mid);
	assert.is(count(mid, /first line/g), 1);
	assert.is(count(mid, /half a/g), 1, 'the live line once');
	assert.is(count(mid, /● /g), 1, `one live status line:\n${mid}`);
	hold.resolve();
	await s.whenDone(1);
	await settle();
	const end = app.screen();
	assert.is(count(end, /half a line/g), 1, 'the turn finished into the transcript');
	assert.is(count(end, STATUS), 1, end);
	assert.is(count(end, /● /g), 0);
	app.unmount();
});

test('Enter during a generation queues the line (shown as queued) and sends it when the turn ends', async () => {
	const hold = deferred();
	const s = new FakeSession((turn) => (turn === 0 ? [commit('one '), commit('two'), done()] : [commit(' reply'), done()]));
	s.gate = (_e, i) => (s.turns === 1 && i === 1 ? hold.promise : undefined);
	const app = mount(s);
	await app.type('first');
	await app.enter();
	await app.type('second');
	await app.enter();
	let f = app.lastFrame() ?? '';
	assert.match(f, 'queued › second');
	assert.match(f, 'Ctrl-C stops', 'the editor is free for the next line');
	assert.not.match(f, 'next: second');
	await app.enter(); // an empty Enter while busy queues nothing
	assert.equal(s.appended, ['first'], 'nothing is sent while the model writes');

	hold.resolve();
	await s.whenDone(2);
	await settle();
	assert.equal(s.appended, ['first', 'second'], 'sent when the turn ended, once');
	assert.is(s.turns, 2);
	f = app.lastFrame() ?? '';
	assert.not.match(f, 'queued ›');
	assert.match(f, /› first\n {2}one two\n› second\n {3}reply/);
	app.unmount();
});

test('lines queued during a generation go out in order; Ctrl-C ends the turn sooner and the queue goes on', async () => {
	const hold = deferred();
	const s = new FakeSession(() => [commit('a'), commit('b'), done()]);
	s.gate = (_e, i) => (s.turns === 1 && i === 1 ? hold.promise : undefined);
	const app = mount(s);
	await app.type('start');
	await app.enter();
	await app.type('/temp 0');
	await app.enter();
	await app.type('after');
	await app.enter();
	assert.match(app.lastFrame() ?? '', /queued › \/temp 0\n {2}queued › after/);
	app.stdin.write('\x03'); // stop the first turn
	await settle();
	hold.resolve();
	await s.whenDone(2);
	await settle();
	assert.equal(s.appended, ['start', 'after']);
	assert.is(s.settingsSeen[1].temperature, 0, 'the queued command ran before the queued text');
	assert.match(app.lastFrame() ?? '', 'temperature 0 (greedy)');
	assert.not.match(app.lastFrame() ?? '', 'queued ›');
	app.unmount();
});

test.run();
