// The app's Conversation (app/conversation.ts) as the ChatSession the chat UI talks to: the model's identity for
// /save and /load, and a seed per turn.
import { Conversation } from '../app/conversation.js';
import { openModels } from '../app/open.js';
import type { GenerationOptions, GenerationSettings } from '../app/options.js';
import type { GenerationEvent } from '../engine/events.js';
import type { ChatSession, ModelIdentity } from './session.js';

export class EngineChatSession implements ChatSession {
	readonly model: ModelIdentity;
	readonly backend: string;
	readonly drafter: string | null;
	private turn = 0;

	constructor(private readonly conversation: Conversation) {
		const m = conversation.models.model;
		const c = m.config;
		this.model = {
			name: m.checkpoint.name,
			dModel: c.dModel, nLayer: c.nLayer, dInner: c.dInner, dState: c.dState, dConv: c.dConv, vocabSize: c.vocabSize,
		};
		this.backend = m.kernels.name;
		this.drafter = conversation.models.drafter?.name ?? null;
	}

	get stateBytes(): number {
		return this.conversation.stateBytes;
	}
	get contextBytes(): number {
		return this.conversation.position;
	}

	append(bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
		return this.conversation.append(bytes, signal);
	}

	generate(s: GenerationSettings, signal: AbortSignal): AsyncIterable<GenerationEvent> {
		// reproducible per session, different each turn
		return this.conversation.generate({ ...s, seed: (s.seed + this.turn++) >>> 0 }, signal);
	}

	reset(): void {
		this.conversation.reset();
	}

	exportState(): Promise<Uint8Array> {
		return this.conversation.saveState();
	}

	async importState(bytes: Uint8Array): Promise<void> {
		this.conversation.restoreState(bytes);
	}
}

/** Load the byte model (and the drafter, on the same backend) for a chat. Errors are one line (UserError). */
export async function openChatSession(opts: GenerationOptions): Promise<ChatSession> {
	const opened = await openModels(opts);
	if (opts.verbose) for (const n of [...opened.notes, `backend ${opened.kernels.name} chosen`]) process.stderr.write(`mambabyte: ${n}\n`);
	return new EngineChatSession(new Conversation(opened));
}
