// Issue 17, kinds 1 and 9: small files read through the bounded reader. FIFOs, /dev/zero, folders, sockets of
// sorts, files over the cap and unreadable files each end in one line naming the file; nothing blocks, nothing
// grows memory, and a symlinked secret's bytes never appear in a message.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadCheckpoint } from '../src/checkpoint/load.js';
import { ByteLevelTokenizer } from '../src/engine/tokenizer.js';
import { readSave } from '../src/ui/save.js';
import { fileError, READ_CAPS, readBoundedFile, readBoundedJson, readStreamBounded } from '../src/util/read-bounded.js';
import { cli, mkfifo, oneLine, removeTempDirs, SECRET, tempDir, TINY, TINY_DRAFTER, userError } from './helpers/hostile.js';

test.after(removeTempDirs);

/** A copy of a fixture folder whose `file` is replaced by a symlink to `target` (or by what make() creates). */
function folderWith(fixture: string, file: string, make: (p: string) => void): string {
	const dir = tempDir('folder');
	for (const f of fs.readdirSync(fixture)) fs.copyFileSync(path.join(fixture, f), path.join(dir, f));
	fs.rmSync(path.join(dir, file), { force: true });
	make(path.join(dir, file));
	return dir;
}
const toZero = (p: string) => fs.symlinkSync('/dev/zero', p);
const toFifo = (p: string) => mkfifo(p);

test('the reader refuses a FIFO without blocking, /dev/zero, a folder, a missing file, and a file over the cap', () => {
	const dir = tempDir('reader');
	const fifo = path.join(dir, 'fifo');
	mkfifo(fifo);
	userError(() => readBoundedFile(fifo, 'config.json', 1000), /fifo: a FIFO \(named pipe\), expected a regular file/);
	userError(() => readBoundedFile('/dev/zero', 'config.json', 1000), /\/dev\/zero: a character device, expected a regular file/);
	fs.symlinkSync('/dev/zero', path.join(dir, 'zero'));
	userError(() => readBoundedFile(path.join(dir, 'zero'), 'config.json', 1000), /zero: a character device/);
	userError(() => readBoundedFile(dir, 'config.json', 1000), /a directory, expected a regular file/);
	userError(() => readBoundedFile(path.join(dir, 'nope'), 'config.json', 1000), /nope: file not found/);
	fs.writeFileSync(path.join(dir, 'big'), Buffer.alloc(1001));
	userError(() => readBoundedFile(path.join(dir, 'big'), 'config.json', 1000), /big: over 1 KB, too big for config.json/);
	fs.writeFileSync(path.join(dir, 'ok'), Buffer.alloc(1000, 0x20));
	assert.is(readBoundedFile(path.join(dir, 'ok'), 'config.json', 1000).length, 1000);
	fs.symlinkSync('loop', path.join(dir, 'loop'));
	userError(() => readBoundedFile(path.join(dir, 'loop'), 'config.json', 1000), /too many levels of symbolic links/);
});

test('errno codes become words, never the raw message (EIO, EACCES, EROFS, ENOSPC)', () => {
	const err = (code: string) => Object.assign(new Error(`${code}: raw message with ${SECRET}`), { code });
	assert.is(fileError('f', err('EIO')).message, 'f: I/O error while reading (EIO)');
	assert.is(fileError('f', err('EACCES')).message, 'f: permission denied');
	assert.is(fileError('f', err('EROFS')).message, 'f: read-only file system (EROFS)');
	assert.is(fileError('f', err('ENOSPC')).message, 'f: no space left on device (ENOSPC)');
	assert.not.match(fileError('f', err('EWHATEVER')).message, SECRET);
});

test('EACCES on an unreadable file is one line (run as an unprivileged user when the tests run as root)', () => {
	const dir = tempDir('eacces');
	fs.chmodSync(dir, 0o755);
	const file = path.join(dir, 'config.json');
	fs.writeFileSync(file, '{}');
	fs.chmodSync(file, 0o000);
	const script = `import('${path.resolve('dist/src/util/read-bounded.js')}').then((m) => { try { m.readBoundedFile(${JSON.stringify(file)}, 'config.json', 1000); console.log('read'); } catch (e) { console.log(e.message); } });`;
	const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
	const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000, ...asNobody });
	assert.is(r.stdout.trim(), `${file}: permission denied`, r.stderr);
});

