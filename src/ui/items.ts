// The finished transcript: what <Static> has printed, and what /save keeps. Each item is one line on screen.
import type { Span } from './turn.js';

export type Item =
	| { id: number; kind: 'user'; text: string } // a line the user sent
	| { id: number; kind: 'model'; spans: Span[] } // one finished line of the model's text
	| { id: number; kind: 'note'; tone: 'info' | 'error' | 'dim'; text: string }; // command output, errors

/** What of an item is saved (ids are re-numbered on load). */
export type SavedItem = { kind: 'user'; text: string } | { kind: 'model'; spans: Span[] };

let nextId = 1;
export function item<T extends Omit<Item, 'id'>>(x: T): T & { id: number } {
	return { ...x, id: nextId++ };
}

export const note = (text: string, tone: 'info' | 'error' | 'dim' = 'info'): Item => item({ kind: 'note' as const, tone, text });
