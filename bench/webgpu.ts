// GPU bench (issue 6), run on the GPU machine by bench/gpu-run.sh (it brings Node, Dawn and the Vulkan loader).
//   1. correctness first: the GPU-resident forward against PyTorch's logits for the test fixtures, and against the
//      reference kernels for the shipped byte model and random weights of the 353M shape;
//   2. prefill and decode bytes/s: the shipped models, random 353M (d_model 1024 x 53) and 972M (1792 x 48) f32;
//   3. where a forward's time goes (each kernel alone, the host's recording time), and the split-K width, on the
//      shipped model and the 972M shape;
//   4. speculative decoding with the shipped pair, both resident (`--profile`: where each mode's round time goes).
// `--ab` instead compares decoding with and without recording the next step ahead (ResidentMamba.pipelineSteps).
// `--decode` runs only what the decode and chunk plans need: the parity checks, the verify passes with each chunk
// plan, then each plan's decode and prefill speed and the profile on the shipped model and the 353M and 972M shapes,
// in float32 and in float16 values (16-bit on the device), and decode with and without integer index sums in the
// decode kernels;
// `--972m` leaves out the 353M shape. `--prefill` runs only what the chunk plans need: parity with each chunk plan
// at chunks of 64 and 256, the verify passes of the shipped model with each plan and its prefill at chunks of 64
// and 256, then on the 972M and 353M shapes prefill with the tile plans and split-K at chunks of 256 (`--chunk64`:
// and 64), the tile plans' split-K width and their profiles. `--prefill --byte-model`: only the shipped model's.
// One JSON line per measurement; a failing stage prints its error and the rest still run.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { selectBackend } from '../src/backend/select.js';
import { referenceKernels } from '../src/backend/reference.js';
import type { GpuJsKernels } from '../src/backend/gpujs.js';
import { SUBMIT_EVERY, WebGpuRunner } from '../src/backend/resident/webgpu.js';
import type { Command } from '../src/backend/resident/runner.js';
import { benchModel, benchSpeculative } from '../src/cli/bench.js';
import { loadCheckpoint, loadModel } from '../src/checkpoint/index.js';
import { randomCheckpoint, shapeConfig } from '../src/model/random.js';
import { Mamba } from '../src/model/mamba.js';
import { ResidentMamba, type ChunkKind, type DecodeKind } from '../src/model/resident.js';
import type { Checkpoint, Weight } from '../src/model/types.js';
import type { Kernels } from '../src/backend/types.js';
import { NativeKernels, nativeAvailable } from '../src/backend/native.js';
import { buildModel } from '../src/app/open.js';
import type { LanguageModel } from '../src/model/types.js';
import { DEFAULT_DRAFT, DEFAULT_MODEL } from '../src/app/sources.js';

const log = (o: object): void => void process.stdout.write(JSON.stringify(o) + '\n');
const now = () => performance.now() / 1000;
const text = new TextEncoder().encode('It was a dark and stormy night; the rain fell in torrents, except at occasional intervals. '.repeat(8));

function maxDiff(a: Float32Array, b: Float32Array): number {
	let m = 0;
	for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
	return Number.isFinite(m) ? m : Infinity;
}

async function stage(name: string, f: () => Promise<void>) {
	const t = now();
	try {
		await f();
	} catch (e) {
		log({ stage: name, error: String(e instanceof Error ? e.stack : e).slice(0, 3000) });
	}
	log({ stage: name, seconds: +(now() - t).toFixed(1) });
}

/** Resident logits of `bytes` in two forwards plus 8 single steps, against `expected` (T, V). */
async function parity(name: string, m: ResidentMamba, bytes: Uint8Array, expected: Float32Array) {
	const V = m.config.vocabSize;
	const s = m.newState();
	const cut = Math.min(8, bytes.length - 1);
	const a = await m.forward(bytes.subarray(0, cut), s);
	const b = await m.forward(bytes.subarray(cut), s);
	const got = new Float32Array(bytes.length * V);
	got.set(a);
	got.set(b, a.length);
	const s2 = m.newState();
	let stepDiff = 0;
	for (let t = 0; t < Math.min(8, bytes.length); t++) {
		stepDiff = Math.max(stepDiff, maxDiff(await m.step(bytes[t], s2), expected.subarray(t * V, (t + 1) * V)));
	}
	log({ parity: name, T: bytes.length, max_abs_diff: maxDiff(got, expected), step_max_abs_diff: stepDiff });
}

