// The options of one generation as the engine takes them. The front ends (CLI, chat, library) share the app's
// GenerationSettings, built from these (app/options.ts engineOptions turns one into the other).
import type { AcceptRule } from './accept.js';
import type { Profile } from './profile.js';
import type { SamplingOptions } from './sampling.js';

export type { AcceptRule } from './accept.js';

export interface GenerateOptions extends SamplingOptions {
	maxBytes: number;
	stop: readonly string[];
	utf8: boolean; // mask bytes that would make the text invalid UTF-8 (utf8.ts)
	accept?: AcceptRule; // default exact
	/** Most subwords per draft (default 3); 0 = no drafting even with a drafter. */
	draftSubwords?: number;
	/** 'adaptive' (default): draft as much as measurably pays, down to not at all (adaptive.ts); 'fixed': always
	 * draftSubwords. */
	schedule?: 'adaptive' | 'fixed';
	signal?: AbortSignal;
	statsIntervalMs?: number; // default 250
	/** After a rejection: draft again at once ('draft', default) or let the byte model decode to a boundary byte first
	 * ('boundary', the paper's schedule). See generate.ts for why the default differs from the paper. */
	resume?: 'draft' | 'boundary';
	/** Stop drafting a round early when the drafter's probability of its proposal falls below this (default 0.05). */
	draftConfidence?: number;
	/** Add where the time goes to this (profile.ts); unset = nothing is measured. */
	profile?: Profile;
}
