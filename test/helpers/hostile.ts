// Shared pieces of the hostile-input tests: temp folders that are removed, FIFOs, one-line-error checks, and a
// runner that executes a case in a child Node with a heap cap and a wall-clock limit, so a case that would hang
// or grow memory without end fails the test instead of taking the machine with it.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import path from 'node:path';
import * as assert from 'uvu/assert';
import { UserError } from '../../src/errors.js';

export const BIN = path.resolve('bin/mambabyte.js');
export const TINY = path.resolve('test/fixtures/tiny-hf');
export const TINY_DRAFTER = path.resolve('test/fixtures/tiny-drafter');
/** Heap and time every hostile case runs under (a real case needs a few MB and well under a second). */
export const CASE_HEAP_MB = 256;
export const CASE_TIMEOUT_MS = 60_000;

const made: string[] = [];
export function tempDir(tag: string): string {
	const d = fs.mkdtempSync(path.join(os.tmpdir(), `mambabyte-hostile-${tag}-`));
	made.push(d);
	return d;
}
/** Remove every folder tempDir made (call from test.after). */
export function removeTempDirs(): void {
	for (const d of made.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

export function mkfifo(file: string): void {
	const r = spawnSync('mkfifo', [file]);
	assert.is(r.status, 0, `mkfifo failed: ${r.stderr}`);
}

/** fn throws a UserError whose message is one line matching every pattern; returns the message. */
export function userError(fn: () => unknown, ...patterns: RegExp[]): string {
	try {
		fn();
	} catch (e) {
		assert.ok(e instanceof UserError, `expected a UserError, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
		const m = (e as UserError).message;
		assert.not.match(m, /\n/, 'one line');
		for (const p of patterns) assert.match(m, p);
		return m;
	}
	assert.unreachable('expected a UserError, nothing was thrown');
	throw new Error('unreachable');
}

export async function userErrorAsync(fn: () => Promise<unknown>, ...patterns: RegExp[]): Promise<string> {
	try {
		await fn();
	} catch (e) {
		assert.ok(e instanceof UserError, `expected a UserError, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
		const m = (e as UserError).message;
		assert.not.match(m, /\n/, 'one line');
		for (const p of patterns) assert.match(m, p);
		return m;
	}
	assert.unreachable('expected a UserError, nothing was thrown');
	throw new Error('unreachable');
}

/** The CLI in a child under the heap cap and the time limit. */
export function cli(args: string[], o: { input?: string; stdinFile?: string; stdoutFile?: string } = {}) {
	const stdio: ('pipe' | number)[] = ['pipe', 'pipe', 'pipe'];
	const fds: number[] = [];
	if (o.stdinFile) fds.push((stdio[0] = fs.openSync(o.stdinFile, 'r')));
	if (o.stdoutFile) fds.push((stdio[1] = fs.openSync(o.stdoutFile, 'w')));
	try {
		return spawnSync(process.execPath, [`--max-old-space-size=${CASE_HEAP_MB}`, BIN, ...args], {
			encoding: 'utf8', input: o.stdinFile ? undefined : (o.input ?? ''), timeout: CASE_TIMEOUT_MS, stdio, killSignal: 'SIGKILL',
		});
	} finally {
		for (const fd of fds) fs.closeSync(fd);
	}
}

/** A CLI run that ended by itself (not killed at the limit) with one `mambabyte:` line on stderr and this code. */
export function oneLine(r: ReturnType<typeof cli>, code: number, pattern: RegExp): string {
	assert.is(r.signal, null, `killed by ${r.signal} (hung or out of memory)`);
	assert.is(r.status, code, `exit ${r.status}: ${r.stderr}`);
	const lines = r.stderr.trim().split('\n');
	assert.is(lines.length, 1, r.stderr);
	assert.match(lines[0], /^mambabyte: /);
	assert.match(lines[0], pattern);
	return lines[0];
}

/** A secret's bytes, for checking they never appear in a message. */
export const SECRET = 'TOPSECRET-d41d8cd98f00b204-TOPSECRET';
