// Acceptance of a drafter against a byte model, with the draft length fixed (no adaptive schedule, so the figures do
// not depend on the machine's speed or load): the bench prompts x 256 bytes x seeds, greedy exact, greedy top:3 and
// exact at temperature 0.8. Deterministic for a given model pair and backend.
//   node dist/bench/acceptance.js [--model DIR] [--draft DIR ...] [--subwords K] [--seeds N] [--backend B]
import { openModel } from '../src/app/open.js';
import { generate } from '../src/engine/generate.js';
import { Drafter } from '../src/engine/drafter.js';
import type { AcceptRule } from '../src/engine/accept.js';
import { PROMPTS } from '../src/cli/bench.js';
import { DEFAULT_DRAFT, DEFAULT_MODEL } from '../src/app/sources.js';
import type { BackendChoice } from '../src/backend/types.js';

const args = process.argv.slice(2);
const opt = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const drafts = args.flatMap((a, i) => (args[i - 1] === '--draft' ? [a] : []));
const subwords = Number(opt('--subwords') ?? 3), seeds = Number(opt('--seeds') ?? 2);
const backend = (opt('--backend') ?? 'native') as BackendChoice;

const { model } = await openModel(opt('--model') ?? DEFAULT_MODEL, backend);
const modes: [string, number, AcceptRule][] = [
	['greedy exact', 0, { kind: 'exact' }],
	['greedy top:3', 0, { kind: 'top', k: 3 }],
	['t 0.8 exact', 0.8, { kind: 'exact' }],
];
console.log('| drafter | mode | acceptance | mean accepted run | bytes per verify pass |\n|---|---|---|---|---|');
for (const dir of drafts.length > 0 ? drafts : [DEFAULT_DRAFT]) {
	const { model: dm } = await openModel(dir, backend);
	const drafter = new Drafter(dm, Drafter.tokenizerOf(dm));
	for (const [mode, temperature, accept] of modes) {
		let tested = 0, accepted = 0, passes = 0, bytes = 0;
		for (let seed = 1; seed <= seeds; seed++) {
			for (const prompt of PROMPTS) {
				const opts = { maxBytes: 256, temperature, topK: 0, topP: 1, seed, stop: [], utf8: true, accept, schedule: 'fixed' as const, draftSubwords: subwords };
				for await (const ev of generate(model, new TextEncoder().encode(prompt), opts, drafter)) {
					if (ev.type !== 'done' || !ev.stats.speculative) continue;
					tested += ev.stats.speculative.tested;
					accepted += ev.stats.speculative.accepted;
					passes += ev.stats.speculative.verifyPasses;
					bytes += ev.stats.generatedBytes;
				}
			}
		}
		console.log(`| ${dir} | ${mode} | ${((100 * accepted) / tested).toFixed(1)}% | ${(accepted / passes).toFixed(2)} | ${(bytes / passes).toFixed(2)} |`);
	}
}
