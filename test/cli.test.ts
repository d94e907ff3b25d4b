// The command line as a user meets it: bad flags and values are one line and exit 2, bad files one line and
// exit 1, never a stack trace; perplexity prints the agreed JSON keys.
import { spawn, spawnSync } from 'node:child_process';
import { tmpDir } from './helpers/checkpoint-fixtures.js';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const BIN = path.resolve('bin/mambabyte.js');
const TINY = path.resolve('test/fixtures/tiny-hf');
const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', input: '' });

function oneLineError(r: ReturnType<typeof run>, code: number, pattern: RegExp) {
	assert.is(r.status, code, `exit ${r.status}: ${r.stderr}`);
	const lines = r.stderr.trim().split('\n');
	assert.is(lines.length, 1, r.stderr);
	assert.match(lines[0], /^mambabyte: /);
	assert.match(lines[0], pattern);
	assert.not.match(r.stderr, /\n\s+at /); // no stack trace
}

test('usage errors: one line, exit 2', () => {
	oneLineError(run('--bogus', 'hi', '-m', TINY), 2, /unknown flag --bogus/);
	oneLineError(run('-t', '-1', 'hi', '-m', TINY), 2, /--temperature -1/);
	oneLineError(run('--top-p', '1.5', 'hi', '-m', TINY), 2, /--top-p 1.5/);
	oneLineError(run('-n', 'many', 'hi', '-m', TINY), 2, /--max-bytes many/);
	oneLineError(run('--accept', 'top:0', 'hi', '-m', TINY), 2, /--accept top:0/);
	oneLineError(run('--backend', 'tpu', 'hi', '-m', TINY), 2, /--backend tpu/);
	oneLineError(run('perplexity', '-m', TINY), 2, /expected at least one FILE/);
	
	oneLineError(run('bench', '--shape', '7'), 2, /--shape 7/);
});

test('runtime errors: one line, exit 1', () => {
	const dir = tmpDir('cli');
	oneLineError(run('perplexity', path.join(dir, 'missing.txt'), '-m', TINY), 1, /missing.txt: no such file/);
	oneLineError(run('perplexity', dir, '-m', TINY), 1, /is a folder/);
	oneLineError(run('complete', 'hi', '-m', dir), 1, /config.json/);
	oneLineError(run('perplexity', 'x', '-m', '/no/such/folder'), 1, /--model \/no\/such\/folder: no such folder/);
	oneLineError(run('convert', '/no/such/folder', path.join(dir, 'out')), 1, /\/no\/such\/folder/);
	writeFileSync(path.join(dir, 'one.txt'), 'a');
	oneLineError(run('perplexity', path.join(dir, 'one.txt'), '-m', TINY), 1, /1 byte, nothing to score/);
});

test('perplexity --json: one object per file with the agreed keys', () => {
	const input = path.resolve('test/fixtures/input.txt');
	const r = run('perplexity', input, input, '--json', '--curve', '--bucket', '32', '-m', TINY, '--backend', 'cpu');
	assert.is(r.status, 0, r.stderr);
	const lines = r.stdout.trim().split('\n');
	assert.is(lines.length, 2);
	for (const line of lines) {
		const o = JSON.parse(line) as Record<string, unknown>;
		assert.equal(Object.keys(o).sort(), ['backend', 'bits_per_byte', 'bytes', 'bytes_per_second', 'curve', 'file', 'model', 'scored', 'seconds', 'word_perplexity'].sort());
		assert.is(o.bytes, 67);
		assert.is(o.scored, 66);
		assert.is(o.backend, 'cpu');
		assert.is((o.curve as unknown[]).length, 3);
	}
});

test('bytes are bytes: a binary file scores; stdin closed at once has nothing to score', () => {
	const dir = tmpDir('cli');
	const bin = path.join(dir, 'random.bin');
	writeFileSync(bin, Uint8Array.from({ length: 3000 }, (_, i) => (i * 2654435761) >>> 24));
	const r = run('perplexity', bin, '--json', '-m', TINY);
	assert.is(r.status, 0, r.stderr);
	const o = JSON.parse(r.stdout) as { scored: number; bits_per_byte: number };
	assert.is(o.scored, 2999);
	assert.ok(Number.isFinite(o.bits_per_byte));
	oneLineError(run('perplexity', '-', '-m', TINY), 1, /-: 0 bytes, nothing to score/);
});

test('Ctrl-C during perplexity stops the process promptly', async () => {
	const dir = tmpDir('cli');
	const big = path.join(dir, 'big.bin');
	writeFileSync(big, new Uint8Array(64 << 20)); // far more than it can score before the signal
	const child = spawn(process.execPath, [BIN, 'perplexity', big, '-m', TINY, '--backend', 'cpu'], { stdio: ['ignore', 'pipe', 'pipe'] });
	let stderr = '';
	child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
	await new Promise((resolve) => setTimeout(resolve, 1500));
	child.kill('SIGINT');
	const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => child.on('exit', (c, s) => resolve([c, s])));
	assert.ok(signal === 'SIGINT' || code === 130, `exit ${code} signal ${signal}`);
	assert.not.match(stderr, /\n\s+at /);
});

test('--help and --version', () => {
	const h = run('--help');
	assert.is(h.status, 0);
	assert.match(h.stdout, /mambabyte perplexity FILE/);
	assert.match(h.stdout, /--draft-subwords/);
	const v = run('--version');
	assert.is(v.status, 0);
	assert.match(v.stdout, /^\d+\.\d+\.\d+/);
});

test.run();
