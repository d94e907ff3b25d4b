// The perplexity view: progress line, final table, position chart, and renderPerplexity over a fake event stream.
import chalk from 'chalk';
import { renderToString } from 'ink';
import { EventEmitter } from 'node:events';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { PerplexityEvent, PerplexityResult } from '../src/engine/events.js';
import { bar, barChart, mergeCurve, sparkline } from '../src/ui/chart.js';
import { applyPerplexity, CurveChart, DoneLine, emptyPerplexity, ProgressLine, renderPerplexity, tableLines } from '../src/ui/perplexity.js';

chalk.level = 0;
// eslint-disable-next-line no-control-regex
const strip = (s: string) => s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');

const curve = [
	{ start: 0, end: 2048, bits_per_byte: 1.5 },
	{ start: 2048, end: 4096, bits_per_byte: 1.25 },
	{ start: 4096, end: 6144, bits_per_byte: 1.2 },
	{ start: 6144, end: 7000, bits_per_byte: 1.6 },
];
const result = (file: string, over: Partial<PerplexityResult> = {}): PerplexityResult => ({
	file, bytes: 7000, scored: 6999, bits_per_byte: 1.2345, word_perplexity: 33.04, seconds: 3.5, bytes_per_second: 1999.7,
	backend: 'cpu', model: 'byte-model', ...over,
});

test('state from events: file, progress, result', () => {
	let s = emptyPerplexity();
	s = applyPerplexity(s, { type: 'file', file: 'a.txt', bytes: 100 });
	assert.equal(s.current?.done, 0);
	s = applyPerplexity(s, { type: 'progress', file: 'a.txt', done: 50, total: 100, bitsPerByte: 1.5, bytesPerSecond: 10 });
	assert.equal(s.current, { file: 'a.txt', total: 100, done: 50, bitsPerByte: 1.5, bytesPerSecond: 10 });
	s = applyPerplexity(s, { type: 'result', result: result('a.txt') });
	assert.is(s.current, null);
	assert.is(s.results.length, 1);
});

test('progress line: bar, percent, speed, time left, running bits per byte; stdin without a total', () => {
	const out = renderToString(<ProgressLine p={{ file: 'book.txt', total: 10240, done: 5120, bitsPerByte: 1.23456, bytesPerSecond: 1024 }} width={20} />, { columns: 120 });
	assert.is(out, 'book.txt  ██████████··········  50%  1.0 KiB/s  0:05 left  1.2346 bits/byte');
	const stdin = renderToString(<ProgressLine p={{ file: '-', total: null, done: 3000, bitsPerByte: NaN, bytesPerSecond: 150 }} />, { columns: 120 });
	assert.is(stdin, '-  2.9 KiB read  150 B/s  – bits/byte');
	const done = renderToString(<DoneLine r={result('book.txt')} />, { columns: 120 });
	assert.is(done, '✓ book.txt  1.2345 bits/byte · word ppl 33.04 · 6.8 KiB in 0:04 (2.0 KiB/s)');
});

test('final table: file, bytes, bits/byte, word ppl, bytes/s, aligned', () => {
	const lines = tableLines([result('pg1.txt'), result('a-longer-name.txt', { bytes: 123456, bits_per_byte: 0.93, word_perplexity: NaN, bytes_per_second: 12 })]);
	assert.is(lines[0], 'file                bytes  bits/byte  word ppl  bytes/s');
	assert.is(lines[2], 'pg1.txt              7000     1.2345     33.04   1999.7');
	assert.is(lines[3], 'a-longer-name.txt  123456     0.9300         –     12.0');
	assert.ok(lines.every((l) => l.length === lines[0].length));
	assert.match(tableLines([result('r.txt', { word_perplexity: 3.754e16 })])[2], ' 3.75e+16 ');
});

test('charts: bars in eighths, merged ranges weighted by bytes, sparkline from min to max', () => {
	assert.is(bar(1, 1, 4), '████');
	assert.is(bar(0.5, 1, 3), '█▌');
	assert.is(bar(0, 1, 4), '');
	const merged = mergeCurve(curve, 2);
	assert.equal(merged.map((p) => [p.start, p.end]), [[0, 4096], [4096, 7000]]);
	assert.ok(Math.abs(merged[1].bits_per_byte - (1.2 * 2048 + 1.6 * 856) / 2904) < 1e-12);
	const rows = barChart(curve, { width: 16 });
	assert.equal(rows, [
		'      0–2.0 KiB  ███████████████  1.500',
		'2.0 KiB–4.0 KiB  ████████████▌    1.250',
		'4.0 KiB–6.0 KiB  ████████████     1.200',
		'6.0 KiB–6.8 KiB  ████████████████ 1.600',
	]);
	assert.is(sparkline(curve), '▆▂▁█');
	assert.is(sparkline(curve.slice(0, 1)), '');
	const chart = renderToString(<CurveChart r={result('pg1.txt', { curve })} />, { columns: 100 });
	assert.match(chart, 'pg1.txt: bits per byte by position');
	assert.match(chart, '▆▂▁█  min 1.200 · max 1.600 over 4 ranges of 2.0 KiB');
});

class FakeTerminal extends EventEmitter {
	columns = 100;
	rows = 40;
	isTTY = false; // true would make Ink hide the cursor, and restore-cursor then writes \e[?25h to the real stderr at exit
	out = '';
	write = (s: string) => {
		this.out += s;
		return true;
	};
}

async function* events(): AsyncGenerator<PerplexityEvent, PerplexityResult> {
	yield { type: 'file', file: 'a.txt', bytes: 7000 };
	yield { type: 'progress', file: 'a.txt', done: 4096, total: 7000, bitsPerByte: 1.3, bytesPerSecond: 2000 };
	yield { type: 'result', result: result('a.txt', { curve }) };
	yield { type: 'file', file: '-', bytes: null };
	yield { type: 'progress', file: '-', done: 100, total: null, bitsPerByte: 2, bytesPerSecond: 50 };
	const last = result('-', { bytes: 100, bits_per_byte: 2.5 });
	return last; // returned, not yielded: still counted
}

test('renderPerplexity: returns the results in order and leaves the table and chart on screen', async () => {
	const term = new FakeTerminal();
	const results = await renderPerplexity(events(), { curve: true, stream: term as unknown as NodeJS.WriteStream, intervalMs: 0 });
	assert.equal(results.map((r) => r.file), ['a.txt', '-']);
	const text = strip(term.out);
	assert.match(text, '✓ a.txt  1.2345 bits/byte');
	assert.match(text, 'file   bytes  bits/byte  word ppl  bytes/s');
	assert.match(text, '-        100     2.5000');
	assert.match(text, 'a.txt: bits per byte by position');
	assert.match(text, '▆▂▁█');
	const noCurve = new FakeTerminal();
	await renderPerplexity(events(), { curve: false, stream: noCurve as unknown as NodeJS.WriteStream, intervalMs: 0 });
	assert.not.match(strip(noCurve.out), 'by position');
});

test.run();
