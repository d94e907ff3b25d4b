// (being written in issue 3: `mambabyte complete`)
import type { GenerationOptions } from './options.js';
import { UserError } from '../errors.js';
export async function runComplete(_prompt: string | null, _opts: GenerationOptions): Promise<void> {
	throw new UserError('complete is not built yet');
}
