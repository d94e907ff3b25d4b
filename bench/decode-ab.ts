// Native backend, weight types side by side: decode bytes/s (the fused one-call step, and the per-operation path
// for comparison), prefill bytes/s, the weight bandwidth a decode step achieves, and a plain memory-read
// measurement, all interleaved round by round in one process (the machine is shared: alternating rounds see the
// same load); medians over rounds, with min and max. With the machine's CPUs shared, wall-clock rates depend on the
// other tenants; "B/CPU-s" divides by the process's CPU time instead (user + system, all threads: with
// MAMBABYTE_THREADS=1 it is bytes per second of one thread actually running).
//   node dist/bench/decode-ab.js [--shape DxL] [--dtypes f32,q8_0,q4_0,q4_k,f16] [--bytes N] [--prefill P]
//                                [--rounds R] [--isa I] [--no-per-op]
// Without --shape: the shipped byte model. MAMBABYTE_THREADS=1 for one thread.
import { NativeKernels } from '../src/backend/native.js';
import { loadCheckpoint } from '../src/checkpoint/index.js';
import { DEFAULT_MODEL } from '../src/app/sources.js';
import { parseShape } from '../src/cli/bench.js';
import { BENCH_DTYPES, quantizeProjections, stepWeightBytes, type BenchDtype } from '../src/cli/bench-quant.js';
import { Mamba } from '../src/model/mamba.js';

const args = process.argv.slice(2);
const opt = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const shape = opt('--shape');
const dtypes = (opt('--dtypes') ?? 'f32').split(',') as BenchDtype[];
for (const d of dtypes) if (!BENCH_DTYPES.includes(d)) throw new Error(`--dtypes: ${d} is not one of ${BENCH_DTYPES.join(', ')}`);
const rounds = Number(opt('--rounds') ?? 5), isa = opt('--isa'), perOp = !args.includes('--no-per-op');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const kernels = NativeKernels.create(isa ? { isa } : {});
const ckpt = shape ? parseShape(shape) : loadCheckpoint(DEFAULT_MODEL);
const models = dtypes.map((d) => {
	const m = new Mamba(ckpt, kernels);
	if (d !== 'f32') quantizeProjections(m, d);
	return m;
});
const weightBytes = models.map(stepWeightBytes);
const bytes = Number(opt('--bytes') ?? Math.max(8, Math.min(256, Math.round(1e10 / weightBytes[0]))));
const prefill = Number(opt('--prefill') ?? Math.max(64, Math.min(256, Math.round(2e10 / weightBytes[0] / 64) * 64)));
const text = new TextEncoder().encode('It was a dark and stormy night; the rain fell in torrents. '.repeat(8));
const probe = new Uint8Array(Math.max(1 << 30, Math.max(...weightBytes)));

const cpuRates: number[][] = dtypes.map(() => []);

async function decodeRate(m: Mamba, fused: boolean): Promise<number> {
	m.fusedStep = fused;
	const s = m.newState();
	await m.forward(text.subarray(0, 16), s);
	const t0 = performance.now(), c0 = process.cpuUsage();
	for (let i = 0; i < bytes; i++) await m.step(text[i % text.length], s);
	const cpu = process.cpuUsage(c0);
	if (fused) cpuRates[models.indexOf(m)].push(bytes / ((cpu.user + cpu.system) / 1e6));
	return bytes / ((performance.now() - t0) / 1000);
}

async function prefillRate(m: Mamba): Promise<number> {
	const t0 = performance.now();
	await m.forward(Uint8Array.from({ length: prefill }, (_, i) => text[i % text.length]), m.newState());
	return prefill / ((performance.now() - t0) / 1000);
}

const rows = dtypes.map(() => ({ fused: [] as number[], perOp: [] as number[], prefill: [] as number[] }));
const bandwidth: number[] = [];
for (const m of models) await decodeRate(m, true); // warm-up (page in, build the native handles)
for (const c of cpuRates) c.length = 0;
for (let r = 0; r < rounds; r++) {
	bandwidth.push(kernels.readBandwidth(probe.length, 1));
	for (let i = 0; i < models.length; i++) {
		rows[i].fused.push(await decodeRate(models[i], true));
		if (perOp) rows[i].perOp.push(await decodeRate(models[i], false));
		rows[i].prefill.push(await prefillRate(models[i]));
	}
}
const info = kernels.info;
const fmt = (xs: number[]) => (xs.length ? `${median(xs).toFixed(1)} (${Math.min(...xs).toFixed(1)}-${Math.max(...xs).toFixed(1)})` : '-');
console.log(`${shape ? `random ${shape}` : ckpt.name}, ${info.isa}, ${info.threads} threads; ${rounds} rounds of ${bytes} decoded and ${prefill} prefilled bytes; medians (min-max)`);
console.log(`plain memory read: ${fmt(bandwidth)} GB/s`);
console.log('| weights | MB/step | decode B/s (fused step) | decode B/CPU-s (fused) | decode B/s (per-op) | weight GB/s (fused) | prefill B/s |');
console.log('|---|---|---|---|---|---|---|');
dtypes.forEach((d, i) => {
	const w = weightBytes[i], f = rows[i].fused;
	console.log(`| ${d} | ${(w / 1e6).toFixed(1)} | ${fmt(f)} | ${fmt(cpuRates[i])} | ${fmt(rows[i].perOp)} | ${((median(f) * w) / 1e9).toFixed(1)} | ${fmt(rows[i].prefill)} |`);
});
console.log(JSON.stringify({ model: shape ?? ckpt.name, isa: info.isa, threads: info.threads, bandwidth, rows: dtypes.map((d, i) => ({ dtype: d, weightBytes: weightBytes[i], ...rows[i], cpu: cpuRates[i] })) }));
