// `mambabyte complete` end to end on the tiny fixtures (random byte model + random subword drafter): raw bytes on
// stdout equal the engine's output, --json fields, prompt from stdin, empty prompt, Ctrl-C exits 130 with what was
// generated, a closed stdout exits quietly.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GpuJsKernels } from '../src/backend/gpujs.js';
import { drafterKernels, openModel } from '../src/app/open.js';
import { NativeKernels, nativeAvailable } from '../src/backend/native.js';
import type { Kernels } from '../src/backend/types.js';
import { generate } from '../src/engine/generate.js';
import { concat, enc } from './engine-fixtures.js';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const bin = path.join(root, 'bin', 'mambabyte.js');
const model = path.join(root, 'test', 'fixtures', 'tiny-hf');
const drafter = path.join(root, 'test', 'fixtures', 'tiny-drafter');
const have = existsSync(path.join(model, 'config.json')) && existsSync(path.join(drafter, 'config.json')) && existsSync(bin);

interface Ran {
	code: number | null;
	signal: NodeJS.Signals | null;
	stdout: Buffer;
	stderr: string;
}

function cli(args: string[], input: Uint8Array | null = null, onStdout?: (all: Buffer, child: ReturnType<typeof spawn>) => void): Promise<Ran> {
	return new Promise((resolve, reject) => {
		const child = spawn(process.execPath, [bin, ...args], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] });
		const out: Buffer[] = [];
		let err = '';
		child.stdout.on('data', (d: Buffer) => {
			out.push(d);
			onStdout?.(Buffer.concat(out), child);
		});
		child.stdout.on('error', () => {});
		child.stderr.on('data', (d: Buffer) => (err += d.toString()));
		child.on('error', reject);
		child.on('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out), stderr: err }));
		if (input) child.stdin.end(Buffer.from(input));
		else child.stdin.end();
	});
}

const cpuKernels = GpuJsKernels.create('cpu');
const common = ['complete', '--model', model, '--backend', 'cpu', '--seed', '7'];

async function engineBytes(prompt: Uint8Array, n: number, temperature: number): Promise<Uint8Array> {
	const m = (await openModel(model, cpuKernels)).model; // the backend the CLI runs on here
	const parts: Uint8Array[] = [];
	const opts = { maxBytes: n, temperature, topK: 0, topP: 1, seed: 7, stop: [], utf8: true };
	for await (const ev of generate(m, prompt, opts)) if (ev.type === 'commit') parts.push(ev.bytes);
	return concat(parts);
}

test('stdout carries exactly the continuation bytes (greedy, with and without the drafter)', async () => {
	if (!have) return void console.log('  (skipped: test/fixtures/tiny-hf or tiny-drafter missing)');
	const want = await engineBytes(enc('It was a dark and stormy night'), 40, 0);
	const plain = await cli([...common, '-n', '40', '-t', '0', '--no-draft', 'It was a dark and stormy night']);
	assert.is(plain.code, 0, plain.stderr);
	assert.ok(plain.stdout.equals(Buffer.from(want)), 'no-draft output');
	const spec = await cli([...common, '-n', '40', '-t', '0', '--draft', drafter, 'It was a dark and stormy night']);
	assert.is(spec.code, 0, spec.stderr);
	assert.ok(spec.stdout.equals(Buffer.from(want)), 'speculative output');
	assert.is(spec.stderr, '');
});

test('prompt from stdin (all of it, as bytes) and --json', async () => {
	if (!have) return;
	const prompt = Uint8Array.from([...enc('line one\nline two\n'), 0xff, 0x41]);
	const want = await engineBytes(prompt, 25, 0);
	const r = await cli([...common, '-n', '25', '-t', '0', '--json', '--draft', drafter], prompt);
	assert.is(r.code, 0, r.stderr);
	const lines = r.stdout.toString().trim().split('\n');
	assert.is(lines.length, 1);
	const o = JSON.parse(lines[0]) as Record<string, unknown>;
	assert.equal(Object.keys(o), ['text', 'prompt_bytes', 'generated_bytes', 'seconds', 'bytes_per_second', 'speculative']);
	assert.is(o.text, new TextDecoder().decode(want));
	assert.is(o.prompt_bytes, prompt.length);
	assert.is(o.generated_bytes, 25);
	const s = o.speculative as Record<string, number>;
	for (const k of ['drafted', 'accepted', 'acceptance_rate', 'mean_accepted_run', 'verify_passes']) assert.type(s[k], 'number', k);
	const nd = await cli([...common, '-n', '5', '--json', '--no-draft'], enc('x'));
	assert.is((JSON.parse(nd.stdout.toString()) as { speculative: unknown }).speculative, null);
});

test('empty prompt: generates from a newline', async () => {
	if (!have) return;
	const want = await engineBytes(enc('\n'), 12, 0);
	const r = await cli([...common, '-n', '12', '-t', '0', '--no-draft'], new Uint8Array(0));
	assert.is(r.code, 0, r.stderr);
	assert.ok(r.stdout.equals(Buffer.from(want)));
});

test('Ctrl-C stops cleanly with exit code 130, keeping what was written', async () => {
	if (!have) return;
	let sent = false;
	const r = await cli([...common, '-n', '100000000', '--draft', drafter, 'Once'], null, (all, child) => {
		if (!sent && all.length >= 50) {
			sent = true;
			child.kill('SIGINT');
		}
	});
	assert.ok(sent, 'output arrived');
	assert.is(r.code, 130, `code ${r.code} signal ${r.signal} stderr ${r.stderr}`);
	assert.ok(r.stdout.length >= 50 && r.stdout.length < 100000000);
	assert.is(r.stderr, '');
});

test('a closed stdout (| head -c 10) exits quietly', async () => {
	if (!have) return;
	const r = await cli([...common, '-n', '100000000', '--no-draft', 'Once'], null, (all, child) => {
		if (all.length >= 10) child.stdout?.destroy();
	});
	assert.is(r.code, 0, `code ${r.code} signal ${r.signal} stderr ${r.stderr}`);
	assert.is(r.stderr, '');
});

test('a subword model as --model is refused with one line, exit 1', async () => {
	if (!have) return;
	const r = await cli(['complete', '--model', drafter, '--backend', 'cpu', '-n', '3', 'x']);
	assert.is(r.code, 1);
	assert.match(r.stderr, /subword model/);
	assert.is(r.stderr.trim().split('\n').length, 1);
});

test('the drafter runs native beside a GPU-resident byte model, elsewhere on the byte model\'s kernels', () => {
	assert.ok(nativeAvailable(), 'the native addon is built at install: without it this would prove nothing');
	const cpu = GpuJsKernels.create('cpu');
	assert.is(drafterKernels(cpu), cpu);
	const native = NativeKernels.create();
	assert.is(drafterKernels(native), native);
	assert.is(drafterKernels({ name: 'webgpu' } as Kernels).name, 'native');
});

test.run();
