// The engine's Session (src/engine/generate.ts) as the ChatSession the chat UI talks to: opening the byte model and
// the drafter, per-turn options, and the session snapshot as /save's state.
import type { GenerationOptions } from '../cli/options.js';
import { Session } from '../engine/generate.js';
import { decodeCheckedSnapshot } from '../engine/snapshot-check.js';
import { encodeSnapshot } from '../engine/snapshot.js';
import { Drafter } from '../engine/drafter.js';
import type { GenerationEvent } from '../engine/events.js';
import { openModel } from '../model/open.js';
import { UserError } from '../errors.js';
import type { ChatSession, ChatSettings, ModelIdentity } from './session.js';

export class EngineChatSession implements ChatSession {
	readonly model: ModelIdentity;
	private turn = 0;

	constructor(
		private readonly session: Session,
		private readonly opts: Pick<GenerationOptions, 'utf8' | 'draftSubwords'>,
	) {
		const c = session.model.config;
		this.model = {
			name: session.model.checkpoint.name,
			dModel: c.dModel, nLayer: c.nLayer, dInner: c.dInner, dState: c.dState, dConv: c.dConv, vocabSize: c.vocabSize,
		};
	}

	get backend(): string {
		return this.session.model.kernels.name;
	}
	get drafter(): string | null {
		return this.session.drafter?.name ?? null;
	}
	get stateBytes(): number {
		return this.session.stateBytes;
	}
	get contextBytes(): number {
		return this.session.position;
	}

	append(bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
		return this.session.append(bytes, signal);
	}

	generate(s: ChatSettings, signal: AbortSignal): AsyncIterable<GenerationEvent> {
		return this.session.generate({
			maxBytes: s.maxBytes,
			temperature: s.temperature,
			topK: s.topK,
			topP: s.topP,
			seed: (s.seed + this.turn++) >>> 0, // reproducible per session, different each turn
			stop: s.stop,
			utf8: this.opts.utf8,
			accept: s.accept,
			draftSubwords: s.draft ? this.opts.draftSubwords : 0,
			signal,
		});
	}

	reset(): void {
		this.session.reset();
	}

	async exportState(): Promise<Uint8Array> {
		return encodeSnapshot(await this.session.hostSnapshot());
	}

	async importState(bytes: Uint8Array): Promise<void> {
		try {
			// Checked completely first (snapshot-check.ts): a refused load leaves the live state untouched.
			const shapes = { model: this.session.model.config, drafter: this.session.drafter?.model.config ?? null };
			this.session.restore(decodeCheckedSnapshot(bytes, shapes));
		} catch (e) {
			throw new UserError(`cannot restore the saved state: ${e instanceof Error ? e.message : String(e)}`);
		}
	}
}

/** Load the byte model (and the drafter, on the same backend) for a chat. Errors are one line (UserError). */
export async function openChatSession(opts: GenerationOptions): Promise<ChatSession> {
	const { model, kernels, notes } = await openModel(opts.model, opts.backend);
	if (opts.verbose) for (const n of [...notes, `backend ${kernels.name} chosen`]) process.stderr.write(`mambabyte: ${n}\n`);
	let drafter: Drafter | null = null;
	if (opts.draft) {
		const d = await openModel(opts.draft, kernels);
		drafter = new Drafter(d.model, Drafter.tokenizerOf(d.model));
	}
	return new EngineChatSession(new Session(model, drafter), opts);
}
