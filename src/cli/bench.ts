// `mambabyte bench`: prefill and decode bytes/s of a model on each backend that works here, as a table and JSON.
// --shape DxL benchmarks random weights of that shape (speed does not depend on the values); --dtype q8_0|q4_0|q4_k|f16
// stores its projections in that block type (native backend only) and prints the weight bandwidth a decode step
// achieves against a plain memory-read measurement.
import os from 'node:os';
import { UsageError, UserError } from '../errors.js';
import { GpuJsKernels } from '../backend/gpujs.js';
import { selectBackend, parseBackend } from '../backend/select.js';
import type { Kernels } from '../backend/types.js';
import { countParameters } from '../checkpoint/index.js';
import { buildModel, drafterFor, openCheckpoint } from '../app/open.js';
import { checkLocal, DEFAULT_MODEL, isCheckpointDir } from '../app/sources.js';
import { generate, type GenerateOptions } from '../engine/generate.js';
import type { AcceptRule } from '../engine/accept.js';
import { Profile } from '../engine/profile.js';
import type { GenerationStats } from '../engine/events.js';
import { randomCheckpoint, shapeConfig } from '../model/random.js';
import type { Checkpoint, LanguageModel, Weight } from '../model/types.js';
import { drafterOf, type RawFlags } from './options.js';
import { NativeKernels } from '../backend/native.js';
import { BENCH_DTYPES, quantizeProjections, stepWeightBytes, type BenchDtype } from './bench-quant.js';

