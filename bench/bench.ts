// `npm run bench`: the numbers in the README's speed tables, on this machine.
//   1. the shipped byte model (and drafter) on every backend that works here: prefill and decode bytes/s;
//   2. random weights of the MambaByte-353M shape (d_model 1024, 53 layers, f32) on the CPU backends;
//   3. speculative decoding with the shipped pair: plain vs drafted (exact and top:3), greedy, same prompts.
// Tables on stdout, then one JSON object per measurement. `--quick` shrinks everything (a smoke run);
// `--shape DxL` adds a shape; `--skip-353m` leaves the big shape out.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { benchBackends, benchModel, benchSpeculative, machine, parseShape, specTable, table, type BenchResult } from '../src/cli/bench.js';
import { DEFAULT_DRAFT, DEFAULT_MODEL } from '../src/app/sources.js';
import { loadCheckpoint } from '../src/checkpoint/index.js';
import { buildModel } from '../src/app/open.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const shapeArg = args.includes('--shape') ? args[args.indexOf('--shape') + 1] : null;
const json: object[] = [];

async function main() {
	process.stdout.write(`machine: ${machine()}\n\n`);
	const { kernels, notes } = await benchBackends('auto');
	for (const n of notes) process.stdout.write(`note: ${n}\n`);
	const small = quick ? { prefill: 64, decode: 16, repeats: 1 } : undefined;
	const results: BenchResult[] = [];
	const shipped = existsSync(path.join(DEFAULT_MODEL, 'config.json'));
	if (shipped) {
		for (const dir of [DEFAULT_MODEL, DEFAULT_DRAFT]) {
			if (!existsSync(path.join(dir, 'config.json'))) continue;
			const ckpt = loadCheckpoint(dir);
			for (const k of kernels) results.push(await benchModel(ckpt, k, small));
		}
	}
	const shapes = [...(args.includes('--skip-353m') || quick ? [] : ['1024x53']), ...(shapeArg ? [shapeArg] : [])];
	for (const s of shapes) {
		const ckpt = parseShape(s);
		ckpt.name = `random ${s} f32`;
		// gpu.js webasm copies each weight into every compiled kernel's memory: skip it at this size; gpu.js cpu
		// gets one short run (it takes minutes at this size).
		for (const k of kernels.filter((k) => k.name !== 'webasm')) {
			results.push(await benchModel(ckpt, k, k.name === 'cpu' ? { prefill: 16, decode: 4, repeats: 1 } : quick ? small : undefined));
		}
	}
	process.stdout.write('\n' + table(results) + '\n');
	json.push(...results);
	if (shipped && existsSync(path.join(DEFAULT_DRAFT, 'config.json'))) {
		const best = kernels[0];
		const model = await buildModel(loadCheckpoint(DEFAULT_MODEL), best);
		const draft = await buildModel(loadCheckpoint(DEFAULT_DRAFT), best);
		const rows = await benchSpeculative(model, draft, quick ? 48 : 256, { rounds: quick ? 1 : 3 });
		process.stdout.write('\n' + specTable(best.name, rows) + '\n');
		json.push(...rows.map((r) => ({ backend: best.name, model: 'byte-model + subword-drafter', ...r })));
	}
	process.stdout.write('\n' + json.map((j) => JSON.stringify(j)).join('\n') + '\n');
}

main().catch((e) => {
	process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`);
	process.exitCode = 1;
});
