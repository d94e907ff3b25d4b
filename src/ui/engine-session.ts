// Adapts the engine's Session (src/engine) to the ChatSession the chat UI uses. (Waiting for the engine.)
import type { GenerationOptions } from '../cli/options.js';
import { UserError } from '../errors.js';
import type { ChatSession } from './session.js';

export async function openChatSession(_opts: GenerationOptions): Promise<ChatSession> {
	throw new UserError('chat: the generation engine is not built yet');
}
