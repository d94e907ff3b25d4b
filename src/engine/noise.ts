// Synthetic noise for the robustness comparison of the MambaByte paper (Wang et al., COLM 2024, which follows the
// noise study of ByT5, Xue et al., TACL 2022): `perplexity --noise TYPE:P` scores noised text instead of the file.
//
// Definitions (P = the probability given; every draw is "r < P" with r uniform in [0, 1), so P = 0 changes nothing
// and P = 1 always applies). "Character" means a Unicode scalar value read from UTF-8; a byte that is not part of a
// well-formed character (invalid input) is carried through as a unit of its own and never changed by the case types.
//   drop         each character is dropped with probability P.
//   repeat       each character is, with probability P, followed by 1-3 extra copies (1, 2, 3 equally likely).
//   antspeak     each word (a run of characters other than ASCII whitespace) is, with probability P, turned into
//                antspeak: every character uppercased and preceded by a space, and one space after the word:
//                "an owl" at P = 1 gives " A N   O W L " (the whitespace between the words is kept).
//   uppercase    each character is uppercased with probability P.
//   random-case  each character is, with probability P, set to upper or lower case (equally likely), so about P/2
//                of the lower-case letters change.
//   swap         walking the text, a character is swapped with the next one with probability P; a swapped pair is
//                not swapped again, so "abcdef" at P = 1 gives "badcfe".
// Where this differs from the papers: ByT5 (read here) defines drop, repeat, antspeak, uppercase and random case per
// character, at fixed rates for drop and repeat (repeat: 20%, 1-3 copies) and on every character for the other three,
// and prints antspeak as "an owl" → " A N O W L " (single spaces; we keep the whitespace between words, so word
// boundaries stay visible). The MambaByte paper's noise section could not be read here (the stored copies hold its
// opening only); its types and their parameterisation by P (antspeak per word, swap of adjacent characters) follow
// the project's summary of it (issue 13), and are what the definitions above implement (README, "Robustness to noise").
//
// Case mapping is JavaScript's full Unicode mapping of the single character ("ß" → "SS"), so the byte length can
// change; output stays valid UTF-8 whenever the input is (only input characters, their case mappings and spaces
// are written). The transform streams: memory is a few bytes of an unfinished character, one held character (swap)
// and one word flag (antspeak), however long the input; the bytes out do not depend on how the input was chunked.
import { rng } from '../model/random.js';
import { UsageError } from '../errors.js';

export const NOISE_TYPES = ['drop', 'repeat', 'antspeak', 'uppercase', 'random-case', 'swap'] as const;
export type NoiseType = (typeof NOISE_TYPES)[number];

export interface NoiseSpec {
	type: NoiseType;
	p: number; // probability in [0, 1]
}

/** The seed when none is given: fixed, so the same command gives the same noised text. */
export const DEFAULT_NOISE_SEED = 0;

export const noiseName = (s: NoiseSpec): string => `${s.type}:${s.p}`;

/** `TYPE:P` as typed after `--noise`. */
export function parseNoise(value: string): NoiseSpec {
	const m = /^([A-Za-z_-]+):(.*)$/.exec(value.trim());
	if (!m) throw new UsageError(`--noise ${value}: expected TYPE:P, e.g. drop:0.05 (types: ${NOISE_TYPES.join(', ')})`);
	const type = m[1] as NoiseType;
	if (!NOISE_TYPES.includes(type)) throw new UsageError(`--noise ${value}: unknown noise type '${m[1]}' (expected ${NOISE_TYPES.join(', ')})`);
	const p = m[2].trim() === '' ? NaN : Number(m[2]);
	if (!(p >= 0 && p <= 1)) throw new UsageError(`--noise ${value}: expected a probability P from 0 to 1 after '${type}:'`);
	return { type, p };
}

/** Checks specs given through the library (the CLI's come from parseNoise). */
export function checkNoise(specs: readonly NoiseSpec[], seed: number): void {
	for (const s of specs) {
		if (!NOISE_TYPES.includes(s.type)) throw new UsageError(`noise type '${String(s.type)}': expected ${NOISE_TYPES.join(', ')}`);
		if (!(s.p >= 0 && s.p <= 1)) throw new UsageError(`noise ${s.type}: probability ${s.p}: expected a number from 0 to 1`);
	}
	if (!(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 32)) throw new UsageError(`noise seed ${seed}: expected a whole number from 0 to 2^32-1`);
}

