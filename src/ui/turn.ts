// The live model turn as plain data: GenerationEvents in, lines and a small live tail out. No React here, so it is
// tested directly, and the UI copies a snapshot of it into React state at most every few tens of milliseconds.
//
// Finished lines (the text up to a newline, or a long line cut at a space) leave through takeLines() and go to
// Ink's <Static>, which prints them once, above the live area; only the unfinished last line and the drafted bytes
// awaiting verification stay live, so the part Ink redraws is a few rows however long the answer gets.
import type { GenerationEvent, GenerationStats } from '../engine/events.js';
import { Utf8Stream, printable } from './text.js';
import { concatBytes } from '../util/bytes.js';

/** Where a piece of text came from: typed by the user, sampled by the byte model, or drafted and accepted. */
export type Source = 'user' | 'model' | 'draft';
export interface Span {
	text: string;
	source: Source;
}

/** Append text to spans, merging with the last span when the source is the same. */
export function appendSpan(spans: Span[], text: string, source: Source): void {
	if (text === '') return;
	const last = spans[spans.length - 1];
	if (last && last.source === source) last.text += text;
	else spans.push({ text, source });
}

export const spansText = (spans: Span[]) => spans.map((s) => s.text).join('');

export interface TurnView {
	line: Span[]; // the unfinished last line
	draft: string; // drafted text awaiting verification (complete characters only)
	stats: GenerationStats | null;
	generated: number; // bytes committed so far this turn
	done: boolean;
}

export class TurnBuffer {
	private utf8 = new Utf8Stream();
	private ready: Span[][] = []; // finished lines not yet taken
	private line: Span[] = [];
	private draft: Uint8Array = new Uint8Array(0);
	stats: GenerationStats | null = null;
	doneReason: 'max-bytes' | 'stop' | 'aborted' | null = null;
	generated = 0;

	/**
	 * @param wrapAt cut a line without newlines at a space once it is longer than this (keeps the live part short);
	 * a function is asked each time, so the limit follows a terminal that changes width during the turn.
	 */
	constructor(private readonly wrapAt: number | (() => number) = 320) {}

	private get limit(): number {
		return typeof this.wrapAt === 'number' ? this.wrapAt : this.wrapAt();
	}

	apply(e: GenerationEvent): void {
		switch (e.type) {
			case 'draft':
				this.draft = concatBytes([this.draft, e.bytes]);
				break;
			case 'commit':
				if (e.source === 'draft') this.draft = this.draft.slice(Math.min(e.bytes.length, this.draft.length));
				this.generated += e.bytes.length;
				this.addText(this.utf8.push(e.bytes), e.source);
				break;
			case 'reject':
				this.draft = this.draft.slice(0, Math.max(0, this.draft.length - e.count));
				break;
			case 'stats':
				this.stats = e.stats;
				break;
			case 'done':
				this.stats = e.stats;
				this.doneReason = e.reason;
				this.draft = new Uint8Array(0);
				break;
			case 'start':
				break;
		}
	}

	private addText(text: string, source: Source): void {
		const parts = printable(text).split('\n');
		parts.forEach((part, i) => {
			if (i > 0) this.endLine();
			appendSpan(this.line, part, source);
		});
		this.wrapLongLine();
	}

	private endLine(): void {
		this.ready.push(this.line);
		this.line = [];
	}

	/** A line with no newline for a long while: move all of it up to the last space (at most wrapAt) to <Static>. */
	private wrapLongLine(): void {
		const limit = this.limit;
		while (spansText(this.line).length > limit) {
			const text = spansText(this.line);
			let cut = text.lastIndexOf(' ', limit);
			cut = cut <= 0 ? limit : cut + 1;
			if (/[\ud800-\udbff]/.test(text[cut - 1])) cut--; // never split a surrogate pair
			const [head, rest] = splitSpans(this.line, cut);
			this.ready.push(head);
			this.line = rest;
		}
	}

	/** Finished lines since the last call (each a list of spans, without its newline). */
	takeLines(): Span[][] {
		const out = this.ready;
		this.ready = [];
		return out;
	}

	/** End of the turn: the unfinished line (and any held-back partial character) becomes a finished line. */
	finish(): Span[][] {
		const rest = this.utf8.flush();
		if (rest) this.addText(rest, 'model');
		if (this.line.length > 0) this.endLine();
		this.draft = new Uint8Array(0);
		return this.takeLines();
	}

	view(): TurnView {
		return {
			line: this.line.map((s) => ({ ...s })),
			draft: printable(this.utf8.peek(this.draft)).replace(/\n/g, '\u21b5'),
			stats: this.stats,
			generated: this.generated,
			done: this.doneReason !== null,
		};
	}
}

/** Split spans at a character offset into [before, after]. */
export function splitSpans(spans: Span[], at: number): [Span[], Span[]] {
	const head: Span[] = [];
	const tail: Span[] = [];
	let pos = 0;
	for (const s of spans) {
		const end = pos + s.text.length;
		if (end <= at) head.push({ ...s });
		else if (pos >= at) tail.push({ ...s });
		else {
			head.push({ text: s.text.slice(0, at - pos), source: s.source });
			tail.push({ text: s.text.slice(at - pos), source: s.source });
		}
		pos = end;
	}
	return [head, tail];
}
