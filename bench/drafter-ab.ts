// Why plain byte steps cost more inside a speculative generation with a GPU-resident drafter (H200 run 5: 1.16-1.18
// ms against 1.06 ms in plain decoding; with the native drafter they cost the same). Runs on the GPU machine like
// bench/webgpu.ts (bench/gpu-run.sh, with `BENCH=drafter-ab`); arms interleaved prompt by prompt:
//   plain        no drafter
//   idle         the drafter attached (the session feeds it the prompt and every byte) but draftSubwords 0
//   exact        speculative exact at the temperature (the adaptive schedule, as the bench runs it)
//   exact-nopipe the same with the drafter not recording its next step ahead (pipelineSteps false)
// Prints per arm bytes/s and the mean ms of a plain byte step (Profile's plain-step / plain steps).
//   node dist/bench/drafter-ab.js [--temperature T] [--rounds R]
import { selectBackend } from '../src/backend/select.js';
import type { GpuJsKernels } from '../src/backend/gpujs.js';
import { WebGpuRunner } from '../src/backend/resident/webgpu.js';
import { PROMPTS } from '../src/cli/bench.js';
import { drafterFor } from '../src/app/open.js';
import { loadModel } from '../src/checkpoint/index.js';
import { ResidentMamba } from '../src/model/resident.js';
import { generate, type GenerateOptions } from '../src/engine/generate.js';
import { Profile } from '../src/engine/profile.js';
import type { GenerationStats } from '../src/engine/events.js';
import { DEFAULT_DRAFT, DEFAULT_MODEL } from '../src/app/sources.js';

const args = process.argv.slice(2);
const opt = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const temperature = Number(opt('--temperature') ?? 0.8);
const rounds = Number(opt('--rounds') ?? 3);

const { kernels } = await selectBackend('webgpu');
const runner = new WebGpuRunner((kernels as GpuJsKernels).gpu);
const model = await ResidentMamba.create(loadModel(DEFAULT_MODEL), runner, kernels);
const draftModel = await ResidentMamba.create(loadModel(DEFAULT_DRAFT), runner, kernels);
const drafter = drafterFor(draftModel);
const arms = ['plain', 'idle', 'exact', 'exact-nopipe'] as const;
const acc = arms.map(() => ({ bytes: 0, seconds: 0, profile: new Profile() }));
for (let r = 0; r < rounds; r++) {
	for (const prompt of PROMPTS) {
		for (let i = 0; i < arms.length; i++) {
			const arm = arms[i];
			draftModel.pipelineSteps = arm !== 'exact-nopipe';
			const opts: GenerateOptions = {
				maxBytes: 256, temperature, topK: 0, topP: 1, seed: 1 + r, stop: [], utf8: true, accept: { kind: 'exact' },
				draftSubwords: arm === 'idle' ? 0 : undefined, profile: r > 0 ? acc[i].profile : undefined,
			};
			let stats: GenerationStats | null = null;
			for await (const ev of generate(model, new TextEncoder().encode(prompt), opts, arm === 'plain' ? null : drafter)) if (ev.type === 'done') stats = ev.stats;
			if (r === 0 || !stats) continue;
			acc[i].bytes += stats.generatedBytes;
			acc[i].seconds += stats.seconds;
		}
	}
}
console.log(`webgpu, temperature ${temperature}, ${rounds - 1} rounds after a warm-up`);
arms.forEach((arm, i) => {
	const p = acc[i].profile;
	const stepMs = p.ms['plain-step'] / Math.max(p.plainSteps, 1);
	console.log(JSON.stringify({ arm, bytes_per_second: +(acc[i].bytes / acc[i].seconds).toFixed(1), plain_steps: p.plainSteps, plain_step_ms: +stepMs.toFixed(4), verify_rounds: p.rounds }));
});
