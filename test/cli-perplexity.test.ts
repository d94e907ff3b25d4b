// perplexity and complete as pipelines use them: the run ends when the reader of stdout leaves, Ctrl-C prints the
// part scored so far (exit 130), binary-looking input gets a note, a long prompt reports its progress.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { referenceKernels } from '../src/backend/reference.js';
import { generateWithProgress } from '../src/cli/complete.js';
import { nonTextShare } from '../src/cli/perplexity.js';
import { generate, type GenerateOptions } from '../src/engine/generate.js';
import { byteModel, enc } from './engine-fixtures.js';

const BIN = path.resolve('bin/mambabyte.js');
const TINY = path.resolve('test/fixtures/tiny-hf');
const INPUT = path.resolve('test/fixtures/input.txt');
const dir = mkdtempSync(path.join(os.tmpdir(), 'mambabyte-ppl-'));
const BIG = path.join(dir, 'big.bin');
writeFileSync(BIG, Uint8Array.from({ length: 32 << 20 }, (_, i) => (i * 2654435761) >>> 24)); // minutes to score
test.after(() => rmSync(dir, { recursive: true, force: true }));

function spawnCli(args: string[], opts: { shell?: string; sigintAfterOutput?: boolean } = {}) {
	const child = opts.shell
		? spawn('sh', ['-c', opts.shell], { stdio: ['ignore', 'pipe', 'pipe'] })
		: spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
	let stdout = '', stderr = '';
	child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
	child.stderr.on('data', (d: Buffer) => {
		stderr += d.toString();
		// Interrupt once scoring of the big file is under way (the binary note comes after its first 64 KB).
		if (opts.sigintAfterOutput && /looks binary/.test(stderr)) child.kill('SIGINT');
	});
	const killer = setTimeout(() => child.kill('SIGKILL'), 120_000); // a hang fails the test instead of the suite
	return new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((resolve) =>
		child.on('close', (code, signal) => {
			clearTimeout(killer);
			resolve({ code, signal, stdout, stderr });
		}));
}

test('the run ends when the reader leaves (| head -c 20), not after scoring the next file', async () => {
	const r = await spawnCli([], { shell: `"${process.execPath}" "${BIN}" perplexity "${INPUT}" "${BIG}" -m "${TINY}" --backend cpu | head -c 20; echo " exit $?"` });
	assert.is(r.signal, null, 'killed: it kept scoring after head left');
	assert.match(r.stdout, / exit 0\n$/);
	assert.is(r.stdout.length, 20 + ' exit 0\n'.length);
});

test('Ctrl-C prints the part scored so far and exits 130', async () => {
	for (const json of [false, true]) {
		const r = await spawnCli(['perplexity', BIG, '-m', TINY, '--backend', 'cpu', ...(json ? ['--json'] : [])], { sigintAfterOutput: true });
		assert.is(r.code, 130, r.stderr);
		if (json) {
			const o = JSON.parse(r.stdout) as { file: string; bytes: number; scored: number; bits_per_byte: number; partial: boolean };
			assert.is(o.file, BIG);
			assert.ok(o.partial);
			assert.ok(o.bytes > 1 && o.bytes < 32 << 20 && o.scored === o.bytes - 1, JSON.stringify(o));
			assert.ok(Number.isFinite(o.bits_per_byte));
		} else {
			assert.match(r.stdout, new RegExp(`^${BIG.replace(/[.\\/]/g, '\\$&')}  \\d+\\.\\d{4} bits/byte  \\(interrupted: the first \\d+ bytes\\)\\n$`));
		}
		assert.not.match(r.stderr, /\n\s+at /);
	}
});

test('binary-looking input gets a one-line note; text does not', async () => {
	assert.ok(nonTextShare(Uint8Array.from({ length: 4096 }, (_, i) => (i * 2654435761) >>> 24)) > 0.3);
	assert.is(nonTextShare(enc('Plain text, “quoted” — ünïcode.\n\tTabbed line.\n')), 0);
	const small = path.join(dir, 'small.bin');
	writeFileSync(small, Uint8Array.from({ length: 3000 }, (_, i) => (i * 2654435761) >>> 24));
	const b = await spawnCli(['perplexity', small, '-m', TINY, '--backend', 'cpu']);
	assert.is(b.code, 0, b.stderr);
	assert.match(b.stderr, /^mambabyte: .*small.bin: looks binary \(\d+% of the first 64 KB is not text\); scored as bytes all the same\n$/);
	const t = await spawnCli(['perplexity', INPUT, '-m', TINY, '--backend', 'cpu']);
	assert.is(t.stderr, '');
});

test('a long prompt read with progress gives the same bytes as generate()', async () => {
	const model = byteModel(referenceKernels, 11);
	const prompt = enc('It was a dark and stormy night. '.repeat(400)); // 12.8 KB: several pieces
	const opts: GenerateOptions = { maxBytes: 24, temperature: 0.8, topK: 0, topP: 1, seed: 9, stop: [], utf8: true };
	const bytes = async (gen: AsyncGenerator<import('../src/engine/events.js').GenerationEvent>) => {
		const out: number[] = [];
		let promptBytes = -1;
		for await (const ev of gen) {
			if (ev.type === 'commit') out.push(...ev.bytes);
			if (ev.type === 'done') promptBytes = ev.stats.promptBytes;
		}
		return { out, promptBytes };
	};
	const lines: string[] = [];
	const a = await bytes(generateWithProgress(model, prompt, opts, null, (s) => lines.push(s)));
	const b = await bytes(generate(model, prompt, opts));
	assert.equal(a, b);
	assert.is(a.promptBytes, prompt.length);
	assert.ok(lines.some((l) => /reading the prompt: 8192 of 12800 bytes \(64%\)/.test(l)), lines.join('|'));
	assert.is(lines.at(-1), '\r\x1b[2K'); // the line is cleared before the continuation
});

test.run();
