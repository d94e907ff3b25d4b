// Issue 17, kinds 2, 3, 8 and 9: pytorch_model.bin amplification, tokenizer.json shapes, pickle memo floods, and
// `convert` file safety (real-path IN == OUT, planted symlinks, races, full or read-only disks, partial files).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import fsDefault from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import osDefault from 'node:os';
import path from 'node:path';
import zlibDefault from 'node:zlib';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { convertCheckpoint } from '../src/checkpoint/convert.js';
import { loadCheckpoint } from '../src/checkpoint/load.js';
import { unpickle, MAX_MEMO } from '../src/checkpoint/pickle.js';
import { ZipReader } from '../src/checkpoint/zip.js';
import { ByteLevelTokenizer } from '../src/engine/tokenizer.js';
import { PickleBuilder, tinyConfig, tinyTensors, torchPickle, torchZip, zipWithPickle } from './helpers/checkpoint-fixtures.js';
import { BIN, removeTempDirs, SECRET, tempDir, TINY, TINY_DRAFTER, userError } from './helpers/hostile.js';

test.after(removeTempDirs);

function binFolder(bytes: Uint8Array): string {
	const dir = tempDir('bin');
	fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(tinyConfig()));
	fs.writeFileSync(path.join(dir, 'pytorch_model.bin'), bytes);
	return dir;
}

/** Replace a builtin module function for the duration of fn (ESM named imports follow via syncBuiltinESMExports). */
function patched<T extends object, K extends keyof T>(mod: T, key: K, value: T[K], fn: () => void): void {
	const old = mod[key];
	mod[key] = value;
	syncBuiltinESMExports();
	try {
		fn();
	} finally {
		mod[key] = old;
		syncBuiltinESMExports();
	}
}

// ---- pytorch_model.bin ----

