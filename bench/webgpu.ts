// GPU bench (issue 6): the shipped byte model and random weights of the MambaByte-972M shape (d_model 1792,
// 48 layers, f32) on gpu.js's webgpu backend (Dawn). Run on the GPU machine by bench/gpu-run.sh, which brings
// Node, Dawn and the Vulkan loader; prints one JSON line per measurement and a line per failure.
import { selectBackend } from '../src/backend/select.js';
import { benchModel } from '../src/cli/bench.js';
import { loadCheckpoint } from '../src/checkpoint/index.js';
import { randomCheckpoint, shapeConfig } from '../src/model/random.js';
import { DEFAULT_MODEL } from '../src/cli/options.js';

const log = (o: object) => process.stdout.write(JSON.stringify(o) + '\n');

async function main() {
	const t0 = performance.now();
	const { kernels } = await selectBackend('webgpu');
	log({ stage: 'webgpu ready', seconds: (performance.now() - t0) / 1000 });
	try {
		log(await benchModel(loadCheckpoint(DEFAULT_MODEL), kernels, { prefill: 64, decode: 16, repeats: 2 }));
	} catch (e) {
		log({ stage: 'byte-model failed', error: String(e instanceof Error ? e.stack : e).slice(0, 2000) });
	}
	for (const [d, L] of [[1024, 53], [1792, 48]]) {
		try {
			const t1 = performance.now();
			const ckpt = randomCheckpoint(shapeConfig(d, L), 1);
			ckpt.name = `random ${d}x${L} f32`;
			log({ stage: `built ${ckpt.name}`, seconds: (performance.now() - t1) / 1000 });
			log(await benchModel(ckpt, kernels, { prefill: 64, decode: 4, repeats: 1 }));
		} catch (e) {
			log({ stage: `${d}x${L} failed`, error: String(e instanceof Error ? e.stack : e).slice(0, 2000) });
		}
	}
}

main().then(() => process.exit(0), (e) => {
	log({ stage: 'failed', error: String(e instanceof Error ? e.stack : e).slice(0, 2000) });
	process.exit(1);
});
