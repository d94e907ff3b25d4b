// (being written in issue 4: the Ink chat REPL)
import type { GenerationOptions } from '../cli/options.js';
import { UserError } from '../errors.js';
export async function runChat(_opts: GenerationOptions): Promise<void> {
	throw new UserError('chat is not built yet');
}
