// The synthetic noise of `perplexity --noise` (engine/noise.ts): each type's definition on small inputs, its rate on
// a large one (within 5 standard deviations of P), P = 0 is the identity, P = 1 does what the definition says,
// valid UTF-8 stays valid, the output depends on the seed and not on how the input was chunked.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { addNoise, NoiseTransform, NOISE_TYPES, noisy, parseNoise, type NoiseSpec, type NoiseType } from '../src/engine/noise.js';
import { isValidUtf8 } from '../src/engine/utf8.js';
import { UsageError } from '../src/errors.js';
import { rng } from '../src/model/random.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder('utf-8', { fatal: true }).decode(b);
const noise = (s: string, type: NoiseType, p: number, seed = 1) => dec(addNoise(enc(s), [{ type, p }], seed));

/** Text of every UTF-8 length, with the case mappings that change length or have no single-character form. */
const MIXED = 'The café — naïve ß ŉ İstanbul ΣΑΣ σας 日本語 👍🏽 emoji, tabs\tand\nnew lines; Ǆ ǅ ǆ ﬀ. ';
const BIG = MIXED.repeat(400); // about 36 KB

/** ± 5 standard deviations of a rate p over n trials. */
function near(rate: number, p: number, n: number, what: string) {
	const sd = Math.sqrt((p * (1 - p)) / n);
	assert.ok(Math.abs(rate - p) <= 5 * sd + 1e-12, `${what}: rate ${rate.toFixed(5)} vs ${p} (n ${n}, sd ${sd.toExponential(2)})`);
}

test('P = 0 is the identity for every type, on valid and on invalid UTF-8', () => {
	const invalid = Uint8Array.from([0x61, 0xff, 0xc3, 0x28, 0xe2, 0x82, 0x62, 0xed, 0xa0, 0x80, 0xf0, 0x9f, 0x91, 0xc3]); // stray, broken, surrogate, cut off
	for (const type of NOISE_TYPES) {
		assert.equal(addNoise(enc(BIG), [{ type, p: 0 }], 7), enc(BIG), type);
		assert.equal(addNoise(invalid, [{ type, p: 0 }], 7), invalid, `${type} on invalid bytes`);
	}
	assert.equal(addNoise(enc(MIXED), [], 7), enc(MIXED), 'no noise at all');
});

test('P = 1 does what each definition says', () => {
	assert.is(noise('an owl', 'drop', 1), '');
	assert.is(noise('ab', 'uppercase', 1), 'AB');
	assert.is(noise(MIXED, 'uppercase', 1), MIXED.toUpperCase(), 'full Unicode uppercasing, character by character');
	assert.is(noise('an owl', 'antspeak', 1), ' A N   O W L ');
	assert.is(noise('  two\n\nlines  ', 'antspeak', 1), '   T W O \n\n L I N E S   ');
	assert.is(noise('ßé', 'antspeak', 1), ' SS É ', 'ß uppercases to SS; a space goes before the character, not inside its mapping');
	assert.is(noise('abcdef', 'swap', 1), 'badcfe');
	assert.is(noise('abcde', 'swap', 1), 'badce', 'a last character has nothing to swap with');
	assert.is(noise('日本語👍', 'swap', 1), '本日👍語', 'characters are swapped, not bytes');
	// repeat: every character is followed by 1-3 copies of itself
	const rep = noise('abcdefghij'.repeat(50), 'repeat', 1);
	const runs = rep.match(/(.)\1*/gu)!;
	assert.is(runs.map((r) => r[0]).join(''), 'abcdefghij'.repeat(50));
	assert.ok(runs.every((r) => r.length >= 2 && r.length <= 4), 'every run is 2-4 long');
	assert.equal(new Set(runs.map((r) => r.length)), new Set([2, 3, 4]), 'all three counts occur');
	// random case: every character upper or lower, both seen, nothing else changed
	const rc = noise('abcdefghijklmnopqrstuvwxyz'.repeat(20), 'random-case', 1);
	assert.is(rc.toLowerCase(), 'abcdefghijklmnopqrstuvwxyz'.repeat(20));
	assert.ok(/[A-Z]/.test(rc) && /[a-z]/.test(rc));
});

test('each rate is P within statistical bounds on a large input', () => {
	const p = 0.05;
	const n = 200_000;
	// drop: characters kept (here all distinct from a run, so they can be counted)
	const letters = 'abcdefghijklmnopqrstuvwxyz'.repeat(n / 26 + 1).slice(0, n);
	near(1 - [...noise(letters, 'drop', p, 3)].length / n, p, n, 'drop');
	// repeat: a run longer than 1 is a repeated character (no two neighbours are equal in `letters`)
	const runs = noise(letters, 'repeat', p, 4).match(/(.)\1*/g)!;
	assert.is(runs.length, n);
	const repeated = runs.filter((r) => r.length > 1);
	near(repeated.length / n, p, n, 'repeat');
	for (const k of [2, 3, 4]) near(repeated.filter((r) => r.length === k).length / repeated.length, 1 / 3, repeated.length, `repeat ${k - 1} copies`);
	// uppercase, random case (half of the chosen lower-case letters become upper case)
	near((noise(letters, 'uppercase', p, 5).match(/[A-Z]/g) ?? []).length / n, p, n, 'uppercase');
	near((noise(letters, 'random-case', p, 6).match(/[A-Z]/g) ?? []).length / n, p / 2, n, 'random-case (lower → upper)');
	near((noise(letters.toUpperCase(), 'random-case', p, 6).match(/[a-z]/g) ?? []).length / n, p / 2, n, 'random-case (upper → lower)');
	// antspeak: words chosen
	const words = n / 4;
	const ant = noise('ab '.repeat(words), 'antspeak', p, 7);
	const chosen = (ant.match(/ A B /g) ?? []).length;
	assert.is(chosen + (ant.match(/ab/g) ?? []).length, words);
	near(chosen / words, p, words, 'antspeak');
	// swap: over distinct characters, read back each decision (kept or swapped with the next)
	const distinct = Array.from({ length: n }, (_, i) => String.fromCodePoint(0x4e00 + (i % 5000))).join('');
	const a = [...distinct], b = [...noise(distinct, 'swap', p, 8)];
	assert.is(b.length, a.length);
	let decisions = 0, swaps = 0;
	for (let i = 0; i < a.length; decisions++) {
		if (b[i] === a[i]) i++;
		else {
			assert.ok(b[i] === a[i + 1] && b[i + 1] === a[i], `position ${i}: not a swap of neighbours`);
			swaps++;
			i += 2;
		}
	}
	near(swaps / decisions, p, decisions, 'swap');
});

