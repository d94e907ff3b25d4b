// One chat turn: feed the user's new text into the state, then consume the engine's events into a TurnBuffer and
// hand the UI a snapshot at most every `intervalMs` (batching keeps React and Ink from redrawing per byte; the
// last events always arrive through a trailing flush). Between events it yields to the event loop now and then,
// so keys (Ctrl-C) and timers are handled even when the engine computes on this thread.
import type { GenerationStats } from '../engine/events.js';
import type { GenerationSettings } from '../app/options.js';
import type { ChatSession } from './session.js';
import { TurnBuffer, type Span, type TurnView } from './turn.js';

export interface TurnUpdate {
	lines: Span[][]; // finished lines to print permanently
	view: TurnView | null; // the live part; null once the turn is over
}

export interface TurnResult {
	reason: 'max-bytes' | 'stop' | 'aborted';
	stats: GenerationStats | null;
	generated: number;
}

export interface RunTurnOptions {
	signal: AbortSignal;
	onUpdate: (u: TurnUpdate) => void;
	intervalMs?: number; // 0 = every event (tests)
	wrapAt?: number | (() => number);
	now?: () => number;
}

const macrotask = () => new Promise<void>((resolve) => setImmediate(resolve));

export async function runTurn(session: ChatSession, text: Uint8Array, settings: GenerationSettings, o: RunTurnOptions): Promise<TurnResult> {
	const interval = o.intervalMs ?? 33;
	const now = o.now ?? (() => performance.now());
	const buf = new TurnBuffer(o.wrapAt);
	let lastFlush = -Infinity;
	let timer: NodeJS.Timeout | null = null;
	const flush = () => {
		if (timer) clearTimeout(timer);
		timer = null;
		lastFlush = now();
		o.onUpdate({ lines: buf.takeLines(), view: buf.view() });
	};
	const schedule = () => {
		const wait = lastFlush + interval - now();
		if (wait <= 0) flush();
		else if (!timer) timer = setTimeout(flush, wait);
	};
	let reason: TurnResult['reason'] = 'aborted';
	try {
		if (text.length > 0) {
			try {
				await session.append(text, o.signal);
			} catch (e) {
				// Stopped while reading the prompt: the text is in the context, partly consumed; nothing generated.
				if (e instanceof Error && e.name === 'AbortError') return { reason: 'aborted', stats: null, generated: 0 };
				throw e;
			}
		}
		if (o.signal.aborted) return { reason: 'aborted', stats: null, generated: 0 };
		let lastYield = now();
		for await (const e of session.generate(settings, o.signal)) {
			buf.apply(e);
			if (e.type === 'done') {
				reason = e.reason;
				break;
			}
			schedule();
			if (now() - lastYield >= 8) {
				await macrotask();
				lastYield = now();
			}
			if (o.signal.aborted) break; // an engine that ignores the signal still stops at its next event
		}
	} finally {
		if (timer) clearTimeout(timer);
		o.onUpdate({ lines: buf.finish(), view: null });
	}
	return { reason, stats: buf.stats, generated: buf.generated };
}