export interface BenchResult {
	backend: string;
	model: string;
	params: number;
	prefill_bytes_per_second: number;
	decode_bytes_per_second: number;
	prefill_bytes: number;
	decode_bytes: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Seconds for fn, median of `repeats` runs after one warm-up (which also compiles the kernels). */
async function timeIt(fn: () => Promise<unknown>, repeats: number): Promise<number> {
	await fn();
	const times: number[] = [];
	for (let i = 0; i < repeats; i++) {
		const t0 = performance.now();
		await fn();
		times.push((performance.now() - t0) / 1000);
	}
	return median(times);
}

export async function benchModel(
	ckpt: Checkpoint<Weight>, kernels: Kernels, sizes?: { prefill: number; decode: number; repeats: number }, built?: LanguageModel,
): Promise<BenchResult> {
	const params = countParameters(ckpt.config);
	// Enough work for a stable median without minutes per row: gpu.js on a CPU reaches ~2 GFLOP/s, so it gets
	// fewer bytes on big models; the others prefill four full 64-byte chunks (as prompts and perplexity run).
	const slow = kernels.name === 'cpu' || kernels.name === 'webasm';
	const perByte = 2 * params;
	const prefill = sizes?.prefill ?? (slow ? Math.max(16, Math.min(512, Math.round(4e9 / perByte / 16) * 16)) : 256);
	const decode = sizes?.decode ?? (slow ? Math.max(4, Math.min(128, Math.round(2e9 / perByte))) : Math.max(16, Math.min(128, Math.round(4e10 / perByte))));
	const repeats = sizes?.repeats ?? 3;
	const model = built ?? (await buildModel(ckpt, kernels));
	const text = new TextEncoder().encode('It was a dark and stormy night; the rain fell in torrents, except at occasional intervals. '.repeat(8));
	const prompt = Uint8Array.from({ length: prefill }, (_, i) => text[i % text.length]);
	const tPrefill = await timeIt(() => model.forward(prompt, model.newState()), repeats);
	const state = model.newState();
	await model.forward(prompt.subarray(0, 16), state);
	const tDecode = await timeIt(async () => {
		for (let i = 0; i < decode; i++) await model.step(prompt[i % prompt.length], state);
	}, repeats);
	return {
		backend: kernels.name, model: ckpt.name, params,
		prefill_bytes_per_second: prefill / tPrefill, decode_bytes_per_second: decode / tDecode,
		prefill_bytes: prefill, decode_bytes: decode,
	};
}

export function parseShape(value: string): Checkpoint {
	const m = /^(\d+)x(\d+)$/.exec(value);
	if (!m || +m[1] < 4 || +m[1] > 8192 || +m[2] < 1 || +m[2] > 256) throw new UsageError(`--shape ${value}: expected D_MODELxN_LAYER, e.g. 1024x53`);
	const config = shapeConfig(+m[1], +m[2]);
	// Random weights are all allocated at once: refuse a shape this machine cannot hold before allocating any.
	const bytes = countParameters(config) * 4;
	if (bytes > os.freemem()) {
		const gib = (b: number) => (b / 2 ** 30).toFixed(1);
		throw new UserError(`--shape ${value}: random float32 weights need ${gib(bytes)} GiB but only ${gib(os.freemem())} GiB of memory is free`);
	}
	return randomCheckpoint(config, 1);
}

export async function benchBackends(choice: string): Promise<{ kernels: Kernels[]; notes: string[] }> {
	if (choice !== 'auto') return { kernels: [(await selectBackend(parseBackend(choice))).kernels], notes: [] };
	const { kernels, notes } = await selectBackend('auto');
	const all: Kernels[] = [kernels];
	if (kernels.name !== 'cpu') all.push(GpuJsKernels.create('cpu'));
	all.push(GpuJsKernels.create('webasm'));
	return { kernels: all, notes };
}

/** The backends worth measuring for a model: the gpu.js CPU backends only below ~50M parameters (minutes above). */
export function backendsFor(kernels: Kernels[], params: number): Kernels[] {
	return params <= 50e6 ? kernels : kernels.filter((k) => k.name !== 'cpu' && k.name !== 'webasm');
}

export const machine = () => `${os.cpus().length}x ${os.cpus()[0]?.model.trim() ?? 'cpu'}, Node ${process.version}`;

export function table(rows: BenchResult[]): string {
	const head = ['backend', 'model', 'params', 'prefill bytes/s', 'decode bytes/s'];
	const body = rows.map((r) => [r.backend, r.model, (r.params / 1e6).toFixed(1) + 'M', r.prefill_bytes_per_second.toFixed(1), r.decode_bytes_per_second.toFixed(2)]);
	const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
	const line = (cells: string[]) => '| ' + cells.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |';
	return [line(head), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...body.map(line)].join('\n');
}

export async function runBench(flags: RawFlags, rest: string[]): Promise<void> {
	if (rest.length > 0) throw new UsageError(`bench: unexpected argument ${rest[0]}`);
	const dtype = String(flags.dtype ?? 'f32') as BenchDtype;
	if (!BENCH_DTYPES.includes(dtype)) throw new UsageError(`--dtype ${dtype}: expected one of ${BENCH_DTYPES.join(', ')}`);
	if (dtype !== 'f32' && flags.shape === undefined) throw new UsageError(`--dtype ${dtype} needs --shape (it quantizes random weights)`);
	const ckpt = flags.shape !== undefined ? parseShape(String(flags.shape)) : openCheckpoint(modelPath(flags));
	if (flags.shape !== undefined) ckpt.name = `random ${flags.shape} ${dtype}`;
	const choice = String(flags.backend ?? (dtype === 'f32' ? 'auto' : 'native'));
	const { kernels, notes } = await benchBackends(choice);
	if (dtype !== 'f32' && kernels.some((k) => k.name !== 'native')) throw new UsageError(`--dtype ${dtype} runs on the native backend only`);
	if (flags.verbose) for (const n of notes) process.stderr.write(`mambabyte: ${n}\n`);
	const results: BenchResult[] = [];
	const extra: string[] = [];
	for (const k of choice === 'auto' ? backendsFor(kernels, countParameters(ckpt.config)) : kernels) {
		const model = await buildModel(ckpt, k);
		if (dtype !== 'f32') quantizeProjections(model, dtype);
		const r = await benchModel(ckpt, k, undefined, model);
		results.push(r);
		if (k instanceof NativeKernels) {
			const bytes = stepWeightBytes(model);
			extra.push(`native (${k.info.isa}, ${k.info.threads} threads): ${(bytes / 1e6).toFixed(1)} MB of weights per step, decode reads ${(bytes * r.decode_bytes_per_second / 1e9).toFixed(1)} GB/s; plain memory read ${k.readBandwidth(Math.max(bytes, 1 << 30)).toFixed(1)} GB/s`);
		}
		if (flags.json) process.stdout.write(JSON.stringify(r) + '\n');
	}
	if (!flags.json) process.stdout.write(`${machine()}\n${table(results)}\n${extra.join('\n')}${extra.length ? '\n' : ''}`);
	if (flags.shape === undefined) await benchDrafting(flags, kernels[0]);
}

/** --model (already a local path: main.ts resolves a hub name) or the shipped byte model. */
const modelPath = (flags: RawFlags) => checkLocal(flags.model === undefined ? DEFAULT_MODEL : String(flags.model), '--model');

/** The speculative rows of `mambabyte bench` (and with --profile where each mode's time goes). */
async function benchDrafting(flags: RawFlags, kernels: Kernels): Promise<void> {
	const draftDir = drafterOf(flags);
	if (!draftDir || !isCheckpointDir(draftDir)) return;
	const model = await buildModel(openCheckpoint(modelPath(flags)), kernels);
	const draft = await buildModel(openCheckpoint(checkLocal(draftDir, '--draft')), kernels);
	const rows = await benchSpeculative(model, draft, Number(flags.maxBytes ?? 256), { profile: Boolean(flags.profile) });
	if (flags.json) {
		for (const { profile, ...r } of rows) {
			process.stdout.write(JSON.stringify({ backend: kernels.name, model: `${model.checkpoint.name} + ${draft.checkpoint.name}`, ...r, ...(profile ? { profile_ms: { ...profile.ms, other: profile.otherMs, total: profile.totalMs }, rounds: profile.rounds } : {}) }) + '\n');
		}
		return;
	}
	process.stdout.write(`\n${specTable(kernels.name, rows)}\n`);
	if (!flags.profile) return;
	for (const r of rows) {
		const plain = rows.find((p) => p.mode === 'plain' && p.temperature === r.temperature)!.profile!;
		const stepMs = plain.totalMs / Math.max(plain.bytes, 1);
		process.stdout.write(`\n${r.mode}, temperature ${r.temperature}: ${r.profile!.table(stepMs)}\n`);
	}
}

export const PROMPTS = [
	'It was a dark and stormy night; the rain fell in torrents, except at occasional intervals, when it was checked',
	'CHAPTER I.\n\nThe old house stood at the end of the lane, and',
	'"I do not know what you mean," said she, turning towards the window. "You have',
	'In the beginning of the year 1820, the little town of',
];

export interface SpecRow {
	mode: string;
	temperature: number;
	bytes_per_second: number;
	generated: number;
	acceptance_rate: number | null;
	mean_accepted_run: number | null;
	/** Median over rounds of this mode's bytes/s over plain decoding's at the same temperature in the same round. */
	speedup: number;
	profile?: Profile;
}

export interface SpecMode {
	mode: string;
	draft: boolean;
	temperature: number;
	accept?: AcceptRule;
}

/** Greedy plain, exact and top:3, then sampling at the chat's default temperature, plain and exact. */
export const SPEC_MODES: SpecMode[] = [
	{ mode: 'plain', draft: false, temperature: 0 },
	{ mode: 'speculative exact', draft: true, temperature: 0, accept: { kind: 'exact' } },
	{ mode: 'speculative top:3', draft: true, temperature: 0, accept: { kind: 'top', k: 3 } },
	{ mode: 'plain', draft: false, temperature: 0.8 },
	{ mode: 'speculative exact', draft: true, temperature: 0.8, accept: { kind: 'exact' } },
];

/**
 * Plain vs speculative generation of the same prompts with a byte model and a drafter. The modes run interleaved
 * (prompt by prompt, round by round) so that a shared machine's load shifts hit them alike; bytes/s is the median
 * over `rounds` rounds, each round all prompts. With `profile` each mode also gets where its time went.
 */
export async function benchSpeculative(
	model: LanguageModel, d: LanguageModel, maxBytes: number, o: { rounds?: number; profile?: boolean; modes?: SpecMode[] } = {},
): Promise<SpecRow[]> {
	const drafter = drafterFor(d);
	const modes = o.modes ?? SPEC_MODES;
	const rounds = o.rounds ?? 3;
	const acc = modes.map(() => ({ bps: [] as number[], bytes: 0, tested: 0, accepted: 0, passes: 0, profile: new Profile() }));
	const ratios: number[][] = modes.map(() => []);
	for (let r = 0; r < rounds; r++) {
		const bytes = modes.map(() => 0), seconds = modes.map(() => 0);
		for (const prompt of PROMPTS) {
			for (let i = 0; i < modes.length; i++) {
				const m = modes[i];
				const opts: GenerateOptions = {
					maxBytes, temperature: m.temperature, topK: 0, topP: 1, seed: 1 + r, stop: [], utf8: true,
					accept: m.accept, profile: o.profile ? acc[i].profile : undefined,
				};
				let stats: GenerationStats | null = null;
				for await (const ev of generate(model, new TextEncoder().encode(prompt), opts, m.draft ? drafter : null)) if (ev.type === 'done') stats = ev.stats;
				bytes[i] += stats!.generatedBytes;
				seconds[i] += stats!.seconds;
				acc[i].bytes += stats!.generatedBytes;
				acc[i].tested += stats!.speculative?.tested ?? 0;
				acc[i].accepted += stats!.speculative?.accepted ?? 0;
				acc[i].passes += stats!.speculative?.verifyPasses ?? 0;
			}
		}
		modes.forEach((m, i) => {
			acc[i].bps.push(bytes[i] / seconds[i]);
			const base = modes.findIndex((b) => !b.draft && b.temperature === m.temperature);
			ratios[i].push(bytes[i] / seconds[i] / (bytes[base] / seconds[base]));
		});
	}
	return modes.map((m, i) => ({
		mode: m.mode, temperature: m.temperature, bytes_per_second: median(acc[i].bps), generated: acc[i].bytes,
		acceptance_rate: m.draft ? acc[i].accepted / Math.max(acc[i].tested, 1) : null,
		mean_accepted_run: m.draft ? acc[i].accepted / Math.max(acc[i].passes, 1) : null,
		speedup: median(ratios[i]),
		...(o.profile ? { profile: acc[i].profile } : {}),
	}));
}

export function specTable(backend: string, rows: SpecRow[]): string {
	const lines = ['| backend | mode | temperature | bytes/s | speedup | acceptance | mean accepted run |', '|---|---|---|---|---|---|---|'];
	for (const r of rows) {
		lines.push(`| ${backend} | ${r.mode} | ${r.temperature} | ${r.bytes_per_second.toFixed(1)} | ${r.speedup.toFixed(2)}x | ${r.acceptance_rate === null ? '-' : (100 * r.acceptance_rate).toFixed(1) + '%'} | ${r.mean_accepted_run === null ? '-' : r.mean_accepted_run.toFixed(2)} |`);
	}
	return lines.join('\n');
}
