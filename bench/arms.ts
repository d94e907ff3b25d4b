// What each arm of the adaptive schedule (src/engine/adaptive.ts) gives on this machine: plain decoding against
// speculative decoding with the draft length fixed at m subwords (schedule 'fixed'), the bench prompts x 256 bytes,
// interleaved prompt by prompt (a shared machine's load hits the arms alike), the first round a warm-up. Prints
// bytes/s and the ratio to plain per arm, then where each drafting arm's time goes (the --profile table). The
// adaptive schedule can only be as good as the best arm here: where every m loses, plain decoding is right.
//   node dist/bench/arms.js [--temperature T] [--accept exact|top:K] [--m 1,2,3,4] [--confidence C,...] [--rounds R]
//                           [--backend B]
// --brief: the rates only, no profiles. --confidence: each m with each draft confidence floor (GenerateOptions.draftConfidence; default the engine's).
import { openModel } from '../src/app/open.js';
import { DRAFT_CONFIDENCE, generate, type GenerateOptions } from '../src/engine/generate.js';
import { Drafter } from '../src/engine/drafter.js';
import type { AcceptRule } from '../src/engine/accept.js';
import { Profile } from '../src/engine/profile.js';
import { PROMPTS } from '../src/cli/bench.js';
import { DEFAULT_DRAFT, DEFAULT_MODEL } from '../src/app/sources.js';
import type { BackendChoice } from '../src/backend/types.js';
import type { GenerationStats } from '../src/engine/events.js';

const args = process.argv.slice(2);
const opt = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const temperature = Number(opt('--temperature') ?? 0);
const acceptFlag = opt('--accept') ?? 'exact';
const accept: AcceptRule = acceptFlag.startsWith('top:') ? { kind: 'top', k: Number(acceptFlag.slice(4)) } : { kind: 'exact' };
const confidences = opt('--confidence')?.split(',').map(Number) ?? [DRAFT_CONFIDENCE];
const arms: { m: number; c: number }[] = [{ m: 0, c: 0 }];
for (const m of (opt('--m') ?? '1,2,3,4').split(',').map(Number)) for (const c of confidences) arms.push({ m, c });
const label = (a: { m: number; c: number }) => (a.m === 0 ? 'plain' : confidences.length > 1 ? `m = ${a.m}, confidence ${a.c}` : `m = ${a.m}`);
const rounds = Number(opt('--rounds') ?? 3);
const backend = (opt('--backend') ?? 'native') as BackendChoice;
if (!(temperature >= 0) || arms.some(({ m, c }) => !(Number.isInteger(m) && m >= 0 && c >= 0 && c < 1)) || !(Number.isInteger(rounds) && rounds >= 2)) {
	console.error('bench/arms: --temperature >= 0, --m whole numbers, --confidence in [0, 1), --rounds >= 2 (the first is a warm-up)');
	process.exit(1);
}

const { model } = await openModel(opt('--model') ?? DEFAULT_MODEL, backend);
const { model: dm } = await openModel(opt('--draft') ?? DEFAULT_DRAFT, backend);
const drafter = new Drafter(dm, Drafter.tokenizerOf(dm));
const acc = arms.map(() => ({ bytes: 0, seconds: 0, passes: 0, accepted: 0, profile: new Profile() }));
for (let r = 0; r < rounds; r++) {
	for (const prompt of PROMPTS) {
		for (let i = 0; i < arms.length; i++) {
			const { m, c } = arms[i];
			const opts: GenerateOptions = {
				maxBytes: 256, temperature, topK: 0, topP: 1, seed: 1 + r, stop: [], utf8: true, accept,
				schedule: 'fixed', draftSubwords: Math.max(m, 1), draftConfidence: c, profile: r > 0 ? acc[i].profile : undefined,
			};
			let stats: GenerationStats | null = null;
			for await (const ev of generate(model, new TextEncoder().encode(prompt), opts, m > 0 ? drafter : null)) if (ev.type === 'done') stats = ev.stats;
			if (r === 0 || !stats) continue;
			acc[i].bytes += stats.generatedBytes;
			acc[i].seconds += stats.seconds;
			acc[i].passes += stats.speculative?.verifyPasses ?? 0;
			acc[i].accepted += stats.speculative?.accepted ?? 0;
		}
	}
}
const plainRate = acc[0].bytes / acc[0].seconds;
const stepMs = acc[0].profile.totalMs / Math.max(acc[0].profile.bytes, 1);
console.log(`${model.kernels.name}, temperature ${temperature}, ${acceptFlag}, ${rounds - 1} rounds after a warm-up`);
console.log('| arm | bytes/s | vs plain | accepted bytes per verify pass |\n|---|---|---|---|');
arms.forEach((arm, i) => {
	const a = acc[i], rate = a.bytes / a.seconds;
	console.log(`| ${label(arm)} | ${rate.toFixed(0)} | ${(rate / plainRate).toFixed(2)}x | ${arm.m === 0 ? '-' : (a.accepted / Math.max(a.passes, 1)).toFixed(2)} |`);
});
arms.forEach((arm, i) => {
	if (arm.m > 0 && !args.includes('--brief')) console.log(`\n${label(arm)}: ${acc[i].profile.table(stepMs)}`);
});