test('valid UTF-8 stays valid for every type and mixture, at any P', () => {
	for (const p of [0.05, 0.5, 1]) {
		for (const type of NOISE_TYPES) assert.ok(isValidUtf8(addNoise(enc(BIG), [{ type, p }], 11)), `${type}:${p}`);
		const all: NoiseSpec[] = NOISE_TYPES.map((type) => ({ type, p }));
		assert.ok(isValidUtf8(addNoise(enc(BIG), all, 11)), `all types at ${p}`);
	}
});

test('invalid bytes pass through as units: case types leave them alone and text around them is still noised', () => {
	const bytes = Uint8Array.from([0x61, 0xff, 0x62, 0xc3, 0x63, 0xe2, 0x82]); // a, stray FF, b, broken C3, c, cut-off E2 82
	assert.equal(addNoise(bytes, [{ type: 'uppercase', p: 1 }]), Uint8Array.from([0x41, 0xff, 0x42, 0xc3, 0x43, 0xe2, 0x82]));
	assert.equal(addNoise(bytes, [{ type: 'drop', p: 1 }]), new Uint8Array(0));
});

test('deterministic per seed; another seed gives other noise', () => {
	for (const type of NOISE_TYPES) {
		const a = addNoise(enc(BIG), [{ type, p: 0.3 }], 42);
		assert.equal(addNoise(enc(BIG), [{ type, p: 0.3 }], 42), a, type);
		assert.not.equal(addNoise(enc(BIG), [{ type, p: 0.3 }], 43), a, `${type}: seed 43`);
	}
});

test('streaming in chunks (splitting characters too) gives the same bytes as all at once', async () => {
	const bytes = enc(BIG);
	const mixes: NoiseSpec[][] = [...NOISE_TYPES.map((type) => [{ type, p: 0.2 }]), NOISE_TYPES.map((type) => ({ type, p: 0.1 })), [{ type: 'swap', p: 1 }, { type: 'antspeak', p: 0.5 }]];
	const r = rng(9);
	for (const specs of mixes) {
		const whole = addNoise(bytes, specs, 5);
		for (const maxPiece of [1, 2, 3, 7, 4096]) {
			const t = new NoiseTransform(specs, 5);
			const out: number[] = [];
			for (let i = 0; i < bytes.length;) {
				const k = 1 + Math.floor(r() * maxPiece);
				out.push(...t.push(bytes.subarray(i, i + k)));
				i += k;
			}
			out.push(...t.end());
			assert.equal(Uint8Array.from(out), whole, `${specs.map((s) => s.type).join('+')} in pieces of up to ${maxPiece}`);
		}
	}
});

test('noisy() streams: output comes before the input has been read to the end', async () => {
	let read = 0;
	async function* source() {
		for (let i = 0; i < 1000; i++) {
			read++;
			yield enc('some text to noise. ');
		}
	}
	const it = noisy(source(), [{ type: 'repeat', p: 0.1 }], 1);
	const first = await it.next();
	assert.ok(!first.done && first.value.length > 0);
	assert.is(read, 1, 'one piece read for the first output');
	await it.return(undefined);
});

test('several types apply in the order given, each with its own draws', () => {
	assert.is(dec(addNoise(enc('ab cd'), [{ type: 'uppercase', p: 1 }, { type: 'swap', p: 1 }])), 'BAC D');
	assert.is(dec(addNoise(enc('ab cd'), [{ type: 'swap', p: 1 }, { type: 'antspeak', p: 1 }])), ' B A C   D ', 'swap, then antspeak on the swapped text');
	// adding a stage after another leaves what the first one does unchanged
	const one = addNoise(enc(BIG), [{ type: 'drop', p: 0.2 }], 3);
	assert.equal(addNoise(enc(BIG), [{ type: 'drop', p: 0.2 }, { type: 'swap', p: 0 }], 3), one);
});

test('parseNoise: TYPE:P, and one clear line for anything else', () => {
	assert.equal(parseNoise('drop:0.05'), { type: 'drop', p: 0.05 });
	assert.equal(parseNoise('random-case:1'), { type: 'random-case', p: 1 });
	assert.equal(parseNoise('swap:0'), { type: 'swap', p: 0 });
	for (const [bad, msg] of [
		['drop', /expected TYPE:P/], ['drop:', /probability P from 0 to 1/], ['drop:1.5', /from 0 to 1/], ['drop:-0.1', /from 0 to 1/],
		['drop:x', /from 0 to 1/], ['drop:NaN', /from 0 to 1/], ['shout:0.1', /unknown noise type 'shout'/], [':0.1', /expected TYPE:P/],
	] as const) {
		try {
			parseNoise(bad);
			assert.unreachable(bad);
		} catch (e) {
			assert.instance(e, UsageError, bad);
			assert.match((e as Error).message, msg);
			assert.not.match((e as Error).message, /\n/);
		}
	}
});

test.run();
