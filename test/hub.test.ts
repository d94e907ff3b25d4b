// `--model ORG/NAME` against a local stand-in for the Hugging Face Hub (hub-server.ts; this machine has no network,
// so this is the proof that the client speaks the Hub's protocol): the standard cache layout, offline reuse,
// resume after a cut connection (within a run and across runs), a wrong checksum, 401 without a token, file choice.
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { resolveHubModel } from '../src/hub/index.js';
import { parseHubName } from '../src/hub/name.js';
import { selectFiles } from '../src/hub/select.js';
import { HubServer } from './hub-server.js';

const BIN = path.resolve('bin/mambabyte.js');
const read = (dir: string) => Object.fromEntries(readdirSync(dir).filter((f) => f !== 'expected.json' && f !== 'logits.bin').map((f) => [f, new Uint8Array(readFileSync(path.join(dir, f)))]));
const SSM = read('test/fixtures/tiny-ssm-ln-bin'); // config.json + pytorch_model.bin: the published MambaByte layout
const HF = read('test/fixtures/tiny-hf');

const server = new HubServer({
	'JunxiongWang/TinyByte': { files: { ...SSM, 'README.md': new TextEncoder().encode('# tiny\n') }, lfs: ['pytorch_model.bin'] },
	'org/safetensors': { files: HF, lfs: ['model.safetensors'] },
	'org/private': { files: SSM, lfs: ['pytorch_model.bin'], privateToken: 'hf_secret' },
	'org/ggufs': { files: { 'a-q8.gguf': new Uint8Array(100), 'b-f16.gguf': new Uint8Array(300), 'README.md': new Uint8Array(3) }, lfs: ['a-q8.gguf', 'b-f16.gguf'] },
	'org/nothing': { files: { 'README.md': new Uint8Array(3) } },
});
const homes: string[] = [];
const newHome = () => {
	const h = mkdtempSync(path.join(os.tmpdir(), 'mambabyte-hub-'));
	homes.push(h);
	return h;
};
const envOf = (home: string, extra: Record<string, string> = {}) => ({ ...process.env, HF_HOME: home, HF_ENDPOINT: server.endpoint, HF_TOKEN: '', ...extra });

function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
	return new Promise((resolve) => {
		const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
		let stdout = '', stderr = '';
		child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
		child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
		child.on('close', (code) => resolve({ code, stdout, stderr }));
	});
}

test.before(async () => {
	await server.start();
});
test.after(async () => {
	await server.stop();
	for (const h of homes) rmSync(h, { recursive: true, force: true });
});

test('names: ORG/NAME[/FILE][@REV]', () => {
	assert.equal(parseHubName('JunxiongWang/MambaByte_PG19_972M'), { repo: 'JunxiongWang/MambaByte_PG19_972M', file: null, revision: 'main' });
	assert.equal(parseHubName('a/b/q/x.gguf@v1'), { repo: 'a/b', file: 'q/x.gguf', revision: 'v1' });
	assert.throws(() => parseHubName('a/../b'), /expected a hub repo/);
	assert.equal(selectFiles('r', ['config.json', 'pytorch_model.bin', 'README.md'], null).files, ['config.json', 'pytorch_model.bin']);
	assert.equal(selectFiles('r', ['config.json', 'model.safetensors', 'pytorch_model.bin', 'tokenizer.json'], null).files, ['config.json', 'model.safetensors', 'tokenizer.json']);
	assert.throws(() => selectFiles('r', ['README.md', 'model.onnx'], null), /no checkpoint this runtime reads/);
});

test('the CLI downloads a mamba_ssm repo into the HF cache layout, then runs offline from it', async () => {
	const home = newHome();
	server.seen.length = 0;
	const r = await cli(['-m', 'JunxiongWang/TinyByte', '-n', '5', '--seed', '1', '--backend', 'cpu', '--json', 'hello'], envOf(home));
	assert.is(r.code, 0, r.stderr);
	assert.is((JSON.parse(r.stdout) as { generated_bytes: number }).generated_bytes, 5);
	assert.is(r.stderr, ''); // no progress bar when stderr is not a terminal
	const repo = path.join(home, 'hub', 'models--JunxiongWang--TinyByte');
	const commit = server.commitOf('JunxiongWang/TinyByte');
	assert.is(readFileSync(path.join(repo, 'refs', 'main'), 'utf8'), commit);
	const snap = path.join(repo, 'snapshots', commit);
	assert.equal(readdirSync(snap).sort(), ['config.json', 'pytorch_model.bin']); // not the README
	for (const f of ['config.json', 'pytorch_model.bin']) {
		assert.ok(lstatSync(path.join(snap, f)).isSymbolicLink());
		assert.match(readlinkSync(path.join(snap, f)), /^\.\.\/\.\.\/blobs\/[0-9a-f]{40,64}$/);
		assert.equal(new Uint8Array(readFileSync(path.join(snap, f))), SSM[f]);
	}
	assert.ok(readdirSync(path.join(repo, 'blobs')).some((b) => /^[0-9a-f]{64}$/.test(b))); // the LFS blob, by sha256
	assert.ok(server.seen.some((s) => s.url.startsWith('/storage/'))); // the LFS redirect was followed
	// Again, offline and with the server unused: the same bytes from the cache.
	server.seen.length = 0;
	const again = await cli(['-m', 'JunxiongWang/TinyByte', '-n', '5', '--seed', '1', '--backend', 'cpu', '--json', 'hello'], envOf(home, { HF_HUB_OFFLINE: '1' }));
	assert.is(again.code, 0, again.stderr);
	const text = (o: string) => (JSON.parse(o) as { text: string }).text;
	assert.is(text(again.stdout), text(r.stdout));
	assert.is(server.seen.length, 0);
	const pinned = await cli(['-m', `JunxiongWang/TinyByte@${commit}`, '-n', '5', '--seed', '1', '--backend', 'cpu', '--json', 'hello'], envOf(home, { HF_HUB_OFFLINE: '1' }));
	assert.is(text(pinned.stdout), text(r.stdout));
});