test('a deflated storage claiming far more than its stored bytes is refused before inflating (compression bomb)', () => {
	const t = tinyTensors();
	const zeros = new Uint8Array(8 << 20); // 8 MiB of zeros deflates to ~8 KB: over 1000x
	const { pkl } = torchPickle(t);
	const storages = new Map<string, Uint8Array>();
	t.forEach((x, i) => storages.set(String(i), i === 0 ? zeros : new Uint8Array(x.data.length * 4)));
	userError(() => loadCheckpoint(binFolder(zipWithPickle(pkl, storages, { deflate: true }))), /declares an impossible size 8388608 for \d+ stored bytes \(over 64x/);
});

test('many tensors viewing one storage cannot declare more than 64x the stored bytes', () => {
	// 200 tensors, each a legal view of the whole of one 16 KB storage: together they would ask for 200x the file.
	const numel = 4096;
	const p = new PickleBuilder(true);
	p.op(0x80, 4);
	p.global('collections', 'OrderedDict').op(0x29, 0x52).put().op(0x28);
	for (let i = 0; i < 200; i++) {
		p.str(`view${i}`).put();
		p.global('torch._utils', '_rebuild_tensor_v2');
		p.op(0x28);
		p.op(0x28).str('storage').global('torch', 'FloatStorage').str('0').str('cpu').int(numel).op(0x74, 0x51).put();
		p.int(0).tuple([numel]).tuple([1]).op(0x89);
		p.global('collections', 'OrderedDict').op(0x29, 0x52).put();
		p.op(0x74, 0x52).put();
	}
	p.op(0x75, 0x2e); // SETITEMS, STOP
	const data = new Uint8Array(numel * 4).map((_, i) => (i * 2654435761) >>> 24); // barely compressible
	const bin = zipWithPickle(p.bytes(), new Map([['0', data]]), { proto4: true });
	userError(() => loadCheckpoint(binFolder(bin)), /tensors declare 3276800 bytes but the archive stores only 16384 \(over 64x/);
});

test('a deflated storage shared by every tensor is inflated once, and the model still loads', () => {
	const t = tinyTensors();
	const dir = binFolder(torchZip(t, { oneStorage: true, deflate: true }));
	const proto = ZipReader.prototype as unknown as { inflate: (e: { name: string }) => Buffer };
	const original = proto.inflate;
	const seen: string[] = [];
	proto.inflate = function (this: unknown, e: { name: string }) {
		seen.push(e.name);
		return original.call(this, e);
	};
	try {
		const ck = loadCheckpoint(dir);
		assert.equal(ck.weights.embedding, t[0].data);
	} finally {
		proto.inflate = original;
	}
	assert.is(seen.filter((n) => n.endsWith('data/0')).length, 1, `inflated ${seen.length} times`);
});

test('memory is checked before inflating, and out-of-memory is not called corrupt data', () => {
	const dir = binFolder(torchZip(tinyTensors(), { deflate: true }));
	patched(osDefault, 'freemem', () => 100, () => {
		userError(() => loadCheckpoint(dir), /needs 0\.00 GiB to inflate but only 0\.00 GiB of memory is free/);
	});
	patched(zlibDefault, 'inflateRawSync', (() => {
		throw new RangeError('Array buffer allocation failed');
	}) as typeof zlibDefault.inflateRawSync, () => {
		userError(() => loadCheckpoint(dir), /out of memory while inflating/);
	});
	patched(zlibDefault, 'inflateRawSync', (() => {
		throw Object.assign(new Error('invalid stored block lengths'), { code: 'Z_DATA_ERROR' });
	}) as typeof zlibDefault.inflateRawSync, () => {
		userError(() => loadCheckpoint(dir), /corrupt deflate data/);
	});
});

test('a pickle of millions of MEMOIZE opcodes stops at the memo cap with one line', () => {
	const n = MAX_MEMO + 10;
	const data = new Uint8Array(3 + n + 1);
	data.set([0x80, 4, 0x4e]); // PROTO 4, NONE
	data.fill(0x94, 3, 3 + n); // MEMOIZE ...
	data[3 + n] = 0x2e; // STOP
	const hooks = { global: () => null, reduce: () => null, build: () => null, persistentLoad: () => null } as never;
	userError(() => unpickle(data, hooks, 'x.bin'), /more than 4194304 memo entries/);
});

// ---- tokenizer.json ----

const baseTokenizer = () => JSON.parse(fs.readFileSync(path.join(TINY_DRAFTER, 'tokenizer.json'), 'utf8'));
/** tokenizer.json text whose pre-tokenizer is `depth` Sequences deep (built as text: JSON.stringify would overflow). */
function deepText(depth: number): string {
	const inner = JSON.stringify({ type: 'ByteLevel', add_prefix_space: false });
	const t = JSON.stringify({ ...baseTokenizer(), pre_tokenizer: 'HOLE' });
	return t.replace('"HOLE"', '{"type":"Sequence","pretokenizers":['.repeat(depth) + inner + ']}'.repeat(depth));
}
/** The hostile tokenizer.json files of the issue (and neighbours): name, JSON text, what the message says. */
export const HOSTILE_TOKENIZERS: [string, () => string, RegExp][] = [
	['null', () => 'null', /expected a JSON object/],
	['a list', () => '[]', /expected a JSON object/],
	['no model', () => JSON.stringify({ ...baseTokenizer(), model: undefined }), /no "model" object/],
	['model null', () => JSON.stringify({ ...baseTokenizer(), model: null }), /no "model" object/],
	['WordPiece model', () => JSON.stringify({ ...baseTokenizer(), model: { ...baseTokenizer().model, type: 'WordPiece' } }), /model\.type is not "BPE"/],
	['vocab missing', () => { const t = baseTokenizer(); delete t.model.vocab; return JSON.stringify(t); }, /model\.vocab must be an object/],
	['vocab a list', () => { const t = baseTokenizer(); t.model.vocab = ['a']; return JSON.stringify(t); }, /model\.vocab must be an object/],
	['vocab empty', () => { const t = baseTokenizer(); t.model.vocab = {}; return JSON.stringify(t); }, /model\.vocab is empty/],
	['id 2^31-1', () => { const t = baseTokenizer(); t.model.vocab['zz'] = 2 ** 31 - 1; return JSON.stringify(t); }, /has an id that is not an integer in 0\.\.999999/],
	['id negative', () => { const t = baseTokenizer(); t.model.vocab['zz'] = -1; return JSON.stringify(t); }, /has an id/],
	['id a string', () => { const t = baseTokenizer(); t.model.vocab['zz'] = '7'; return JSON.stringify(t); }, /has an id/],
	['merges a string', () => { const t = baseTokenizer(); t.model.merges = 'a b'; return JSON.stringify(t); }, /model\.merges must be a list/],
	['merges missing', () => { const t = baseTokenizer(); delete t.model.merges; return JSON.stringify(t); }, /model\.merges must be a list/],
	['merges mixed spellings', () => { const t = baseTokenizer(); t.model.merges = [['a', 'b'], 'c d']; return JSON.stringify(t); }, /model\.merges\[1\]/],
	['merge of numbers', () => { const t = baseTokenizer(); t.model.merges = [[1, 2]]; return JSON.stringify(t); }, /model\.merges\[0\]/],
	['unknown pre-tokenizer', () => JSON.stringify({ ...baseTokenizer(), pre_tokenizer: { type: 'Evil' } }), /pre_tokenizer has an unknown or missing type/],
	['pre-tokenizer a string', () => JSON.stringify({ ...baseTokenizer(), pre_tokenizer: 'ByteLevel' }), /pre_tokenizer must be an object/],
	['pre-tokenizer 20k deep', () => deepText(20_000), /nested (deeper than 64 levels|too deeply)/],
	['pre-tokenizer 10 Sequences deep', () => deepText(10), /nested deeper than 8 Sequence levels/],
	['unknown normalizer', () => JSON.stringify({ ...baseTokenizer(), normalizer: { type: 'X' } }), /normalizer has an unknown/],
	['unknown decoder', () => JSON.stringify({ ...baseTokenizer(), decoder: { type: 'X' } }), /decoder has an unknown/],
	['added token id huge', () => JSON.stringify({ ...baseTokenizer(), added_tokens: [{ id: 2 ** 40, content: 'x' }] }), /added_tokens\[0\]/],
	['added tokens an object', () => JSON.stringify({ ...baseTokenizer(), added_tokens: {} }), /added_tokens must be a list/],
	['not JSON', () => '{"model": ', /not valid JSON/],
	['JSON 100k deep', () => '['.repeat(100_000) + ']'.repeat(100_000), /nested|expected a JSON object/],
];

test('every hostile tokenizer.json is one line naming what is wrong (no allocation from a huge id)', () => {
	const dir = tempDir('tok');
	const file = path.join(dir, 'tokenizer.json');
	for (const [name, text, why] of HOSTILE_TOKENIZERS) {
		fs.writeFileSync(file, text());
		const m = userError(() => ByteLevelTokenizer.load(file), why);
		assert.match(m, /tokenizer\.json: /, name);
	}
	fs.writeFileSync(file, JSON.stringify(baseTokenizer()));
	assert.is(ByteLevelTokenizer.load(file).size, 512);
});

// ---- convert ----

function copyDir(from: string, tag: string): string {
	const dir = tempDir(tag);
	for (const f of fs.readdirSync(from)) fs.copyFileSync(path.join(from, f), path.join(dir, f));
	return dir;
}
const snapshot = (dir: string) => Object.fromEntries(fs.readdirSync(dir).sort().map((f) => [f, fs.readFileSync(path.join(dir, f)).toString('base64')]));

test('convert IN L where L is a symlink to IN (or a path through one) is refused; IN is untouched', () => {
	const input = copyDir(TINY, 'in');
	const before = snapshot(input);
	const parent = tempDir('links');
	fs.symlinkSync(input, path.join(parent, 'L'));
	userError(() => convertCheckpoint(input, path.join(parent, 'L'), 'bf16'), /choose an output folder other than the input/);
	userError(() => convertCheckpoint(path.join(parent, 'L'), `${input}/./`, 'bf16'), /choose an output folder other than the input/);
	assert.equal(snapshot(input), before);
});

test('convert never writes through planted symlinks and leaves no temporary files', () => {
	const out = tempDir('out');
	const victim = path.join(tempDir('victim'), 'precious');
	fs.writeFileSync(victim, 'keep');
	for (const name of ['model.safetensors', 'model.safetensors.tmp', 'config.json', 'config.json.tmp']) fs.symlinkSync(victim, path.join(out, name));
	convertCheckpoint(TINY, out, 'f32');
	assert.is(fs.readFileSync(victim, 'utf8'), 'keep');
	assert.ok(!fs.lstatSync(path.join(out, 'model.safetensors')).isSymbolicLink());
	assert.ok(loadCheckpoint(out).config.dModel > 0);
	assert.equal(fs.readdirSync(out).filter((f) => f.endsWith('.tmp') && !f.startsWith('model.safetensors.tmp') && !f.startsWith('config.json.tmp')), []);
});

test('convert on a full or read-only disk: one line naming ENOSPC / EROFS, the old OUT stays whole, no partial files', () => {
	const out = tempDir('full');
	convertCheckpoint(TINY, out, 'f32');
	const before = snapshot(out);
	let written = 0;
	const realWrite = fsDefault.writeSync;
	patched(fsDefault, 'writeSync', ((fd: number, buf: Uint8Array, ...rest: unknown[]) => {
		if ((written += 1) > 2) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
		return (realWrite as (...a: unknown[]) => number)(fd, buf, ...rest);
	}) as typeof fsDefault.writeSync, () => {
		userError(() => convertCheckpoint(TINY, out, 'bf16'), /model\.safetensors: cannot write: no space left on device \(ENOSPC\)/);
	});
	assert.equal(snapshot(out), before);
	const realOpen = fsDefault.openSync;
	patched(fsDefault, 'openSync', ((p: fs.PathLike, flags?: fs.OpenMode, mode?: fs.Mode) => {
		if (typeof flags === 'number' && flags & fs.constants.O_CREAT) throw Object.assign(new Error('EROFS'), { code: 'EROFS' });
		return realOpen(p, flags ?? 'r', mode);
	}) as typeof fsDefault.openSync, () => {
		userError(() => convertCheckpoint(TINY, out, 'bf16'), /cannot write: read-only file system \(EROFS\)/);
	});
	assert.equal(snapshot(out), before);
});

test('a symlinked IN/tokenizer.json pointing at a secret is not copied, and the secret is not quoted', () => {
	const input = copyDir(TINY_DRAFTER, 'tokin');
	const secret = path.join(tempDir('secret'), 'id_rsa');
	fs.writeFileSync(secret, `${SECRET}\n`);
	fs.rmSync(path.join(input, 'tokenizer.json'));
	fs.symlinkSync(secret, path.join(input, 'tokenizer.json'));
	const out = path.join(tempDir('tokout'), 'out');
	const m = userError(() => convertCheckpoint(input, out, 'f32'), /tokenizer\.json: not valid JSON/);
	assert.not.match(m, 'TOPSECRET');
	assert.ok(!fs.existsSync(path.join(out, 'tokenizer.json')));
});

test('two converts racing into one folder both finish and leave one complete, loadable model', async () => {
	const out = tempDir('race');
	const one = (dtype: string) => new Promise<number>((resolve) => {
		const c = spawn(process.execPath, [BIN, 'convert', TINY, out, '--dtype', dtype], { stdio: 'ignore' });
		c.on('exit', (code) => resolve(code ?? -1));
	});
	const codes = await Promise.all([one('f32'), one('bf16'), one('f16')]);
	assert.equal(codes, [0, 0, 0]);
	const ck = loadCheckpoint(out);
	assert.ok(['F32', 'BF16', 'F16'].includes(ck.dtype));
	assert.equal(fs.readdirSync(out).sort(), ['config.json', 'model.safetensors']);
});

test.run();
