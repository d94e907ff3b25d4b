// Issue 17, kinds 7 and 9 at the command line: stdout on /dev/full and a closed pipe, `bench --shape` too big for
// memory, perplexity state bounded by what was asked. Every run is a child under a heap cap and a time limit.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BIN, CASE_HEAP_MB, cli, oneLine, removeTempDirs, tempDir, TINY } from './helpers/hostile.js';

test.after(removeTempDirs);

test('stdout on /dev/full: one line naming ENOSPC on stderr and exit 1 (complete, perplexity, convert)', () => {
	oneLine(cli(['complete', '-m', TINY, '--no-draft', '-n', '8', 'Once'], { stdoutFile: '/dev/full' }), 1, /cannot write to stdout: no space left on device \(ENOSPC\)/);
	oneLine(cli(['complete', '-m', TINY, '--no-draft', '-n', '8', '--json', 'Once'], { stdoutFile: '/dev/full' }), 1, /ENOSPC/);
	const dir = tempDir('full');
	fs.writeFileSync(path.join(dir, 'a.txt'), 'some text to score');
	oneLine(cli(['perplexity', '-m', TINY, path.join(dir, 'a.txt')], { stdoutFile: '/dev/full' }), 1, /ENOSPC/);
	oneLine(cli(['convert', TINY, path.join(dir, 'out')], { stdoutFile: '/dev/full' }), 1, /ENOSPC/);
});

test('a closed stdout pipe (`| head -c 10`) ends quietly with exit 0', async () => {
	const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
		const c = spawn(process.execPath, [`--max-old-space-size=${CASE_HEAP_MB}`, BIN, 'complete', '-m', TINY, '--no-draft', '-n', '100000', 'Once'], { stdio: ['ignore', 'pipe', 'pipe'] });
		let stderr = '';
		c.stderr.on('data', (d) => (stderr += d));
		c.stdout.once('data', () => c.stdout.destroy());
		c.on('close', (code) => resolve({ code, stderr }));
	});
	assert.is(r.code, 0);
	assert.is(r.stderr, '');
});

test('bench --shape 8192x256 checks memory before allocating: one line, exit 1', () => {
	oneLine(cli(['bench', '--shape', '8192x256']), 1, /--shape 8192x256: random float32 weights need \d+\.\d GiB but only \d+\.\d GiB of memory is free/);
});

test('perplexity: --curve with absurdly small buckets is refused up front; without --curve --bucket costs nothing', () => {
	const dir = tempDir('ppl');
	const big = path.join(dir, 'big.txt');
	fs.writeFileSync(big, '');
	fs.truncateSync(big, 1_100_000); // sparse zeros: more buckets of 1 byte than allowed
	oneLine(cli(['perplexity', '-m', TINY, '--curve', '--bucket', '1', big]), 1, /more than 1000000 buckets/);
	const small = path.join(dir, 'small.txt');
	fs.writeFileSync(small, 'It was a dark and stormy night; the rain fell in torrents.\n'.repeat(20));
	const plain = cli(['perplexity', '-m', TINY, '--json', small]);
	const bucket1 = cli(['perplexity', '-m', TINY, '--json', '--bucket', '1', small]);
	assert.is(plain.status, 0, plain.stderr);
	assert.is(bucket1.status, 0, bucket1.stderr);
	const a = JSON.parse(plain.stdout), b = JSON.parse(bucket1.stdout);
	assert.is(b.curve, undefined);
	assert.is(b.bits_per_byte, a.bits_per_byte);
	// A config with training_context_length 1 (the default bucket) is no different.
	const model = tempDir('ctx1');
	for (const f of fs.readdirSync(TINY)) fs.copyFileSync(path.join(TINY, f), path.join(model, f));
	const cfg = JSON.parse(fs.readFileSync(path.join(model, 'config.json'), 'utf8'));
	fs.writeFileSync(path.join(model, 'config.json'), JSON.stringify({ ...cfg, training_context_length: 1 }));
	const c = cli(['perplexity', '-m', model, '--json', small]);
	assert.is(c.status, 0, c.stderr);
	assert.is(JSON.parse(c.stdout).bits_per_byte, a.bits_per_byte);
});

test('perplexity --window larger than the file is capped at its length: same score as one pass, no T x 256 logits', () => {
	const dir = tempDir('win');
	const file = path.join(dir, 'f.txt');
	fs.writeFileSync(file, 'Call me Ishmael. Some years ago, never mind how long precisely.\n'.repeat(40));
	const one = cli(['perplexity', '-m', TINY, '--json', file]);
	const win = cli(['perplexity', '-m', TINY, '--json', '--window', '1000000000', file]);
	assert.is(win.status, 0, win.stderr);
	const a = JSON.parse(one.stdout), b = JSON.parse(win.stdout);
	assert.ok(Math.abs(a.bits_per_byte - b.bits_per_byte) < 1e-4, `${a.bits_per_byte} vs ${b.bits_per_byte}`);
	assert.is(b.scored, a.scored);
});

test.run();
