// Scripted stand-ins for the engine, for the UI tests: a ChatSession that replays GenerationEvents, optionally
// pausing before chosen events so a test can look at the screen mid-stream. No timing is involved.
import type { GenerationEvent, GenerationStats, SpeculativeStats } from '../src/engine/events.js';
import type { GenerationSettings } from '../src/app/options.js';
import type { ChatSession, ModelIdentity } from '../src/ui/session.js';

const enc = new TextEncoder();
export const commit = (text: string | Uint8Array, source: 'draft' | 'model' = 'model'): GenerationEvent =>
	({ type: 'commit', bytes: typeof text === 'string' ? enc.encode(text) : text, source });
export const draft = (text: string | Uint8Array): GenerationEvent => ({ type: 'draft', bytes: typeof text === 'string' ? enc.encode(text) : text });
export const reject = (count: number): GenerationEvent => ({ type: 'reject', count });

export function genStats(over: Partial<GenerationStats> = {}, spec: Partial<SpeculativeStats> | null = null): GenerationStats {
	return {
		promptBytes: 6, generatedBytes: 256, seconds: 2, bytesPerSecond: 128,
		speculative: spec ? { drafted: 120, tested: 117, accepted: 91, acceptanceRate: 91 / 117, meanAcceptedRun: 4.3, verifyPasses: 21, ...spec } : null,
		...over,
	};
}
export const done = (stats = genStats(), reason: 'max-bytes' | 'stop' | 'aborted' = 'max-bytes'): GenerationEvent => ({ type: 'done', reason, stats });

/** Resolvable promise. */
export function deferred<T = void>() {
	let resolve!: (v: T) => void;
	const promise = new Promise<T>((r) => (resolve = r));
	return { promise, resolve };
}

/** Let pending promise callbacks, immediates and React/Ink renders run (a few event-loop turns, no clock). */
export async function settle(turns = 20): Promise<void> {
	for (let i = 0; i < turns; i++) await new Promise<void>((r) => setImmediate(r));
}

/**
 * settle() until `ready()` holds, at most `rounds` times: React's scheduler slices its work by time, so on a loaded
 * machine a render can take more event-loop turns than one settle() gives it.
 */
export async function settleUntil(ready: () => boolean, rounds = 100): Promise<void> {
	for (let i = 0; i < rounds && !ready(); i++) await settle();
}

export const tinyModel: ModelIdentity = { name: 'tiny-test', dModel: 8, nLayer: 2, dInner: 16, dState: 4, dConv: 4, vocabSize: 256 };

export class FakeSession implements ChatSession {
	backend = 'cpu';
	model = tinyModel;
	stateBytes = 98304;
	contextBytes = 0;
	appended: string[] = [];
	settingsSeen: GenerationSettings[] = [];
	resets = 0;
	imported: Uint8Array | null = null;
	turns = 0;
	/** Called before each event is yielded; return a promise to hold the stream there. */
	gate: (e: GenerationEvent, index: number) => Promise<void> | void = () => {};
	completed = 0; // generate() calls that have finished
	private waiters: { n: number; resolve: () => void }[] = [];

	constructor(
		private readonly script: (turn: number, s: GenerationSettings) => GenerationEvent[],
		readonly drafter: string | null = null,
	) {}

	async append(bytes: Uint8Array): Promise<void> {
		this.appended.push(new TextDecoder().decode(bytes));
		this.contextBytes += bytes.length;
	}

	async *generate(settings: GenerationSettings, signal: AbortSignal): AsyncGenerator<GenerationEvent> {
		this.settingsSeen.push(settings);
		const events = this.script(this.turns++, settings);
		try {
			for (let i = 0; i < events.length; i++) {
				await this.gate(events[i], i);
				if (signal.aborted) {
					yield done(genStats({ generatedBytes: 1 }), 'aborted');
					return;
				}
				const e = events[i];
				if (e.type === 'commit') this.contextBytes += e.bytes.length;
				yield e;
			}
		} finally {
			this.completed++;
			for (const w of this.waiters.filter((w) => this.completed >= w.n)) w.resolve();
			this.waiters = this.waiters.filter((w) => this.completed < w.n);
		}
	}

	/** Resolves once `n` generate() calls have finished (default: every call started so far). */
	whenDone(n = this.turns): Promise<void> {
		if (this.completed >= n) return Promise.resolve();
		return new Promise((resolve) => this.waiters.push({ n, resolve }));
	}

	reset(): void {
		this.resets++;
		this.contextBytes = 0;
	}

	/** A made-up state: the context length, then four marker bytes. */
	async exportState(): Promise<Uint8Array> {
		const out = new Uint8Array(8);
		new DataView(out.buffer).setUint32(0, this.contextBytes, true);
		out.set([0xde, 0xad, 0xbe, 0xef], 4);
		return out;
	}

	async importState(bytes: Uint8Array): Promise<void> {
		this.imported = bytes;
		this.contextBytes = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true);
	}
}
