// The prompt's line editing as a pure function of (state, key): insert, delete, move, history (up/down), submit.
// Ctrl-C and Ctrl-D are not handled here: they mean something to the whole chat (stop, exit).
import type { Key } from 'ink';

export interface EditorState {
	value: string;
	cursor: number; // in UTF-16 code units, always on a character boundary
	history: string[]; // oldest first
	index: number; // history.length = editing a new line
	stash: string; // the new line being typed while browsing history
}

export const emptyEditor = (history: string[] = []): EditorState => ({ value: '', cursor: 0, history, index: history.length, stash: '' });

export type KeyLike = Partial<Key>;

const isHigh = (c: number) => c >= 0xd800 && c <= 0xdbff;
const isLow = (c: number) => c >= 0xdc00 && c <= 0xdfff;
const prevBoundary = (s: string, i: number) => (i >= 2 && isLow(s.charCodeAt(i - 1)) && isHigh(s.charCodeAt(i - 2)) ? i - 2 : Math.max(0, i - 1));
const nextBoundary = (s: string, i: number) => (i + 1 < s.length && isHigh(s.charCodeAt(i)) && isLow(s.charCodeAt(i + 1)) ? i + 2 : Math.min(s.length, i + 1));

/** Apply one key. Returns the new state and, on Enter, the submitted line. */
export function editLine(s: EditorState, input: string, key: KeyLike): { state: EditorState; submit?: string } {
	const set = (value: string, cursor: number): { state: EditorState } => ({ state: { ...s, value, cursor } });
	if (key.return) {
		const line = s.value;
		const history = line.trim() !== '' && s.history[s.history.length - 1] !== line ? [...s.history, line] : s.history;
		return { state: emptyEditor(history), submit: line };
	}
	if (key.upArrow) {
		if (s.index === 0) return { state: s };
		const index = s.index - 1;
		const value = s.history[index];
		return { state: { ...s, index, value, cursor: value.length, stash: s.index === s.history.length ? s.value : s.stash } };
	}
	if (key.downArrow) {
		if (s.index >= s.history.length) return { state: s };
		const index = s.index + 1;
		const value = index === s.history.length ? s.stash : s.history[index];
		return { state: { ...s, index, value, cursor: value.length } };
	}
	if (key.leftArrow) return set(s.value, prevBoundary(s.value, s.cursor));
	if (key.rightArrow) return set(s.value, nextBoundary(s.value, s.cursor));
	if (key.home || (key.ctrl && input === 'a')) return set(s.value, 0);
	if (key.end || (key.ctrl && input === 'e')) return set(s.value, s.value.length);
	// Ink reports the Backspace key (DEL, 0x7f) as `delete`: both erase to the left, as in most line editors.
	if (key.backspace || key.delete) {
		if (s.cursor === 0) return { state: s };
		const at = prevBoundary(s.value, s.cursor);
		return set(s.value.slice(0, at) + s.value.slice(s.cursor), at);
	}
	if (key.ctrl && input === 'u') return set(s.value.slice(s.cursor), 0);
	if (key.ctrl && input === 'k') return set(s.value.slice(0, s.cursor), s.cursor);
	if (key.ctrl && input === 'w') {
		const before = s.value.slice(0, s.cursor).replace(/\S+\s*$/, '');
		return set(before + s.value.slice(s.cursor), before.length);
	}
	if (key.ctrl || key.meta || key.escape || key.tab || key.pageUp || key.pageDown) return { state: s };
	// Typed or pasted text: line breaks become spaces, other control characters are dropped.
	// eslint-disable-next-line no-control-regex
	const text = input.replace(/\r\n|[\r\n]/g, ' ').replace(/[\u0000-\u001f\u007f]/g, '');
	if (text === '') return { state: s };
	return set(s.value.slice(0, s.cursor) + text + s.value.slice(s.cursor), s.cursor + text.length);
}
