// Subcommands, help, typos and flag rules as a user meets them (flags.ts, main.ts): a mistyped command is a usage
// error with a hint, not a prompt; every command has --help; flags that do not apply are named; -t N hints --threads.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { editDistance, mistypedCommand, parseArgv } from '../src/cli/flags.js';

const BIN = path.resolve('bin/mambabyte.js');
const TINY = path.resolve('test/fixtures/tiny-hf');
const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', input: '' });

function usage(r: ReturnType<typeof run>, pattern: RegExp) {
	assert.is(r.status, 2, `exit ${r.status}: ${r.stderr}`);
	assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
	assert.match(r.stderr, pattern);
	assert.is(r.stdout, '');
}

test('a mistyped command is refused with the command it was probably meant to be', () => {
	usage(run('perplexty', 'book.txt'), /^mambabyte: unknown command 'perplexty' \(did you mean 'perplexity'\?\)/);
	usage(run('hepl'), /did you mean 'help'/);
	usage(run('compelte', 'x'), /did you mean 'complete'/);
	usage(run('help', 'perplexty'), /help: unknown command 'perplexty' \(did you mean 'perplexity'\?\)/);
});

test('the typo rule: close to a long command within 2 edits, to a short one by a dropped/added/swapped letter', () => {
	assert.is(editDistance('perplexty', 'perplexity'), 1);
	assert.is(editDistance('chta', 'chat'), 1); // a transposition is one edit
	assert.is(mistypedCommand('perplexty'), 'perplexity');
	assert.is(mistypedCommand('convret'), 'convert');
	assert.is(mistypedCommand('chta'), 'chat');
	assert.is(mistypedCommand('bech'), 'bench');
	for (const word of ['hello', 'what', 'that', 'once', 'it', 'Perplexity', 'the', 'chapter']) assert.is(mistypedCommand(word), null, word);
});

test('one-word prompts: a plain word is a prompt; a typo-like one is given with -- or complete', () => {
	for (const args of [['hello'], ['--', 'perplexty'], ['complete', 'perplexty'], ['-p', 'perplexty']]) {
		const r = run('-m', TINY, '-n', '4', '--seed', '1', '--backend', 'cpu', '--json', ...args);
		assert.is(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
		const o = JSON.parse(r.stdout) as { prompt_bytes: number; generated_bytes: number };
		assert.is(o.prompt_bytes, args[args.length - 1].length, args.join(' '));
		assert.is(o.generated_bytes, 4);
	}
});

test('help: overview, per command, --help and -h on every command, -v', () => {
	for (const args of [['help'], ['--help'], ['-h']]) {
		const r = run(...args);
		assert.is(r.status, 0, args.join(' '));
		assert.match(r.stdout, /mambabyte perplexity FILE/);
		assert.match(r.stdout, /--threads N/);
	}
	for (const cmd of ['chat', 'complete', 'perplexity', 'bench', 'convert']) {
		for (const r of [run(cmd, '--help'), run(cmd, '-h'), run('help', cmd)]) {
			assert.is(r.status, 0, `${cmd}: ${r.stderr}`);
			assert.match(r.stdout, new RegExp(`mambabyte ${cmd}`));
		}
	}
	assert.match(run('perplexity', '--help').stdout, /--window W/);
	assert.not.match(run('perplexity', '--help').stdout, /--top-k/);
	assert.match(run('convert', '-h').stdout, /--dtype/);
	for (const flag of ['-v', '--version']) {
		const r = run(flag);
		assert.is(r.status, 0);
		assert.match(r.stdout, /^\d+\.\d+\.\d+\n$/);
	}
});

test('flags: echoed as typed, named when they do not apply, values checked', () => {
	usage(run('--repeat-penaltyy', '1.1', 'hi'), /unknown flag --repeat-penaltyy/);
	usage(run('-x', 'hi'), /unknown flag -x/);
	usage(run('perplexity', 'a.txt', '-n', '5', '-t', '0.2', '-m', TINY), /perplexity: -n, -t do not apply/);
	usage(run('convert', 'a', 'b', '--top-k', '3'), /convert: --top-k does not apply/);
	usage(run('complete', 'x', '--curve'), /complete: --curve does not apply/);
	usage(run('-t', '8', 'hi', '-m', TINY), /-t 8: temperature 8\? .*--threads 8/);
	usage(run('--threads', '0', 'hi', '-m', TINY), /--threads 0: expected a whole number/);
	usage(run('perplexity', 'x', '--window', '1', '-m', TINY), /--window 1: expected a whole number of bytes >= 2/);
	usage(run('--min-p', '2', 'hi', '-m', TINY), /--min-p 2/);
	usage(run('--repeat-penalty', '0', 'hi', '-m', TINY), /--repeat-penalty 0/);
	usage(run('--repeat-last-n', '-2', 'hi', '-m', TINY), /--repeat-last-n -2/);
	usage(run('-n'), /-n: expected a value/);
	usage(run('complete', 'a', '-p', 'b', '-m', TINY), /one way/);
});

test('--temp, --threads, --repeat-penalty, --min-p, -n -1 and -f run', () => {
	const a = run('-m', TINY, '--temp', '0', '-n', '8', '--threads', '1', '--repeat-penalty', '1.3', '--min-p', '0.05', '--backend', 'native', 'It was');
	assert.is(a.status, 0, a.stderr);
	const b = run('-m', TINY, '-f', path.resolve('test/fixtures/input.txt'), '-n', '-1', '--stop', 'e', '-t', '0.9', '--seed', '3', '--backend', 'cpu');
	assert.is(b.status, 0, b.stderr);
	assert.ok(b.stdout.endsWith('e'), JSON.stringify(b.stdout));
	const c = run('-m', TINY, '-f', '/no/such/prompt.txt');
	assert.is(c.status, 1);
	assert.match(c.stderr, /--file \/no\/such\/prompt.txt: no such file/);
});

test('parseArgv: --name=value, -xVALUE, --no-flag, -- ends flags', () => {
	const p = parseArgv(['--top-k=5', '-n12', '--no-draft', 'a', '--', '-b', '--c']);
	assert.is(p.flags.topK, '5');
	assert.is(p.flags.maxBytes, '12');
	assert.is(p.flags.draft, false);
	assert.equal(p.positional, ['a', '-b', '--c']);
	assert.is(p.afterDashDash, 1);
	assert.is(p.typed.get('draft'), '--no-draft');
});

test.run();
