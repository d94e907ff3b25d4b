// The library as another project sees it: README "Library"'s example, taken from README.md and run as written from
// a folder whose node_modules/mambabyte links to this package, so `import ... from 'mambabyte'` goes through
// package.json's exports. Its output is checked against the engine itself on the same backend: the streamed
// greedy bytes, the bits per byte, and a session's continuation after restoring its saved state. The same code as
// TypeScript must type-check against the emitted declarations.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openModel } from '../src/app/open.js';
import { DEFAULT_MODEL } from '../src/app/sources.js';
import { parseBackend } from '../src/backend/select.js';
import type { PerplexityResult } from '../src/engine/events.js';
import { generate, Session } from '../src/engine/generate.js';
import { scoreStream } from '../src/engine/perplexity.js';
import type { LanguageModel } from '../src/model/types.js';
import { collect, load, UserError } from '../src/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const enc = new TextEncoder();

/** The first ```js block of the README's Library section. */
function readmeExample(): string {
	const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
	const at = readme.indexOf('\n## Library\n');
	assert.ok(at >= 0, 'README has a Library section');
	const block = /```js\n([\s\S]*?)```/.exec(readme.slice(at, readme.indexOf('\n## ', at + 1)));
	assert.ok(block, 'the Library section has a js example');
	return block![1];
}

/** A folder that depends on this package by name; removed by the caller. */
function consumer(): string {
	const dir = mkdtempSync(path.join(os.tmpdir(), 'mambabyte-library-'));
	mkdirSync(path.join(dir, 'node_modules'));
	symlinkSync(root, path.join(dir, 'node_modules', 'mambabyte'), 'dir');
	return dir;
}

// Appended to the example: the values it computed, for the checks below.
const REPORT = `\nconsole.log('\\n@@' + JSON.stringify({ backend: model.backend, drafter: model.drafter, bits_per_byte, first: first.text, again: again.text }));\n`;

async function greedy(model: LanguageModel, prompt: string, n: number): Promise<Buffer> {
	const parts: Uint8Array[] = [];
	const opts = { maxBytes: n, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [], utf8: true };
	for await (const ev of generate(model, enc.encode(prompt), opts)) if (ev.type === 'commit') parts.push(ev.bytes);
	return Buffer.concat(parts);
}

async function sessionGreedy(model: LanguageModel, context: string, n: number): Promise<string> {
	const s = new Session(model, null);
	await s.append(enc.encode(context));
	const parts: Uint8Array[] = [];
	for await (const ev of s.generate({ maxBytes: n, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [], utf8: true })) if (ev.type === 'commit') parts.push(ev.bytes);
	s.free();
	return new TextDecoder().decode(Buffer.concat(parts));
}

async function engineScore(model: LanguageModel, text: string): Promise<PerplexityResult> {
	const bytes = enc.encode(text);
	const events = scoreStream(model, 'input', bytes.length, (async function* () { yield bytes; })(), {
		curve: false, bucket: 2048, window: null, backend: model.kernels.name, model: model.checkpoint.name,
	});
	for (;;) {
		const n = await events.next();
		if (n.done) return n.value;
	}
}