test('a cut connection is resumed with a Range request, within a run and in the next run', async () => {
	const home = newHome();
	const size = SSM['pytorch_model.bin'].length;
	server.faults = { cutAfter: 20000, cutTimes: 1 };
	server.seen.length = 0;
	const dir = await resolveHubModel('JunxiongWang/TinyByte', { env: envOf(home) });
	assert.equal(new Uint8Array(readFileSync(path.join(dir, 'pytorch_model.bin'))), SSM['pytorch_model.bin']);
	assert.ok(server.seen.some((s) => s.range === 'bytes=20000-'), JSON.stringify(server.seen.map((s) => s.range)));
	// Every answer cut: the run fails after 3 tries, the partial blob stays and the next run goes on from it.
	const home2 = newHome();
	server.faults = { cutAfter: 10000 };
	const r = await cli(['perplexity', '-m', 'JunxiongWang/TinyByte', path.resolve('test/fixtures/input.txt')], envOf(home2));
	assert.is(r.code, 1);
	assert.match(r.stderr, /^mambabyte: pytorch_model.bin: the download broke off 3 times .* run again to resume from 30000 bytes\n$/);
	const blobs = path.join(home2, 'hub', 'models--JunxiongWang--TinyByte', 'blobs');
	const partial = readdirSync(blobs).find((b) => b.endsWith('.incomplete'))!;
	assert.is(statSync(path.join(blobs, partial)).size, 30000);
	server.faults = {};
	server.seen.length = 0;
	const ok = await cli(['perplexity', '-m', 'JunxiongWang/TinyByte', '--json', '--backend', 'cpu', path.resolve('test/fixtures/input.txt')], envOf(home2));
	assert.is(ok.code, 0, ok.stderr);
	assert.ok(server.seen.some((s) => s.range === 'bytes=30000-'));
	assert.not.ok(readdirSync(blobs).some((b) => b.endsWith('.incomplete')));
	assert.ok(size > 30000);
});

test('a wrong checksum is refused and nothing is kept', async () => {
	const home = newHome();
	server.faults = { corrupt: true };
	try {
		await resolveHubModel('JunxiongWang/TinyByte', { env: envOf(home) });
		assert.unreachable('a corrupt download was accepted');
	} catch (e) {
		assert.match((e as Error).message, /pytorch_model.bin: checksum mismatch \(sha256 [0-9a-f]{64}, the hub's ETag says [0-9a-f]{64}\)/);
	} finally {
		server.faults = {};
	}
	const repo = path.join(home, 'hub', 'models--JunxiongWang--TinyByte');
	assert.equal(readdirSync(path.join(repo, 'blobs')).filter((b) => b.length === 64 || b.endsWith('.incomplete')), []);
	assert.not.ok(existsSync(path.join(repo, 'refs', 'main')));
});

test('401 without a token names HF_TOKEN; with it the download works; safetensors repos too', async () => {
	const home = newHome();
	const r = await cli(['-m', 'org/private', 'hi'], envOf(home));
	assert.is(r.code, 1);
	assert.match(r.stderr, /^mambabyte: org\/private@main: the hub refused access \(401\); set HF_TOKEN/);
	const dir = await resolveHubModel('org/private', { env: envOf(home, { HF_TOKEN: 'hf_secret' }) });
	assert.ok(existsSync(path.join(dir, 'pytorch_model.bin')));
	const st = await resolveHubModel('org/safetensors', { env: envOf(home) });
	assert.equal(readdirSync(st).sort(), ['config.json', 'model.safetensors']);
});

test('GGUF repos: one file must be named; only it is downloaded; other repos and offline misses are one line', async () => {
	const home = newHome();
	try {
		await resolveHubModel('org/ggufs', { env: envOf(home) });
		assert.unreachable();
	} catch (e) {
		assert.match((e as Error).message, /org\/ggufs: 2 .gguf files; name one as org\/ggufs\/FILE.gguf or with --model-file \(a-q8.gguf, b-f16.gguf\)/);
	}
	const file = await resolveHubModel('org/ggufs/b-f16.gguf', { env: envOf(home) });
	assert.ok(file.endsWith(path.join('snapshots', server.commitOf('org/ggufs'), 'b-f16.gguf')));
	assert.is(statSync(file).size, 300);
	assert.equal(readdirSync(path.dirname(file)), ['b-f16.gguf']);
	assert.is(await resolveHubModel('org/ggufs', { env: envOf(home), file: 'b-f16.gguf' }), file);
	const none = await cli(['-m', 'org/nothing', 'hi'], envOf(home));
	assert.match(none.stderr, /^mambabyte: org\/nothing: no checkpoint this runtime reads/);
	const missing = await cli(['-m', 'org/absent', 'hi'], envOf(home));
	assert.is(missing.code, 1);
	assert.match(missing.stderr, /org\/absent@main: not found/);
	const offline = await cli(['-m', 'org/safetensors', 'hi'], envOf(newHome(), { HF_HUB_OFFLINE: '1' }));
	assert.is(offline.code, 1);
	assert.match(offline.stderr, /org\/safetensors: not in the hub cache .* HF_HUB_OFFLINE is set/);
});

test.run();