test('config.json as /dev/zero or a FIFO next to real weights: one line, no memory growth', () => {
	userError(() => loadCheckpoint(folderWith(TINY, 'config.json', toZero)), /config\.json: a character device, expected a regular file \(config\.json\)/);
	userError(() => loadCheckpoint(folderWith(TINY, 'config.json', toFifo)), /config\.json: a FIFO/);
	userError(() => loadCheckpoint(folderWith(TINY, 'model.safetensors', toFifo)), /model\.safetensors: not a regular file/);
	userError(() => loadCheckpoint(folderWith(TINY, 'model.safetensors', toZero)), /model\.safetensors: not a regular file/);
});

test('tokenizer.json and tokenizer_config.json as /dev/zero or a FIFO: one line', () => {
	const tok = (dir: string) => ByteLevelTokenizer.load(path.join(dir, 'tokenizer.json'));
	userError(() => tok(folderWith(TINY_DRAFTER, 'tokenizer.json', toZero)), /tokenizer\.json: a character device/);
	userError(() => tok(folderWith(TINY_DRAFTER, 'tokenizer.json', toFifo)), /tokenizer\.json: a FIFO/);
	userError(() => tok(folderWith(TINY_DRAFTER, 'tokenizer_config.json', toZero)), /tokenizer_config\.json: a character device/);
	userError(() => tok(folderWith(TINY_DRAFTER, 'tokenizer_config.json', toFifo)), /tokenizer_config\.json: a FIFO/);
	// still loads when tokenizer_config.json is merely not JSON (it only tunes special tokens)
	const dir = folderWith(TINY_DRAFTER, 'tokenizer_config.json', (p) => fs.writeFileSync(p, '{nope'));
	assert.ok(tok(dir).size > 0);
});

test('chat /load of a FIFO, /dev/zero, a folder or a missing file: one line, the read never blocks', () => {
	const dir = tempDir('load');
	mkfifo(path.join(dir, 'fifo'));
	fs.symlinkSync('/dev/zero', path.join(dir, 'zero'));
	userError(() => readSave(path.join(dir, 'fifo')), /fifo: a FIFO/);
	userError(() => readSave(path.join(dir, 'zero')), /zero: a character device/);
	userError(() => readSave(dir), /a directory/);
	userError(() => readSave(path.join(dir, 'none')), /none: file not found/);
	fs.writeFileSync(path.join(dir, 'big'), '');
	fs.truncateSync(path.join(dir, 'big'), 200_000_000); // sparse: costs no disk
	userError(() => readSave(path.join(dir, 'big'), 1000), /big: over 64\.001016 MB, too big for a chat save/); // cap from the live state size
});

test('streams are refused as soon as they pass the cap', async () => {
	async function* endless() {
		for (;;) yield Buffer.alloc(1 << 16);
	}
	let err: unknown;
	try {
		await readStreamBounded(endless(), 'stdin', 1 << 20);
	} catch (e) {
		err = e;
	}
	assert.match(String((err as Error).message), /^stdin: over 1\.048576 MB/);
});

test('`complete` with stdin from /dev/zero stops at the cap with one line (no unbounded read)', () => {
	const r = cli(['complete', '-m', TINY, '--no-draft', '-n', '1'], { stdinFile: '/dev/zero' });
	oneLine(r, 1, new RegExp(`stdin: over ${READ_CAPS.stdin / 1e6} MB`));
});

test('a symlinked secret never shows in a message: safetensors header, config.json, tokenizer.json, chat save', () => {
	const dir = tempDir('secret');
	const secret = path.join(dir, 'secret.txt');
	fs.writeFileSync(secret, `${SECRET}\n`);
	const link = (p: string) => fs.symlinkSync(secret, p);
	const first8 = Buffer.from(SECRET).readBigUInt64LE(0).toString();
	const messages = [
		userError(() => loadCheckpoint(folderWith(TINY, 'model.safetensors', link)), /model\.safetensors: not a safetensors file/),
		userError(() => loadCheckpoint(folderWith(TINY, 'config.json', link)), /config\.json: not valid JSON/),
		userError(() => ByteLevelTokenizer.load(path.join(folderWith(TINY_DRAFTER, 'tokenizer.json', link), 'tokenizer.json')), /tokenizer\.json: not valid JSON/),
		userError(() => readSave(secret), /not a mambabyte chat save/),
		userError(() => readBoundedJson(secret, 'x', 1000), /not valid JSON/),
	];
	for (const m of messages) {
		assert.not.match(m, 'TOPSECRET');
		assert.not.match(m, first8);
	}
});

test.run();