test("the README's example runs as written, importing 'mambabyte' by name, and gives the engine's own results", async () => {
	const dir = consumer();
	try {
		writeFileSync(path.join(dir, 'example.mjs'), readmeExample() + REPORT);
		const run = spawnSync(process.execPath, ['example.mjs'], { cwd: dir, timeout: 300_000 });
		assert.is(run.status, 0, run.stderr.toString());
		const out = run.stdout;
		const at = out.lastIndexOf('\n@@');
		assert.ok(at > 0, out.toString());
		const got = JSON.parse(out.subarray(at + 3).toString()) as { backend: string; drafter: string | null; bits_per_byte: number; first: string; again: string };
		assert.is(got.drafter, 'subword-drafter', 'load() takes the shipped drafter by default');

		const { model } = await openModel(DEFAULT_MODEL, parseBackend(got.backend));
		// Greedy with the drafter and the exact rule: the byte model's own greedy bytes, streamed as they came.
		const want = await greedy(model, 'It was a dark and stormy night', 48);
		assert.is(want.length, 48);
		const printed = out.subarray(0, at).toString();
		assert.ok(out.subarray(0, want.length).equals(want), `streamed ${JSON.stringify(out.subarray(0, 48).toString())}, engine ${JSON.stringify(want.toString())}`);
		assert.match(printed.slice(want.length), new RegExp(`^\\n48 bytes, \\d+ bytes/s on ${got.backend}\\n`));

		const score = await engineScore(model, 'The quick brown fox jumps over the lazy dog.');
		assert.is(got.bits_per_byte, score.bits_per_byte);
		assert.ok(Number.isFinite(score.bits_per_byte) && score.bits_per_byte > 0.5 && score.bits_per_byte < 8, String(score.bits_per_byte));
		assert.ok(printed.includes(`\n${score.bits_per_byte.toFixed(4)} bits/byte\n`), printed);

		const continuation = await sessionGreedy(model, 'Once upon a time', 32);
		assert.is(got.first, continuation, 'the session continues the appended text');
		assert.is(got.again, got.first, 'restoring the saved state gives the same continuation');
		assert.ok(printed.includes(`${JSON.stringify(continuation)} (the same after restoring)`), printed);
	} finally {
		rmSync(dir, { recursive: true, force: true });
	}
});

test('the example type-checks against the declarations the package exports', () => {
	const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { types: string; exports: Record<string, { types: string; default: string } | string> };
	const main = pkg.exports['.'] as { types: string; default: string };
	for (const f of [pkg.types, main.types, main.default]) assert.ok(existsSync(path.join(root, f)), `${f} is built`);
	assert.is(pkg.exports['./package.json'], './package.json');
	const dir = consumer();
	try {
		// A deliberate type error must fail, so a pass means the example's types were really checked.
		writeFileSync(path.join(dir, 'example.mts'), readmeExample());
		writeFileSync(path.join(dir, 'wrong.mts'), "import { load } from 'mambabyte';\nconst m = await load({ model: 42 });\n");
		const tsc = (file: string) => spawnSync(process.execPath, [
			path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext',
			'--target', 'es2022', '--skipLibCheck', '--types', 'node', '--typeRoots', path.join(root, 'node_modules', '@types'), file,
		], { cwd: dir, timeout: 120_000 });
		const ok = tsc('example.mts');
		assert.is(ok.status, 0, ok.stdout.toString());
		const bad = tsc('wrong.mts');
		assert.is(bad.status, 2, bad.stdout.toString());
		assert.match(bad.stdout.toString(), /wrong\.mts.*number.*string/);
	} finally {
		rmSync(dir, { recursive: true, force: true });
	}
});

test('library errors are one-line UserErrors naming the option; a foreign state is refused and changes nothing', async () => {
	const error = async (p: Promise<unknown>) => {
		try {
			await p;
		} catch (e) {
			assert.instance(e, UserError);
			return (e as Error).message;
		}
		throw new Error('expected a UserError');
	};
	assert.match(await error(load({ model: '/no/such/model', drafter: null })), /^model \/no\/such\/model: no such folder/);
	assert.match(await error(load({ drafter: '/no/such/drafter', backend: 'cpu' })), /^drafter \/no\/such\/drafter: no such folder/);
	assert.match(await error(load({ model: path.join(root, 'test', 'fixtures', 'tiny-drafter'), drafter: null, backend: 'cpu' })), /^model .*tiny-drafter: this is a subword model .*use it as drafter/);

	const tiny = await load({ model: path.join(root, 'test', 'fixtures', 'tiny-hf'), drafter: null, backend: 'cpu' });
	assert.match(await error(collect(tiny.session().generate())), /^nothing to continue yet: append text first$/);
	const shipped = await load({ drafter: null, backend: 'cpu' });
	const a = shipped.session();
	await a.append('Once upon a time');
	const foreign = await a.saveState();
	const b = tiny.session();
	await b.append('Hello');
	const before = await b.saveState();
	assert.match(await error((async () => b.restoreState(foreign))()), /^cannot restore the saved state: /);
	assert.ok(Buffer.from(await b.saveState()).equals(Buffer.from(before)), 'the refused state left the session as it was');
	assert.is(b.position, 5);
	a.free();
	b.free();
});

test.run();
