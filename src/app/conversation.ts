// A conversation held in the recurrent state (the engine's Session over an opened model pair): feed text, generate
// from everything so far, and save or restore the state as bytes. The chat (ui/engine-session.ts) and the library
// (src/index.ts) both talk to the engine through this.
import { Session } from '../engine/generate.js';
import type { GenerationEvent } from '../engine/events.js';
import { decodeCheckedSnapshot } from '../engine/snapshot-check.js';
import { encodeSnapshot } from '../engine/snapshot.js';
import { UserError } from '../errors.js';
import type { OpenedModels } from './open.js';
import { engineOptions, settingsWith, type GenerationSettings } from './options.js';

export class Conversation {
	private readonly session: Session;

	constructor(readonly models: Pick<OpenedModels, 'model' | 'drafter'>) {
		this.session = new Session(models.model, models.drafter);
	}

	/** Bytes of text the state has consumed (appended and generated). */
	get position(): number {
		return this.session.position;
	}

	/** Bytes of recurrent state (the byte model's plus the drafter's): fixed, however long the conversation. */
	get stateBytes(): number {
		return this.session.stateBytes;
	}

	/** Feed text; only these bytes are read, never the earlier ones. Throws an AbortError when `signal` aborts. */
	append(text: string | Uint8Array, signal?: AbortSignal): Promise<void> {
		return this.session.append(typeof text === 'string' ? new TextEncoder().encode(text) : text, signal);
	}

	/** Continue the text: the engine's events, ending with 'done' (max bytes, a stop string, or `signal` aborted). */
	async *generate(settings: Partial<GenerationSettings> = {}, signal?: AbortSignal): AsyncGenerator<GenerationEvent> {
		// The model predicts from the bytes before; a one-shot generate() feeds "\n" for an empty prompt, a
		// conversation leaves its text to the caller.
		if (this.position === 0) throw new UserError('nothing to continue yet: append text first');
		yield* this.session.generate(engineOptions(settingsWith(settings), signal));
	}

	/** Back to an empty context (zero state). */
	reset(): void {
		this.session.reset();
	}

	/** The whole state as bytes (the engine's snapshot format, engine/snapshot.ts). */
	async saveState(): Promise<Uint8Array> {
		return encodeSnapshot(await this.session.hostSnapshot());
	}

	/** Replace the state with one from saveState() of the same models; a refused one leaves the state untouched. */
	restoreState(bytes: Uint8Array): void {
		try {
			// Checked completely first (snapshot-check.ts), so a bad file cannot leave half a state behind.
			const shapes = { model: this.models.model.config, drafter: this.models.drafter?.model.config ?? null };
			this.session.restore(decodeCheckedSnapshot(bytes, shapes));
		} catch (e) {
			throw new UserError(`cannot restore the saved state: ${e instanceof Error ? e.message : String(e)}`);
		}
	}

	/** Give the states back (device memory at once on webgpu); the conversation must not be used afterwards. */
	free(): void {
		this.session.free();
	}
}
