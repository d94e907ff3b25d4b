// `npm run bench`: the numbers in the README's speed tables, on this machine.
//   1. the shipped byte model (and drafter) on every backend that works here: prefill and decode bytes/s;
//   2. random weights of the MambaByte-353M shape (d_model 1024, 53 layers, f32) on the CPU backends;
//   3. speculative decoding with the shipped pair: plain vs drafted (exact and top:3), greedy, same prompts.
// Tables on stdout, then one JSON object per measurement. `--quick` shrinks everything (a smoke run);
// `--shape DxL` adds a shape; `--skip-353m` leaves the big shape out.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { benchBackends, benchModel, machine, parseShape, table, type BenchResult } from '../src/cli/bench.js';
import { DEFAULT_DRAFT, DEFAULT_MODEL } from '../src/cli/options.js';
import { loadCheckpoint } from '../src/checkpoint/index.js';
import { Mamba } from '../src/model/mamba.js';
import type { Kernels } from '../src/backend/types.js';
import { generate, type GenerateOptions } from '../src/engine/generate.js';
import { Drafter } from '../src/engine/speculative.js';
import type { GenerationStats } from '../src/engine/events.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const shapeArg = args.includes('--shape') ? args[args.indexOf('--shape') + 1] : null;
const json: object[] = [];

const PROMPTS = [
	'It was a dark and stormy night; the rain fell in torrents, except at occasional intervals, when it was checked',
	'CHAPTER I.\n\nThe old house stood at the end of the lane, and',
	'"I do not know what you mean," said she, turning towards the window. "You have',
	'In the beginning of the year 1820, the little town of',
];

interface SpecRow { mode: string; bytes_per_second: number; generated: number; acceptance_rate: number | null; mean_accepted_run: number | null; speedup: number }

async function speculative(kernels: Kernels, maxBytes: number): Promise<SpecRow[]> {
	const model = new Mamba(loadCheckpoint(DEFAULT_MODEL), kernels);
	const d = new Mamba(loadCheckpoint(DEFAULT_DRAFT), kernels);
	const drafter = new Drafter(d, Drafter.tokenizerOf(d));
	const base: GenerateOptions = { maxBytes, temperature: 0, topK: 0, topP: 1, seed: 1, stop: [], utf8: true, draftSubwords: 3 };
	const modes: [string, Drafter | null, GenerateOptions][] = [
		['plain', null, base],
		['speculative exact', drafter, { ...base, accept: { kind: 'exact' } }],
		['speculative top:3', drafter, { ...base, accept: { kind: 'top', k: 3 } }],
	];
	const rows: SpecRow[] = [];
	for (const [mode, dr, opts] of modes) {
		let bytes = 0, seconds = 0, tested = 0, accepted = 0, passes = 0;
		for (const prompt of PROMPTS) {
			let stats: GenerationStats | null = null;
			for await (const ev of generate(model, new TextEncoder().encode(prompt), opts, dr)) if (ev.type === 'done') stats = ev.stats;
			bytes += stats!.generatedBytes;
			seconds += stats!.seconds;
			tested += stats!.speculative?.tested ?? 0;
			accepted += stats!.speculative?.accepted ?? 0;
			passes += stats!.speculative?.verifyPasses ?? 0;
		}
		const bps = bytes / seconds;
		rows.push({
			mode, bytes_per_second: bps, generated: bytes,
			acceptance_rate: dr ? accepted / Math.max(tested, 1) : null,
			mean_accepted_run: dr ? accepted / Math.max(passes, 1) : null,
			speedup: rows.length ? bps / rows[0].bytes_per_second : 1,
		});
	}
	return rows;
}

function specTable(backend: string, rows: SpecRow[]): string {
	const lines = ['| backend | mode | bytes/s | speedup | acceptance | mean accepted run |', '|---|---|---|---|---|---|'];
	for (const r of rows) {
		lines.push(`| ${backend} | ${r.mode} | ${r.bytes_per_second.toFixed(1)} | ${r.speedup.toFixed(2)}x | ${r.acceptance_rate === null ? '-' : (100 * r.acceptance_rate).toFixed(1) + '%'} | ${r.mean_accepted_run === null ? '-' : r.mean_accepted_run.toFixed(2)} |`);
	}
	return lines.join('\n');
}

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
		const rows = await speculative(best, quick ? 48 : 256);
		process.stdout.write('\n' + specTable(best.name, rows) + '\n');
		json.push(...rows.map((r) => ({ backend: best.name, model: 'byte-model + subword-drafter', ...r })));
	}
	process.stdout.write('\n' + json.map((j) => JSON.stringify(j)).join('\n') + '\n');
}

main().catch((e) => {
	process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`);
	process.exitCode = 1;
});
