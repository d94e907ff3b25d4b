// What /stats and /help print: session totals summed from the engine's per-turn stats, and the command list.
import type { GenerationStats } from '../engine/events.js';
import { HELP } from './commands.js';
import { fixed, formatBytes, formatPercent, formatRate } from './format.js';
import type { ChatSession } from './session.js';

/** Session totals for /stats, summed from the engine's per-turn stats. */
export interface Totals {
	turns: number;
	generated: number;
	seconds: number;
	promptBytes: number;
	drafted: number;
	tested: number;
	accepted: number;
	passes: number;
}
export const noTotals = (): Totals => ({ turns: 0, generated: 0, seconds: 0, promptBytes: 0, drafted: 0, tested: 0, accepted: 0, passes: 0 });

export function addTotals(t: Totals, s: GenerationStats | null): Totals {
	if (!s) return { ...t, turns: t.turns + 1 };
	const sp = s.speculative;
	return {
		turns: t.turns + 1,
		generated: t.generated + s.generatedBytes,
		seconds: t.seconds + s.seconds,
		promptBytes: t.promptBytes + s.promptBytes,
		drafted: t.drafted + (sp?.drafted ?? 0),
		tested: t.tested + (sp?.tested ?? 0),
		accepted: t.accepted + (sp?.accepted ?? 0),
		passes: t.passes + (sp?.verifyPasses ?? 0),
	};
}

export function statsLines(t: Totals, session: ChatSession, contextBytes: number): string[] {
	const m = session.model;
	const lines = [
		`session: ${t.turns} turn${t.turns === 1 ? '' : 's'} · ${formatBytes(t.generated)} generated in ${fixed(t.seconds, 1)} s` +
			` (${formatRate(t.seconds > 0 ? t.generated / t.seconds : NaN)}) · ${formatBytes(t.promptBytes)} of prompt read`,
	];
	if (t.drafted > 0 || t.passes > 0) {
		lines.push(
			`speculative: ${t.drafted} drafted · ${t.tested} tested · ${t.accepted} accepted (${formatPercent(t.tested ? t.accepted / t.tested : NaN)})` +
				` · mean run ${fixed(t.passes ? t.accepted / t.passes : NaN, 2)} over ${t.passes} verify passes`,
		);
	}
	lines.push(
		`model: ${m.name} (d ${m.dModel}, ${m.nLayer} layers) on ${session.backend} · context ${formatBytes(contextBytes)} · ` +
			`state ${formatBytes(session.stateBytes)}, fixed however long the conversation`,
	);
	return lines;
}

export function helpLines(): string[] {
	const w = Math.max(...HELP.map(([c]) => c.length));
	return [
		'What you type is appended to the text and the model continues it; Enter on an empty line lets it go on.',
		'A line sent while the model writes is queued and goes out when it is done (Ctrl-C stops it sooner).',
		...HELP.map(([c, d]) => `  ${c.padEnd(w)}  ${d}`),
		'Colours: model-sampled text plain, accepted draft cyan, unverified draft dim.',
	];
}
