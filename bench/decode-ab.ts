// Decode bytes/s of the native backend's fused step against its per-operation path, interleaved in one process
// (the machine is shared: alternating rounds see the same load), medians over rounds.
//   node dist/bench/decode-ab.js [--shape DxL] [--dtype q8_0|q4_0|q4_k|f16] [--bytes N] [--rounds R] [--isa I]
// Without --shape: the shipped byte model. MAMBABYTE_THREADS=1 for one thread.
import { NativeKernels } from '../src/backend/native.js';
import { loadCheckpoint } from '../src/checkpoint/index.js';
import { DEFAULT_MODEL } from '../src/cli/options.js';
import { parseShape } from '../src/cli/bench.js';
import { quantizeProjections, stepWeightBytes, type BenchDtype } from '../src/cli/bench-quant.js';
import { Mamba } from '../src/model/mamba.js';

const args = process.argv.slice(2);
const opt = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const shape = opt('--shape'), dtype = (opt('--dtype') ?? 'f32') as BenchDtype;
const rounds = Number(opt('--rounds') ?? 7), isa = opt('--isa');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const kernels = NativeKernels.create(isa ? { isa } : {});
const ckpt = shape ? parseShape(shape) : loadCheckpoint(DEFAULT_MODEL);
const model = new Mamba(ckpt, kernels);
if (dtype !== 'f32') quantizeProjections(model, dtype);
const bytes = Number(opt('--bytes') ?? Math.max(16, Math.min(256, Math.round(2e10 / (2 * stepWeightBytes(model) / 4)))));
const text = new TextEncoder().encode('It was a dark and stormy night; the rain fell in torrents. '.repeat(8));

async function decodeRate(fused: boolean): Promise<number> {
	model.fusedStep = fused;
	const s = model.newState();
	await model.forward(text.subarray(0, 16), s);
	const t0 = performance.now();
	for (let i = 0; i < bytes; i++) await model.step(text[i % text.length], s);
	return bytes / ((performance.now() - t0) / 1000);
}

await decodeRate(true);
await decodeRate(false);
const fusedRates: number[] = [], perOpRates: number[] = [];
for (let r = 0; r < rounds; r++) {
	fusedRates.push(await decodeRate(true));
	perOpRates.push(await decodeRate(false));
}
const info = kernels.info, wb = stepWeightBytes(model);
const fmt = (xs: number[]) => `median ${median(xs).toFixed(1)} (min ${Math.min(...xs).toFixed(1)}, max ${Math.max(...xs).toFixed(1)})`;
console.log(`${shape ? `random ${shape}` : ckpt.name} ${dtype}, ${info.isa}, ${info.threads} threads, ${bytes} bytes x ${rounds} rounds, ${(wb / 1e6).toFixed(1)} MB weights/step`);
console.log(`  fused step:   ${fmt(fusedRates)} B/s, ${((median(fusedRates) * wb) / 1e9).toFixed(1)} GB/s of weights`);
console.log(`  per-op path:  ${fmt(perOpRates)} B/s`);
console.log(JSON.stringify({ model: shape ?? ckpt.name, dtype, isa: info.isa, threads: info.threads, fused: median(fusedRates), perOp: median(perOpRates), fusedAll: fusedRates, perOpAll: perOpRates }));
