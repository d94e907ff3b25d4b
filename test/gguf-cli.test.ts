// The GGUF features from the command line: --model FILE.gguf, convert to GGUF with its per-tensor type report,
// perplexity --kl-divergence in text and JSON, and a model of the planned next default's shape (d 512, 11 layers).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeCheckpointGguf } from '../src/checkpoint/gguf-model.js';
import { loadModel } from '../src/checkpoint/load.js';
import { isQMatrix } from '../src/tensor/qmatrix.js';
import { randomCheckpoint } from '../src/model/random.js';

const BIN = path.resolve('bin/mambabyte.js');
const DIR = path.resolve('../shared/fixtures/gguf');
const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', input: '' });

test('perplexity --model FILE.gguf prints the bits per byte of the reference', () => {
	const r = run('perplexity', path.join(DIR, 'input.txt'), '--model', path.join(DIR, 'tiny-q8_0.gguf'), '--backend', 'cpu', '--json', '--verbose');
	assert.is(r.status, 0, r.stderr);
	const out = JSON.parse(r.stdout.trim());
	const want = JSON.parse(fs.readFileSync(path.join(DIR, 'expected.json'), 'utf8'))['tiny-q8_0.gguf'].bits_per_byte_input;
	assert.ok(Math.abs(out.bits_per_byte - want) < 1e-4, `${out.bits_per_byte} vs ${want}`);
	assert.match(r.stderr, /q8_0 weights dequantized to float32 for the cpu backend/);
	// native computes on the blocks as stored, so it says nothing of the kind
	const n = run('perplexity', path.join(DIR, 'input.txt'), '--model', path.join(DIR, 'tiny-q8_0.gguf'), '--backend', 'native', '--json', '--verbose');
	assert.is(n.status, 0, n.stderr);
	assert.match(n.stderr, /backend native/);
	assert.not.match(n.stderr, /dequantized/);
});

test('perplexity --kl-divergence BASE: text and JSON', () => {
	const args = ['perplexity', path.join(DIR, 'text.txt'), '--model', path.join(DIR, 'tiny-q4_0.gguf'), '--kl-divergence', path.join(DIR, 'tiny-f32.gguf'), '--backend', 'cpu'];
	const text = run(...args);
	assert.is(text.status, 0, text.stderr);
	assert.match(text.stdout, /tiny-q4_0 vs tiny-f32: KL mean \S+ nats\/byte {2}median \S+ {2}p90 \S+ {2}p99 \S+ {2}max \S+ {2}top-1 agreement \d+\.\d+%/);
	const j = JSON.parse(run(...args, '--json').stdout.trim());
	for (const k of ['kl_mean', 'kl_median', 'kl_p90', 'kl_p99', 'kl_max', 'top1_agreement', 'bits_per_byte', 'bits_per_byte_base']) assert.type(j[k], 'number', k);
	assert.is(j.scored, 573);
	assert.ok(j.kl_mean > 0 && j.top1_agreement > 0.5);
	const bad = run('perplexity', path.join(DIR, 'text.txt'), '--model', path.join(DIR, 'tiny-q4_0.gguf'), '--kl-divergence', '/no/such.gguf');
	assert.is(bad.status, 1); // a missing model file is a runtime failure, like a missing --model (README)
	assert.match(bad.stderr, /^mambabyte: --kl-divergence \/no\/such.gguf: no such folder \(expected a checkpoint folder, a .gguf file or a hub repo ORG\/NAME\)\n$/);
});

test('convert --dtype q4_k reports the tensors llama-quantize stores in other types; bad OUT is one line', () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mambabyte-gguf-cli-'));
	try {
		const r = run('convert', path.join(DIR, 'source'), path.join(dir, 'q4k.gguf'), '--dtype', 'q4_k');
		assert.is(r.status, 0, r.stderr);
		assert.match(r.stdout, /→ Q4_K GGUF\)/);
		assert.match(r.stdout, /1 tensor as Q6_K: the output matrix/);
		assert.match(r.stdout, /2 tensors as Q5_0: 32 columns are not whole q4_k blocks/);
		const bad = run('convert', path.join(DIR, 'source'), path.join(dir, 'folder'), '--dtype', 'q8_0');
		assert.is(bad.status, 2);
		assert.match(bad.stderr, /writes a single GGUF file; name OUT \*\.gguf/);
		const badType = run('convert', path.join(DIR, 'source'), path.join(dir, 'x.gguf'), '--dtype', 'q3_k');
		assert.is(badType.status, 2);
		assert.match(badType.stderr, /--dtype q3_k: expected f16, bf16, f32, q8_0, q4_0, q4_k, q6_k/);
	} finally {
		fs.rmSync(dir, { recursive: true, force: true });
	}
});

test('a Q8_0 GGUF of the next default shape (d 512, 11 layers, d_inner 1024, dt_rank 32, tied) loads', () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mambabyte-gguf-shape-'));
	try {
		const c = { dModel: 512, nLayer: 11, vocabSize: 256, dInner: 1024, dState: 16, dConv: 4, dtRank: 32, eps: 1e-5, norm: 'rms' as const, tied: true, contextLength: 4096 };
		const file = path.join(dir, 'next.gguf');
		writeCheckpointGguf(randomCheckpoint(c, 5), file, 'q8_0');
		const m = loadModel(file);
		assert.equal({ ...m.config, eps: 1e-5 }, c); // eps is stored as float32
		assert.is(m.weights.lmHead, undefined); // no output.weight: tied, as llama.cpp reads it
		for (const w of [m.weights.embedding, m.weights.layers[10].inProj, m.weights.layers[10].dtProj]) assert.ok(isQMatrix(w) && w.qtype === 'q8_0');
	} finally {
		fs.rmSync(dir, { recursive: true, force: true });
	}
});

test.run();