// A unit is a code point (0..0x10FFFF), or RAW + b for a byte b that is not part of a well-formed character.
const RAW = 0x200000;
const SPACE = 0x20;
const isAsciiSpace = (u: number) => u === 0x20 || (u >= 0x09 && u <= 0x0d);

type Emit = (u: number) => void;
interface Stage {
	put(u: number): void;
	end(): void;
}

function upper(u: number, emit: Emit): void {
	if (u < 0x80) emit(u >= 0x61 && u <= 0x7a ? u - 32 : u);
	else if (u >= RAW) emit(u);
	else for (const ch of String.fromCodePoint(u).toUpperCase()) emit(ch.codePointAt(0)!);
}

function lower(u: number, emit: Emit): void {
	if (u < 0x80) emit(u >= 0x41 && u <= 0x5a ? u + 32 : u);
	else if (u >= RAW) emit(u);
	else for (const ch of String.fromCodePoint(u).toLowerCase()) emit(ch.codePointAt(0)!);
}

function stage(spec: NoiseSpec, r: () => number, emit: Emit): Stage {
	const p = spec.p;
	const hit = () => r() < p;
	switch (spec.type) {
		case 'drop':
			return { put: (u) => { if (!hit()) emit(u); }, end: () => {} };
		case 'repeat':
			return {
				put: (u) => {
					emit(u);
					if (hit()) for (let k = 1 + Math.floor(r() * 3); k > 0; k--) emit(u);
				},
				end: () => {},
			};
		case 'uppercase':
			return { put: (u) => (hit() ? upper(u, emit) : emit(u)), end: () => {} };
		case 'random-case':
			return { put: (u) => (hit() ? (r() < 0.5 ? upper(u, emit) : lower(u, emit)) : emit(u)), end: () => {} };
		case 'swap': {
			let held = -1; // a character waiting to follow the next one
			return {
				put: (u) => {
					if (held >= 0) {
						emit(u);
						emit(held);
						held = -1;
					} else if (hit()) held = u;
					else emit(u);
				},
				end: () => {
					if (held >= 0) emit(held); // nothing left to swap with
					held = -1;
				},
			};
		}
		case 'antspeak': {
			let inWord = false;
			let ant = false; // the current word was chosen
			return {
				put: (u) => {
					if (isAsciiSpace(u)) {
						if (inWord && ant) emit(SPACE);
						inWord = false;
						emit(u);
						return;
					}
					if (!inWord) {
						inWord = true;
						ant = hit();
					}
					if (ant) {
						emit(SPACE);
						upper(u, emit);
					} else emit(u);
				},
				end: () => {
					if (inWord && ant) emit(SPACE);
					inWord = false;
				},
			};
		}
	}
}

/** Growable output bytes: units written as UTF-8 (raw units as their byte). */
class ByteSink {
	private buf = new Uint8Array(1024);
	private n = 0;

	private room(k: number) {
		if (this.n + k <= this.buf.length) return;
		const next = new Uint8Array(Math.max(this.buf.length * 2, this.n + k));
		next.set(this.buf.subarray(0, this.n));
		this.buf = next;
	}

	write = (u: number): void => {
		this.room(4);
		const b = this.buf;
		if (u < 0x80) b[this.n++] = u;
		else if (u >= RAW) b[this.n++] = u - RAW;
		else if (u < 0x800) {
			b[this.n++] = 0xc0 | (u >> 6);
			b[this.n++] = 0x80 | (u & 0x3f);
		} else if (u < 0x10000) {
			b[this.n++] = 0xe0 | (u >> 12);
			b[this.n++] = 0x80 | ((u >> 6) & 0x3f);
			b[this.n++] = 0x80 | (u & 0x3f);
		} else {
			b[this.n++] = 0xf0 | (u >> 18);
			b[this.n++] = 0x80 | ((u >> 12) & 0x3f);
			b[this.n++] = 0x80 | ((u >> 6) & 0x3f);
			b[this.n++] = 0x80 | (u & 0x3f);
		}
	};

	take(): Uint8Array {
		const out = this.buf.slice(0, this.n);
		this.n = 0;
		return out;
	}
}

