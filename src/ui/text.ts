// Bytes → text the terminal can show. The model emits bytes, not characters: a character may arrive split over
// several commits, and a byte model can emit any byte at all (an ESC would let it drive the terminal). So text is
// decoded with a streaming TextDecoder that holds back an unfinished character, and control bytes are shown as
// Unicode control pictures (␛, ␍ …) instead of being sent to the terminal.
import { concatBytes } from '../util/bytes.js';

/** How many bytes at the end of `b` begin a UTF-8 character that is not complete yet (0-3). */
export function incompleteTail(b: Uint8Array): number {
	const n = b.length;
	for (let back = 1; back <= Math.min(3, n); back++) {
		const c = b[n - back];
		if ((c & 0xc0) === 0x80) continue; // continuation byte: keep looking for the lead byte
		const need = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 1;
		return need > back ? back : 0;
	}
	return 0;
}

/**
 * A streaming UTF-8 decoder that also remembers its unfinished tail, so that speculative bytes (a draft) can be
 * previewed as text without disturbing the committed stream: `peek(draft)` decodes tail + draft, complete
 * characters only.
 */
export class Utf8Stream {
	private decoder = new TextDecoder('utf-8', { ignoreBOM: true });
	private tail: Uint8Array = new Uint8Array(0);

	/** Decode committed bytes; an unfinished character at the end is held back until its last byte arrives. */
	push(bytes: Uint8Array): string {
		const all = concatBytes([this.tail, bytes]);
		this.tail = all.slice(all.length - incompleteTail(all));
		return this.decoder.decode(bytes, { stream: true });
	}

	/** Text of (held-back tail + extra) without consuming anything; an unfinished character at the end is left out. */
	peek(extra: Uint8Array): string {
		const all = concatBytes([this.tail, extra]);
		return new TextDecoder('utf-8', { ignoreBOM: true }).decode(all.subarray(0, all.length - incompleteTail(all)));
	}

	/** Bytes held back (an unfinished character). */
	get pending(): number {
		return this.tail.length;
	}

	/** End of stream: an unfinished character becomes U+FFFD. */
	flush(): string {
		this.tail = new Uint8Array(0);
		return this.decoder.decode();
	}
}

/**
 * Make decoded model text safe and stable to print: C0/C1 controls (but newline) become control pictures,
 * a tab becomes spaces. Newlines are kept; callers split lines on them.
 */
export function printable(s: string): string {
	// eslint-disable-next-line no-control-regex
	return s.replace(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g, (c) => {
		const code = c.charCodeAt(0);
		if (code === 0x09) return '    ';
		if (code < 0x20) return String.fromCharCode(0x2400 + code); // ␀ … ␟
		if (code === 0x7f) return '\u2421'; // ␡
		return '\ufffd'; // C1 controls
	});
}