/** Each of `kinds` set in turn by `use`, two interleaved rounds of `measure`; the first kind is left set. */
async function interleaved<K>(kinds: readonly K[], use: (k: K) => void, measure: (k: K, round: number) => Promise<void>) {
	for (let round = 0; round < 2; round++) {
		for (const k of kinds) {
			use(k);
			await measure(k, round);
		}
	}
	use(kinds[0]);
}

/** Decode with each fused plan (the row plan is the default), interleaved, and the passes of each. */
async function decodePlans(c: Checkpoint<Weight>, m: ResidentMamba, kernels: Kernels) {
	await interleaved<DecodeKind>(['rows', 'split-K'], (k) => (m.decodeKind = k), async (kind, round) => {
		const r = await benchModel(c, kernels, { prefill: 64, decode: 64, repeats: 3 }, m);
		log({ decode_plan: kind, passes: m.plan(1).length, round, model: r.model, decode: r.decode_bytes_per_second });
	});
}

const CHUNK_KINDS: ChunkKind[] = ['split-K', 'tiles', 'rows'];

/** Prefill with each chunk plan (split-K, the default, tiles and row projections), interleaved, and the passes of each. */
async function chunkPlans(c: Checkpoint<Weight>, m: ResidentMamba, kernels: Kernels, kinds = CHUNK_KINDS, prefill = 512) {
	await interleaved(kinds, (k) => (m.chunkKind = k), async (chunks, round) => {
		const r = await benchModel(c, kernels, { prefill, decode: 1, repeats: 3 }, m);
		log({ chunk_plan: chunks, chunk: m.chunk, passes_T64: m.plan(64).length, round, model: r.model, prefill: r.prefill_bytes_per_second });
	});
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Where a forward's time goes: the whole plan, an empty submission, the host-side encoding, and each kernel alone. */
async function profile(name: string, m: ResidentMamba, runner: WebGpuRunner, Ts = [1, 64]) {
	const tiny = { buf: runner.alloc(4), offset: 0, length: 4 };
	const time = async (cmds: Command[]) => {
		const ts: number[] = [];
		const enc: number[] = [];
		for (let i = 0; i < 12; i++) {
			const t = now();
			const p = runner.run(cmds);
			enc.push(now() - t);
			await p;
			await runner.read(tiny);
			ts.push(now() - t);
		}
		return { ms: +(median(ts.slice(2)) * 1e3).toFixed(3), encode_ms: +(median(enc.slice(2)) * 1e3).toFixed(3) };
	};
	for (const T of Ts) {
		const passes = m.plan(T);
		const byName = new Map<string, Command[]>();
		for (const pass of passes) byName.set(pass.program.name, [...(byName.get(pass.program.name) ?? []), { pass }]);
		const base = await time([]);
		const full = await time(passes.map((pass) => ({ pass })));
		const each: Record<string, object> = {};
		for (const [k, cmds] of byName) each[k] = { passes: cmds.length, ...(await time(cmds)) };
		log({ profile: name, T, passes: passes.length, full, empty_submit: base, each, split: m.splitThreads, fused: m.fusedDecode, submit_every: SUBMIT_EVERY });
	}
}

/** Decode with and without recording the next step ahead, interleaved, on the shipped pair and the 353M shape. */
async function ab(resident: (c: Checkpoint<Weight>) => Promise<ResidentMamba>, kernels: Kernels) {
	const byte = await resident(loadModel(DEFAULT_MODEL));
	const draft = await resident(loadModel(DEFAULT_DRAFT));
	const big = randomCheckpoint(shapeConfig(1024, 53), 1);
	big.name = 'random 1024x53 f32';
	const m353 = await resident(big);
	for (let round = 0; round < 3; round++) {
		for (const on of [true, false]) {
			for (const [c, m] of [[byte.checkpoint, byte], [big, m353]] as const) {
				m.pipelineSteps = on;
				const r = await benchModel(c, kernels, { prefill: 64, decode: c === big ? 64 : 256, repeats: 3 }, m);
				log({ ab: 'decode', pipeline: on, round, model: r.model, decode: r.decode_bytes_per_second });
			}
			byte.pipelineSteps = draft.pipelineSteps = on;
			for (const r of await benchSpeculative(byte, draft, 256)) log({ ab: 'speculative', pipeline: on, round, mode: r.mode, bytes_per_second: r.bytes_per_second });
		}
	}
}

/**
 * What a speculative round's verify pass + keep costs against a decode step, on one state as the rounds run, with
 * each chunk plan, interleaved.
 */
async function verifyPasses(m: ResidentMamba) {
	const s = m.newState();
	await m.forward(text.subarray(0, 64), s);
	await interleaved(CHUNK_KINDS, (k) => (m.chunkKind = k), async (chunks, round) => {
		const stepMs: number[] = [];
		for (let i = 0; i < 40; i++) {
			const t = now();
			await m.step(text[64 + (i % 32)], s);
			stepMs.push((now() - t) * 1e3);
		}
		const row: Record<string, number> = { step: +median(stepMs.slice(8)).toFixed(3) };
		for (const T of [2, 4, 8, 12, 16, 32]) {
			const ms: number[] = [];
			for (let i = 0; i < 24; i++) {
				const t = now();
				const v = await m.verify(text.subarray(100 + i, 100 + i + T), s);
				await v.keep(T >> 1);
				ms.push((now() - t) * 1e3);
			}
			row[`verify_${T}`] = +median(ms.slice(4)).toFixed(3);
		}
		log({ verify_ms: 'byte-model, verify(T) + keep(T/2) on one state, medians', chunks, round, passes_T8: m.plan(8).length, ...row });
	});
}

/**
 * Decode with and without integer index sums in the decode kernels (UploadOptions.decodeIntIndex), interleaved, on
 * two uploads of one checkpoint: first their steps' logits against each other, then the speed.
 */
async function intIndexAB(c: Checkpoint<Weight>, base: ResidentMamba, runner: WebGpuRunner, kernels: Kernels) {
	const ii = await ResidentMamba.create(c, runner, kernels, base.chunk, { decodeIntIndex: true });
	const [sa, sb] = [base.newState(), ii.newState()];
	let worst = 0;
	for (let t = 0; t < 8; t++) worst = Math.max(worst, maxDiff(await base.step(text[t], sa), await ii.step(text[t], sb)));
	log({ parity: `${c.name}: decode with integer index sums vs without`, steps: 8, max_abs_diff: worst });
	const models: [string, ResidentMamba][] = [['f32 indices', base], ['integer index sums', ii]];
	await interleaved(models, () => {}, async ([name, m], round) => {
		const r = await benchModel(c, kernels, { prefill: 16, decode: 64, repeats: 3 }, m);
		log({ decode_index: name, round, model: r.model, decode: r.decode_bytes_per_second });
	});
}

/** `--prefill`: the chunk plans' parity, then prefill at chunks of 64 and 256 (see the top). */
async function prefillBench(runner: WebGpuRunner, kernels: Kernels) {
	const create = (c: Checkpoint<Weight>, chunk = 64) => ResidentMamba.create(c, runner, kernels, chunk);
	await stage('parity fixtures, chunk plans', async () => {
		const input = new Uint8Array(readFileSync('test/fixtures/input.txt'));
		for (const name of ['tiny-hf', 'tiny-ssm-ln', 'tiny-hf-f16']) {
			const dir = path.join('test/fixtures', name);
			const raw = readFileSync(path.join(dir, 'logits.bin'));
			const want = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
			for (const chunk of [64, 256]) {
				const m = await create(loadCheckpoint(dir), chunk);
				for (const kind of CHUNK_KINDS) {
					m.chunkKind = kind;
					await parity(`${name} vs PyTorch, ${kind} chunks of ${chunk}`, m, input, want);
				}
			}
		}
	});
	const byte = loadModel(DEFAULT_MODEL);
	if (!process.argv.includes('--byte-model')) await stage('parity byte-model, chunk plans', async () => {
		const bytes = text.subarray(0, 300);
		const ref = new Mamba(byte, referenceKernels);
		const want = await ref.forward(bytes, ref.newState());
		for (const chunk of [64, 256]) {
			const m = await create(byte, chunk);
			for (const kind of CHUNK_KINDS) {
				m.chunkKind = kind;
				await parity(`byte-model vs reference kernels, ${kind} chunks of ${chunk}`, m, bytes, want);
			}
		}
	});
	if (!process.argv.includes('--byte-model')) await stage('verify passes', async () => verifyPasses(await create(byte)));
	for (const chunk of [64, 256]) {
		await stage(`chunk plans byte-model, chunks of ${chunk}`, async () => {
			const m = await create(byte, chunk);
			await chunkPlans(byte, m, kernels, ['auto', 'split-K', 'tiles'], 1024);
		});
	}
	if (process.argv.includes('--byte-model')) return; // only the shipped model's
	for (const [d, L] of [[1792, 48], [1024, 53]]) {
		const c = randomCheckpoint(shapeConfig(d, L), 1);
		c.name = `random ${d}x${L} f32`;
		if (d === 1024) await stage('parity 353M, chunk plans', async () => {
			const bytes = text.subarray(0, 20);
			const ref = new Mamba(c, referenceKernels);
			const want = await ref.forward(bytes, ref.newState());
			const m = await create(c);
			for (const kind of CHUNK_KINDS) {
				m.chunkKind = kind;
				await parity(`${c.name} vs reference kernels, ${kind} chunks`, m, bytes, want);
			}
		});
		// chunks of 64 on these shapes: bench/results/h200-webgpu-prefill-session8-run1..4.txt (slower than 256 with tiles)
		for (const chunk of process.argv.includes('--chunk64') ? [64, 256] : [256]) {
			let m: ResidentMamba | null = null;
			await stage(`build ${c.name}, chunks of ${chunk}`, async () => void (m = await create(c, chunk)));
			if (!m) continue;
			const model: ResidentMamba = m;
			// row chunks prefill a third as fast as split-K on these shapes (bench/results/h200-webgpu-prefill-session8-run*.txt)
			await stage(`chunk plans ${c.name}, chunks of ${chunk}`, () => chunkPlans(c, model, kernels, ['tiles', 'split-K'], 1024));
			await stage(`tile split-K width ${c.name}, chunks of ${chunk}`, async () => {
				for (const kind of ['tiles'] as const) {
					model.chunkKind = kind;
					for (const split of [1 << 18, 1 << 19, 1 << 20]) {
						model.splitThreads = [split, model.splitThreads[1]];
						const r = await benchModel(c, kernels, { prefill: 1024, decode: 1, repeats: 3 }, model);
						log({ tile_split_threads: split, kind, chunk, model: c.name, prefill: r.prefill_bytes_per_second });
					}
				}
				model.splitThreads = [1 << 20, model.splitThreads[1]];
			});
			await stage(`profile ${c.name}, chunks of ${chunk}`, async () => {
				for (const kind of ['tiles', 'split-K'] as const) {
					model.chunkKind = kind;
					await profile(`${c.name} ${kind} chunks`, model, runner, [chunk]);
				}
			});
		}
	}
}

async function main() {
	const t0 = now();
	const { kernels } = await selectBackend('webgpu');
	const runner = new WebGpuRunner((kernels as GpuJsKernels).gpu);
	log({ stage: 'webgpu ready', seconds: now() - t0 });
	const resident = (c: Checkpoint<Weight>) => ResidentMamba.create(c, runner, kernels);
	if (process.argv.includes('--ab')) return ab(resident, kernels);
	if (process.argv.includes('--prefill')) return prefillBench(runner, kernels);

	await stage('parity fixtures', async () => {
		const input = new Uint8Array(readFileSync('test/fixtures/input.txt'));
		for (const name of ['tiny-hf', 'tiny-hf-untied', 'tiny-ssm-ln', 'tiny-hf-bf16', 'tiny-hf-f16']) {
			const dir = path.join('test/fixtures', name);
			const raw = readFileSync(path.join(dir, 'logits.bin'));
			const m = await resident(loadCheckpoint(dir));
			log({ fixture: name, decode_plan: m.decodeKind, matrices_16_bit: m.halfMatrices });
			const want = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
			await parity(`${name} vs PyTorch`, m, input, want);
			m.chunkKind = 'rows';
			await parity(`${name} vs PyTorch, row chunks`, m, input, want);
		}
		// bfloat16 buffers: the BF16 fixture with one value per matrix that no float16 holds, against the reference
		const c = loadCheckpoint('test/fixtures/tiny-hf-bf16');
		for (const l of c.weights.layers) for (const w of [l.inProj, l.xProj, l.dtProj, l.outProj]) w[3] = 1.5 * 2 ** -24;
		const m = await resident(c);
		log({ fixture: 'tiny-hf-bf16, bfloat16 buffers', matrices_16_bit: m.halfMatrices });
		const ref = new Mamba(c, referenceKernels);
		await parity('tiny-hf-bf16 (bfloat16 buffers) vs reference kernels', m, input, await ref.forward(input, ref.newState()));
	});
	await stage('parity byte-model', async () => {
		const c = loadModel(DEFAULT_MODEL);
		const bytes = text.subarray(0, 100);
		const ref = new Mamba(c, referenceKernels);
		const m = await resident(c);
		const want = await ref.forward(bytes, ref.newState());
		await parity('byte-model vs reference kernels', m, bytes, want);
		m.chunkKind = 'rows';
		await parity('byte-model vs reference kernels, row chunks', m, bytes, want);
	});

	const decodeOnly = process.argv.includes('--decode');
	if (!decodeOnly) await stage('parity verify/keep', async () => {
		// a verify pass kept to j (the device replay of the recurrence), then one step: against the reference fed j
		const c = loadModel(DEFAULT_MODEL);
		const m = await resident(c), ref = new Mamba(c, referenceKernels);
		const s = m.newState(), rs = ref.newState();
		await m.forward(text.subarray(0, 10), s);
		await ref.forward(text.subarray(0, 10), rs);
		let worst = 0;
		for (const [T, j] of [[6, 2], [8, 0], [5, 5], [12, 7], [32, 19]]) {
			const v = await m.verify(text.subarray(20, 20 + T), s);
			await v.keep(j);
			await ref.forward(text.subarray(20, 20 + j), rs);
			worst = Math.max(worst, maxDiff(await m.step(text[60], s), await ref.step(text[60], rs)));
		}
		log({ parity: 'byte-model verify + keep(j), then a step, vs reference kernels', max_abs_diff: worst });
	});
	const shipped: [string, Checkpoint<Weight>][] = [['byte-model', loadModel(DEFAULT_MODEL)], ['subword-drafter', loadModel(DEFAULT_DRAFT)]];
	for (const [name, c] of decodeOnly ? [] : shipped) {
		await stage(`bench ${name}`, async () => void log(await benchModel(c, kernels, { prefill: 1024, decode: 256, repeats: 3 })));
	}
	await stage('decode plans byte-model', async () => void (await decodePlans(shipped[0][1], await resident(shipped[0][1]), kernels)));
	if (decodeOnly) await stage('decode index sums byte-model', async () => intIndexAB(shipped[0][1], await resident(shipped[0][1]), runner, kernels));
	await stage('profile byte-model', async () => profile('byte-model', await resident(shipped[0][1]), runner, decodeOnly ? [1] : [1, 64]));
	await stage('verify passes', async () => verifyPasses(await resident(shipped[0][1])));
	if (!decodeOnly) await stage('speculative', async () => {
		const model = await resident(shipped[0][1]);
		// the drafter resident on the GPU too, and on the CPU (native) beside it: a drafter step is mostly the
		// GPU's fixed cost per pass, which a 2.8M model cannot amortise
		const drafters: [string, LanguageModel][] = [['webgpu', await resident(shipped[1][1])]];
		if (nativeAvailable()) drafters.push(['native', await buildModel(shipped[1][1], NativeKernels.create())]);
		const profiled = process.argv.includes('--profile');
		for (const [where, draft] of drafters) {
			const rows = await benchSpeculative(model, draft, 256, { profile: profiled });
			for (const { profile: _, ...r } of rows) log({ backend: 'webgpu', drafter_backend: where, model: 'byte-model + subword-drafter', ...r });
			if (!profiled) continue;
			for (const r of rows) {
				const plain = rows.find((p) => p.mode === 'plain' && p.temperature === r.temperature)!.profile!;
				process.stdout.write(`\ndrafter on ${where}, ${r.mode}, temperature ${r.temperature}: ${r.profile!.table(plain.totalMs / Math.max(plain.bytes, 1))}\n`);
			}
		}
	});
	if (process.argv.includes('--speculative')) return;

	const shapes: [number, number, boolean][] = [[1024, 53, false], [1024, 53, true], [1792, 48, false], [1792, 48, true]];
	if (decodeOnly) shapes.reverse(); // the 972M shape first: the target
	if (process.argv.includes('--972m')) shapes.splice(0, shapes.length, ...shapes.filter(([d]) => d === 1792)); // only it
	for (const [d, L, half] of shapes) {
		let ckpt: Checkpoint | null = null;
		let model: ResidentMamba | null = null;
		await stage(`build ${d}x${L}`, async () => {
			ckpt = randomCheckpoint(shapeConfig(d, L), 1, half ? { sixteen: 'f16' } : {});
			ckpt.name = `random ${d}x${L} ${half ? 'f16' : 'f32'}`;
			const t = now();
			model = await resident(ckpt);
			log({ uploaded: ckpt.name, seconds: now() - t, matrices_16_bit: model.halfMatrices });
		});
		if (!ckpt || !model) continue;
		const c: Checkpoint = ckpt;
		const m: ResidentMamba = model;
		if (d === 1024) {
			await stage('parity 353M', async () => {
				const bytes = text.subarray(0, 6);
				const ref = new Mamba(c, referenceKernels);
				const want = await ref.forward(bytes, ref.newState());
				await parity(`${c.name} vs reference kernels`, m, bytes, want);
				m.chunkKind = 'rows';
				await parity(`${c.name} vs reference kernels, row chunks`, m, bytes, want);
				m.chunkKind = 'split-K';
			});
		}
		await stage(`bench ${c.name}`, async () => void log(await benchModel(c, kernels, { prefill: 1024, decode: 64, repeats: 3 }, m)));
		await stage(`decode plans ${c.name}`, async () => void (await decodePlans(c, m, kernels)));
		if (decodeOnly && !half) await stage(`decode index sums ${c.name}`, () => intIndexAB(c, m, runner, kernels));
		await stage(`chunk plans ${c.name}`, async () => void (await chunkPlans(c, m, kernels)));
		if (d === 1792) {
			await stage(`profile ${c.name}`, async () => {
				for (const kind of ['rows', 'split-K'] as const) {
					m.decodeKind = kind;
					await profile(`972M ${half ? 'f16' : 'f32'} ${kind}`, m, runner, decodeOnly || kind === 'split-K' ? [1] : [1, 64]);
				}
				m.decodeKind = 'rows';
			});
			if (!decodeOnly && !half) await stage('split-K width, 972M', async () => {
				const defaults = m.splitThreads;
				for (const split of [1 << 17, 1 << 18, 1 << 19]) {
					m.splitThreads = [split, split];
					const r = await benchModel(c, kernels, { prefill: 512, decode: 32, repeats: 3 }, m);
					log({ split_threads: split, prefill: r.prefill_bytes_per_second, decode: r.decode_bytes_per_second });
				}
				m.splitThreads = defaults;
			});
		}
	}
}

main().then(() => process.exit(0), (e) => {
	log({ stage: 'failed', error: String(e instanceof Error ? e.stack : e).slice(0, 3000) });
	process.exit(1);
});