/**
 * UTF-8 to units, byte by byte (Unicode Table 3-7, as engine/utf8.ts's validator): a sequence broken off is given
 * out as raw bytes and the breaking byte is read again as a new start, as a decoder resynchronises.
 */
class UnitDecoder {
	private cp = 0;
	private need = 0;
	private lo = 0x80;
	private hi = 0xbf;
	private seq: number[] = [];
	constructor(private readonly emit: Emit) {}

	push(b: number): void {
		if (this.need > 0) {
			if (b >= this.lo && b <= this.hi) {
				this.cp = (this.cp << 6) | (b & 0x3f);
				this.lo = 0x80;
				this.hi = 0xbf;
				if (--this.need === 0) {
					this.seq = [];
					this.emit(this.cp);
				} else this.seq.push(b);
				return;
			}
			this.flushRaw();
		}
		this.lo = 0x80;
		this.hi = 0xbf;
		if (b < 0x80) this.emit(b);
		else if (b >= 0xc2 && b <= 0xdf) this.start(b, b & 0x1f, 1);
		else if (b >= 0xe0 && b <= 0xef) {
			this.start(b, b & 0x0f, 2);
			if (b === 0xe0) this.lo = 0xa0; // no overlong 3-byte forms
			if (b === 0xed) this.hi = 0x9f; // no surrogates
		} else if (b >= 0xf0 && b <= 0xf4) {
			this.start(b, b & 0x07, 3);
			if (b === 0xf0) this.lo = 0x90; // no overlong 4-byte forms
			if (b === 0xf4) this.hi = 0x8f; // nothing above U+10FFFF
		} else this.emit(RAW + b);
	}

	/** The input ended: an unfinished character is raw bytes. */
	end(): void {
		this.flushRaw();
	}

	private start(b: number, bits: number, need: number) {
		this.cp = bits;
		this.need = need;
		this.seq = [b];
	}

	private flushRaw() {
		for (const s of this.seq) this.emit(RAW + s);
		this.seq = [];
		this.need = 0;
		this.lo = 0x80;
		this.hi = 0xbf;
	}
}

/** Each stage its own generator, so adding a stage after another does not change what the first one does. */
const stageSeed = (seed: number, k: number) => (seed ^ Math.imul(k + 1, 0x9e3779b9)) >>> 0;

/** The noise types in order over a byte stream: push() pieces, then end(). Pure: the same bytes and seed, the same output. */
export class NoiseTransform {
	private readonly sink = new ByteSink();
	private readonly decoder: UnitDecoder;
	private readonly stages: Stage[] = [];

	constructor(specs: readonly NoiseSpec[], seed: number = DEFAULT_NOISE_SEED) {
		checkNoise(specs, seed);
		let emit: Emit = this.sink.write;
		for (let k = specs.length - 1; k >= 0; k--) {
			const s = stage(specs[k], rng(stageSeed(seed, k)), emit);
			this.stages.unshift(s);
			emit = s.put;
		}
		this.decoder = new UnitDecoder(emit);
	}

	push(bytes: Uint8Array): Uint8Array {
		for (let i = 0; i < bytes.length; i++) this.decoder.push(bytes[i]);
		return this.sink.take();
	}

	end(): Uint8Array {
		this.decoder.end();
		for (const s of this.stages) s.end(); // in order: what an earlier stage lets go goes through the later ones
		return this.sink.take();
	}
}

/** All of `bytes` noised at once. */
export function addNoise(bytes: Uint8Array, specs: readonly NoiseSpec[], seed: number = DEFAULT_NOISE_SEED): Uint8Array {
	const t = new NoiseTransform(specs, seed);
	const a = t.push(bytes);
	const b = t.end();
	const out = new Uint8Array(a.length + b.length);
	out.set(a);
	out.set(b, a.length);
	return out;
}

/** A byte stream noised as it is read (empty pieces are not passed on). */
export async function* noisy(source: AsyncIterable<Uint8Array>, specs: readonly NoiseSpec[], seed: number = DEFAULT_NOISE_SEED): AsyncGenerator<Uint8Array> {
	const t = new NoiseTransform(specs, seed);
	for await (const piece of source) {
		const out = t.push(piece);
		if (out.length > 0) yield out;
	}
	const last = t.end();
	if (last.length > 0) yield last;
}
