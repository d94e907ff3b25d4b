// `perplexity --limit BYTES` scores exactly the first BYTES bytes (the same as a file holding only them), and
// `--noise TYPE:P --seed S` scores exactly the noised copy engine/noise.ts makes; the results say so; bad values of
// either flag are one line and exit 2.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { referenceKernels } from '../src/backend/reference.js';
import { DEFAULT_SCORING, firstBytes, scoreSource, type ScoringSettings } from '../src/app/score.js';
import { addNoise, type NoiseSpec } from '../src/engine/noise.js';
import type { PerplexityResult } from '../src/engine/events.js';
import { rng } from '../src/model/random.js';
import { byteModel, enc } from './engine-fixtures.js';
import { renderToString } from 'ink';
import { createElement } from 'react';
import { DoneLine, PerplexityView } from '../src/ui/perplexity.js';

const BIN = path.resolve('bin/mambabyte.js');
const TINY = path.resolve('test/fixtures/tiny-hf');
const dir = mkdtempSync(path.join(os.tmpdir(), 'mambabyte-limit-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const words = ['The', 'café', 'at', "7 o'clock", '—', 'a', 'tiny', 'test', 'of', 'MambaByte’s', 'byte', 'logits.', '日本語', '👍\n'];
const r = rng(2);
const TEXT = enc(Array.from({ length: 900 }, () => words[Math.floor(r() * words.length)]).join(' ')); // ~5 KB, multi-byte characters
const FILE = path.join(dir, 'text.txt');
writeFileSync(FILE, TEXT);
const file = (name: string, bytes: Uint8Array) => {
	const f = path.join(dir, name);
	writeFileSync(f, bytes);
	return f;
};

function cli(args: string[], stdin?: Uint8Array) {
	const child = spawn(process.execPath, [BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
	let stdout = '', stderr = '';
	child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
	child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
	child.stdin.end(stdin ?? undefined);
	const killer = setTimeout(() => child.kill('SIGKILL'), 120_000);
	return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
		child.on('close', (code) => {
			clearTimeout(killer);
			resolve({ code, stdout, stderr });
		}));
}

async function scoreJson(args: string[], stdin?: Uint8Array): Promise<PerplexityResult> {
	const res = await cli(['perplexity', ...args, '-m', TINY, '--backend', 'cpu', '--json'], stdin);
	assert.is(res.code, 0, res.stderr);
	return JSON.parse(res.stdout) as PerplexityResult;
}

/** The figures that depend only on the bytes scored. */
const figures = (o: PerplexityResult) => ({ bytes: o.bytes, scored: o.scored, bits_per_byte: o.bits_per_byte, word_perplexity: o.word_perplexity });

test('--limit N scores exactly the first N bytes (a file, stdin), and says so', async () => {
	const n = 1001; // inside a multi-byte character or not, the limit counts bytes
	const prefix = await scoreJson([file('prefix.txt', TEXT.subarray(0, n))]);
	const limited = await scoreJson([FILE, '--limit', String(n)]);
	assert.equal(figures(limited), figures(prefix));
	assert.is(limited.bytes, n);
	assert.is(limited.limit, n);
	assert.is(prefix.limit, undefined, 'no limit field without --limit');
	const piped = await scoreJson(['-', '--limit', String(n)], TEXT);
	assert.equal(figures(piped), figures(prefix));
	// a limit beyond the end scores the whole file, and reports the limit asked for
	const whole = await scoreJson([FILE]);
	const beyond = await scoreJson([FILE, '--limit', String(TEXT.length * 2)]);
	assert.equal(figures(beyond), figures(whole));
	assert.is(beyond.limit, TEXT.length * 2);
	// the plain line
	const plain = await cli(['perplexity', FILE, '--limit', String(n), '-m', TINY, '--backend', 'cpu']);
	assert.is(plain.code, 0, plain.stderr);
	assert.match(plain.stdout, new RegExp(`  ${n} bytes  [\\d.]+ bytes/s  \\(first ${n} bytes\\)\\n$`));
});

test('--noise scores the noised copy of what was read; the seed is fixed unless given', async () => {
	const n = 2000;
	const specs: NoiseSpec[] = [{ type: 'repeat', p: 0.1 }, { type: 'swap', p: 0.05 }, { type: 'antspeak', p: 0.2 }];
	const flags = specs.flatMap((s) => ['--noise', `${s.type}:${s.p}`]);
	for (const seed of [undefined, 5]) {
		const noised = addNoise(TEXT.subarray(0, n), specs, seed ?? 0);
		const want = await scoreJson([file(`noised-${seed}.txt`, noised)]);
		const got = await scoreJson([FILE, '--limit', String(n), ...flags, ...(seed === undefined ? [] : ['--seed', String(seed)])]);
		assert.equal(figures(got), figures(want), `seed ${seed}`);
		assert.is(got.input_bytes, n);
		assert.is(got.limit, n);
		assert.equal(got.noise, specs);
		assert.is(got.noise_seed, seed ?? 0);
		assert.ok(got.bytes !== n, 'repeat and antspeak lengthen the text');
	}
	const plain = await cli(['perplexity', FILE, '--limit', '500', '--noise', 'drop:0.5', '-m', TINY, '--backend', 'cpu']);
	assert.is(plain.code, 0, plain.stderr);
	assert.match(plain.stdout, /bytes\/s  \(first 500 bytes, noise drop:0.5 seed 0\)\n$/);
});

test('noise that leaves nothing to score is the usual one-line note and exit 1', async () => {
	const res = await cli(['perplexity', FILE, '--noise', 'drop:1', '-m', TINY, '--backend', 'cpu']);
	assert.is(res.code, 1);
	assert.is(res.stdout, '');
	assert.match(res.stderr, new RegExp(`^mambabyte: .*text.txt: 0 bytes after noise \\(${TEXT.length} read\\), nothing to score \\(the first byte is only context\\)\\n$`));
});

test('bad values of --limit, --noise and --seed: one line, exit 2, before any model loads', async () => {
	const cases: [string[], RegExp][] = [
		[['--limit', '1'], /^mambabyte: --limit 1: expected a whole number of bytes >= 2/],
		[['--limit', '0'], /^mambabyte: --limit 0: expected/],
		[['--limit', '-5'], /^mambabyte: --limit -5: expected/],
		[['--limit', '2.5'], /^mambabyte: --limit 2\.5: expected/],
		[['--limit', 'lots'], /^mambabyte: --limit lots: expected/],
		[['--limit=', ''], /^mambabyte: --limit : expected/],
		[['--limit'], /^mambabyte: --limit: expected a value/],
		[['--noise', 'drop'], /^mambabyte: --noise drop: expected TYPE:P/],
		[['--noise', 'drop:1.01'], /^mambabyte: --noise drop:1\.01: expected a probability P from 0 to 1/],
		[['--noise', 'shout:0.1'], /^mambabyte: --noise shout:0\.1: unknown noise type 'shout' \(expected drop, repeat, antspeak, uppercase, random-case, swap\)/],
		[['--noise', 'drop:0.1', '--noise', 'swap:x'], /^mambabyte: --noise swap:x: expected a probability/],
		[['--seed', '3'], /^mambabyte: perplexity: --seed applies only with --noise/],
		[['--noise', 'drop:0.1', '--seed', '-1'], /^mambabyte: --seed -1: expected a whole number from 0 to 2\^32-1/],
		[['--noise', 'drop:0.1', '--kl-divergence', TINY], /^mambabyte: --kl-divergence compares the models on the files as they are: --limit and --noise do not apply/],
	];
	for (const [args, want] of cases) {
		// a missing model folder would be exit 1: a usage error must come first
		const res = await cli(['perplexity', FILE, '-m', path.join(dir, 'no-such-model'), ...args.filter((a) => a !== '')]);
		assert.is(res.code, 2, `${args.join(' ')}: ${res.stderr}`);
		assert.match(res.stderr, want, args.join(' '));
		assert.is(res.stderr.split('\n').length, 2, `one line: ${res.stderr}`);
		assert.is(res.stdout, '');
	}
	for (const cmd of [['complete', '--limit', '5', 'hi'], ['complete', '--noise', 'drop:0.1', 'hi'], ['bench', '--limit', '5']]) {
		const res = await cli(cmd);
		assert.is(res.code, 2, res.stderr);
		assert.match(res.stderr, /^mambabyte: (complete|bench): --(limit|noise) does not apply \(see mambabyte help (complete|bench)\)\n$/);
	}
});

test('help lists both flags', async () => {
	const res = await cli(['help', 'perplexity']);
	assert.is(res.code, 0);
	assert.match(res.stdout, /--limit BYTES/);
	assert.match(res.stdout, /--noise TYPE:P .*drop\|repeat\|antspeak\|uppercase\|random-case\|swap/);
	assert.match(res.stdout, /--seed S/);
});

test('Ctrl-C during noised scoring prints the partial result with the limit and noise it was scored under', async () => {
	const big = file('big.bin', Uint8Array.from({ length: 4 << 20 }, (_, i) => (i * 2654435761) >>> 24)); // minutes to score
	const child = spawn(process.execPath, [BIN, 'perplexity', big, '--limit', String(3 << 20), '--noise', 'swap:0.1', '-m', TINY, '--backend', 'cpu', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
	let stdout = '', stderr = '';
	child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
	child.stderr.on('data', (d: Buffer) => {
		stderr += d.toString();
		if (/looks binary/.test(stderr)) child.kill('SIGINT'); // scoring is under way
	});
	const killer = setTimeout(() => child.kill('SIGKILL'), 120_000);
	const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
	clearTimeout(killer);
	assert.is(code, 130, stderr);
	const o = JSON.parse(stdout) as PerplexityResult & { partial: boolean };
	assert.ok(o.partial && o.bytes > 1 && o.scored === o.bytes - 1, stdout);
	assert.is(o.limit, 3 << 20);
	assert.equal(o.noise, [{ type: 'swap', p: 0.1 }]);
	assert.is(o.noise_seed, 0);
});

test('the terminal view says what was scored: on the done line and under the table', () => {
	const r: PerplexityResult = {
		file: 'book.txt', bytes: 70000, scored: 69999, bits_per_byte: 1.5, word_perplexity: 40, seconds: 10, bytes_per_second: 7000,
		backend: 'cpu', model: 'm', limit: 65536, noise: [{ type: 'repeat', p: 0.05 }], noise_seed: 0, input_bytes: 65536,
	};
	// eslint-disable-next-line no-control-regex
	const strip = (t: string) => t.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
	const done = strip(renderToString(createElement(DoneLine, { r }), { columns: 200 }));
	assert.match(done, / · first 65536 bytes, noise repeat:0.05 seed 0$/);
	const view = strip(renderToString(createElement(PerplexityView, { state: { current: null, results: [r] }, curve: false, final: true }), { columns: 200 }));
	assert.match(view, /\nscored: first 65536 bytes, noise repeat:0.05 seed 0$/);
	const plain = renderToString(createElement(DoneLine, { r: { ...r, limit: undefined, noise: undefined } }), { columns: 200 });
	assert.not.match(plain, /first|noise/);
});

async function result(events: AsyncGenerator<unknown, PerplexityResult>): Promise<PerplexityResult> {
	for (;;) {
		const n = await events.next();
		if (n.done) return n.value;
	}
}

async function* pieces(bytes: Uint8Array, seed: number) {
	const r = rng(seed);
	for (let i = 0; i < bytes.length;) {
		const k = 1 + Math.floor(r() * 300);
		yield bytes.subarray(i, i + k);
		i += k;
	}
}

test('scoreSource (the library path): limit and noise cut and noise exactly there, whatever the read sizes', async () => {
	const model = byteModel(referenceKernels);
	const s = (o: Partial<ScoringSettings>): ScoringSettings => ({ ...DEFAULT_SCORING, ...o });
	const n = 1234;
	const prefix = await result(scoreSource(model, 'x', n, pieces(TEXT.subarray(0, n), 1), s({})));
	for (const seed of [3, 4]) {
		const limited = await result(scoreSource(model, 'x', TEXT.length, pieces(TEXT, seed), s({ limit: n })));
		assert.equal(figures(limited), figures(prefix));
		assert.is(limited.limit, n);
	}
	const specs: NoiseSpec[] = [{ type: 'random-case', p: 0.3 }, { type: 'drop', p: 0.05 }];
	const noised = addNoise(TEXT.subarray(0, n), specs, 9);
	const want = await result(scoreSource(model, 'x', noised.length, pieces(noised, 1), s({})));
	const got = await result(scoreSource(model, 'x', null, pieces(TEXT, 2), s({ limit: n, noise: specs, noiseSeed: 9 })));
	assert.equal(figures(got), figures(want));
	assert.is(got.input_bytes, n);
	assert.throws(() => scoreSource(model, 'x', null, pieces(TEXT, 2), s({ noise: [{ type: 'drop', p: 2 }] })), /probability 2: expected a number from 0 to 1/);
});

test('firstBytes stops reading the source at the limit', async () => {
	let pulled = 0;
	async function* source() {
		for (let i = 0; i < 100; i++) {
			pulled++;
			yield new Uint8Array(10).fill(i);
		}
	}
	const out: number[] = [];
	for await (const p of firstBytes(source(), 25)) out.push(...p);
	assert.is(out.length, 25);
	assert.equal(out.slice(18, 25), [1, 1, 2, 2, 2, 2, 2]);
	assert.is(pulled, 3);
});

test.run();
