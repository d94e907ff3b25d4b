// What the chat UI needs from a conversation: feed text into the recurrent state, generate from it as a stream of
// GenerationEvents, reset, and export/import the state for /save and /load. The app's Conversation is adapted to
// this in engine-session.ts; tests use a scripted fake. The UI never computes model figures itself.
// Per-turn settings (/temp, /topp, /draft, /accept) are the app's GenerationSettings, as the flags set them.
import type { GenerationSettings } from '../app/options.js';
import type { GenerationEvent } from '../engine/events.js';

/** Identity of the model a state belongs to: a state only loads into the same architecture and model. */
export interface ModelIdentity {
	name: string;
	dModel: number;
	nLayer: number;
	dInner: number;
	dState: number;
	dConv: number;
	vocabSize: number;
}

export interface ChatSession {
	readonly backend: string;
	readonly model: ModelIdentity;
	/** Name of the loaded subword drafter, or null when speculative decoding is unavailable. */
	readonly drafter: string | null;
	/** Bytes of recurrent state (the byte model's, plus the drafter's when loaded): fixed, whatever the context. */
	readonly stateBytes: number;
	/** Bytes of conversation the state has consumed (prompt text plus generated text). */
	readonly contextBytes: number;
	/** Feed new text into the state; only the new bytes are read, never the earlier turns. Abortable. */
	append(bytes: Uint8Array, signal?: AbortSignal): Promise<void>;
	/** Continue the text. Stops at settings.maxBytes, a stop string, or when `signal` aborts ('done' with 'aborted'). */
	generate(settings: GenerationSettings, signal: AbortSignal): AsyncIterable<GenerationEvent>;
	/** Forget everything: zero state, context 0. */
	reset(): void;
	/** The whole conversation state as bytes (the engine's own snapshot format), for /save. */
	exportState(): Promise<Uint8Array>;
	/** Replace the state with one from exportState() (already checked to belong to this model), for /load. */
	importState(bytes: Uint8Array): Promise<void>;
}
