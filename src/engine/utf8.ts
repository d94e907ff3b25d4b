// UTF-8 for a model that can emit any byte.
//
// Two separate concerns:
// - Display (`decodeUtf8` here, the streaming `Utf8Stream` in src/ui/text.ts): text shown to a person never splits a
//   multi-byte character across updates and shows invalid sequences as U+FFFD (WHATWG "maximal subpart"
//   replacement, what TextDecoder does). Bytes written to a pipe are never decoded: `complete` writes the model's
//   bytes exactly.
// - The `--utf8` mask (`Utf8Validator`): while on, a byte that would make the text invalid UTF-8 gets probability 0
//   before sampling. It follows Unicode Table 3-7 (well-formed byte sequences) exactly: no stray continuation bytes
//   (80-BF where a lead is expected), no lead byte where a continuation is needed, no overlongs (C0, C1, E0 80-9F,
//   F0 80-8F), no surrogates (ED A0-BF), nothing above U+10FFFF (F4 90-BF, F5-FF).
//   The validator runs over the whole context (prompt + output), so a prompt that ends inside a character is
//   completed rather than broken. Invalid bytes in the prompt are skipped over the way a decoder resynchronises.
//   Default: ON for `complete` and `chat` (opts.utf8, the CLI's `--no-utf8` turns it off): people read the output,
//   and a byte model trained on UTF-8 text rarely wants an invalid byte, so the mask changes almost nothing but
//   the rare broken character. Under `--no-utf8` the output is the model's own bytes, valid or not.
//   The mask cannot help `-n N` cutting a character in two: the byte budget is exact.

/** Decode bytes for display in one go (invalid sequences → U+FFFD, a leading BOM kept). */
export function decodeUtf8(bytes: Uint8Array): string {
	return new TextDecoder('utf-8', { fatal: false, ignoreBOM: true }).decode(bytes);
}

/**
 * The UTF-8 well-formedness automaton. `need` = continuation bytes still expected; the next continuation byte must
 * lie in [lo, hi] (narrower than 80-BF only right after E0, ED, F0, F4).
 */
export class Utf8Validator {
	need = 0;
	lo = 0x80;
	hi = 0xbf;

	clone(): Utf8Validator {
		const v = new Utf8Validator();
		v.need = this.need;
		v.lo = this.lo;
		v.hi = this.hi;
		return v;
	}

	copyFrom(o: Utf8Validator): void {
		this.need = o.need;
		this.lo = o.lo;
		this.hi = o.hi;
	}

	/** True when the text so far ends on a character boundary. */
	get atBoundary(): boolean {
		return this.need === 0;
	}

	/** Whether byte b keeps the text well-formed. */
	allowed(b: number): boolean {
		if (this.need > 0) return b >= this.lo && b <= this.hi;
		return b <= 0x7f || (b >= 0xc2 && b <= 0xf4);
	}

	/** Advance over byte b. Returns false when b was invalid here (the automaton then resynchronises, as a decoder does). */
	push(b: number): boolean {
		if (this.need > 0) {
			if (b >= this.lo && b <= this.hi) {
				this.need--;
				this.lo = 0x80;
				this.hi = 0xbf;
				return true;
			}
			// The unfinished character is invalid; b is read again as the start of a new one.
			this.need = 0;
			this.lo = 0x80;
			this.hi = 0xbf;
			this.lead(b);
			return false;
		}
		return this.lead(b);
	}

	private lead(b: number): boolean {
		this.lo = 0x80;
		this.hi = 0xbf;
		if (b <= 0x7f) return true;
		if (b >= 0xc2 && b <= 0xdf) {
			this.need = 1;
		} else if (b >= 0xe0 && b <= 0xef) {
			this.need = 2;
			if (b === 0xe0) this.lo = 0xa0; // no overlong 3-byte forms
			if (b === 0xed) this.hi = 0x9f; // no surrogates D800-DFFF
		} else if (b >= 0xf0 && b <= 0xf4) {
			this.need = 3;
			if (b === 0xf0) this.lo = 0x90; // no overlong 4-byte forms
			if (b === 0xf4) this.hi = 0x8f; // nothing above U+10FFFF
		} else {
			return false; // 80-BF stray continuation, C0/C1 overlong, F5-FF out of range
		}
		return true;
	}

	pushAll(bytes: ArrayLike<number>): void {
		for (let i = 0; i < bytes.length; i++) this.push(bytes[i]);
	}
}

/** True when bytes are well-formed UTF-8 (complete characters only). */
export function isValidUtf8(bytes: ArrayLike<number>): boolean {
	const v = new Utf8Validator();
	for (let i = 0; i < bytes.length; i++) if (!v.push(bytes[i])) return false;
	return v.atBoundary;
}

/**
 * Split bytes into maximal well-formed runs and single ill-formed bytes, in order (concatenating the pieces gives
 * the input back). An unfinished character at the end counts as ill-formed bytes.
 */
export function splitUtf8(bytes: Uint8Array): { valid: boolean; start: number; end: number }[] {
	const out: { valid: boolean; start: number; end: number }[] = [];
	let runStart = 0;
	let i = 0;
	const flushRun = (end: number) => {
		if (end > runStart) out.push({ valid: true, start: runStart, end });
	};
	while (i < bytes.length) {
		const len = charLength(bytes, i);
		if (len > 0) {
			i += len;
		} else {
			flushRun(i);
			out.push({ valid: false, start: i, end: i + 1 });
			i += 1;
			runStart = i;
		}
	}
	flushRun(i);
	return out;
}

/** Length of the well-formed character starting at bytes[i], or 0 when bytes[i] does not start one. */
function charLength(bytes: Uint8Array, i: number): number {
	const v = new Utf8Validator();
	let j = i;
	do {
		if (j >= bytes.length || !v.push(bytes[j])) return 0;
		j++;
	} while (!v.atBoundary);
	return j - i;
}
