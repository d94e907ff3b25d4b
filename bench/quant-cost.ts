// What each quantization costs the shipped byte model: `node dist/bench/quant-cost.js [MODEL] [--bytes N]`.
// Quantizes MODEL's weights in memory with the reference quantizers (as `convert --dtype T` would write them),
// then on the first N bytes (default 65536) of each book in ../shared/corpus/test: bits per byte of the base and of
// each type, and KL(base ‖ type) per byte (mean, p99) with top-1 agreement. Base logits are computed once.
// `--corpus DIR` reads the books from DIR instead.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { loadModel } from '../src/checkpoint/index.js';
import { ggufTensors } from '../src/checkpoint/gguf-model.js';
import { DEFAULT_MODEL } from '../src/app/sources.js';
import { klDivergence } from '../src/engine/kl.js';
import { NativeKernels } from '../src/backend/native.js';
import { Mamba } from '../src/model/mamba.js';
import type { QMatrix } from '../src/tensor/qmatrix.js';
import { quantize, type QuantizeType } from '../src/tensor/quantize.js';
import type { Checkpoint, LanguageModel, Weight } from '../src/model/types.js';

const args = process.argv.slice(2);
const bytesArg = args.indexOf('--bytes');
const N = bytesArg >= 0 ? Number(args[bytesArg + 1]) : 65536;
const modelPath = args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--bytes' && args[i - 1] !== '--corpus') ?? DEFAULT_MODEL;
const corpusArg = args.indexOf('--corpus');
const corpus = corpusArg >= 0 ? args[corpusArg + 1] : path.resolve(process.cwd(), '../shared/corpus/test');
const TYPES: QuantizeType[] = ['q8_0', 'q6_k', 'q4_k', 'q4_0'];

/** The checkpoint with its matrices stored as convert --dtype t stores them (same per-tensor type choices). */
function quantized(base: Checkpoint<Weight>, t: QuantizeType): { ckpt: Checkpoint<Weight>; bytes: number } {
	const { tensors } = ggufTensors(base, t); // the per-tensor types convert would pick
	const typeOf = new Map(tensors.map((x) => [x.name, x.typeId]));
	const ids: Record<number, QuantizeType> = { 0: 'f32', 1: 'f16', 8: 'q8_0', 2: 'q4_0', 6: 'q5_0', 12: 'q4_k', 14: 'q6_k' };
	const c = base.config;
	const q = (w: Weight, name: string, rows: number, cols: number): QMatrix => quantize(w as Float32Array, rows, cols, ids[typeOf.get(name) as number]);
	const { dModel: d, dInner: E, dState: S, dtRank: R, vocabSize: V } = c;
	const w = base.weights;
	const ckpt: Checkpoint<Weight> = {
		...base, name: `${base.name}-${t}`,
		weights: {
			...w, embedding: q(w.embedding, 'token_embd.weight', V, d),
			...(w.lmHead ? { lmHead: q(w.lmHead, 'output.weight', V, d) } : {}),
			layers: w.layers.map((l, i) => ({
				...l, inProj: q(l.inProj, `blk.${i}.ssm_in.weight`, 2 * E, d), xProj: q(l.xProj, `blk.${i}.ssm_x.weight`, R + 2 * S, E),
				dtProj: q(l.dtProj, `blk.${i}.ssm_dt.weight`, E, R), outProj: q(l.outProj, `blk.${i}.ssm_out.weight`, d, E),
			})),
		},
	};
	return { ckpt, bytes: tensors.reduce((s, x) => s + x.data.byteLength, 0) };
}

async function main() {
	const base = loadModel(modelPath);
	const kernels = NativeKernels.create(); // imported directly: this script needs no gpu.js (runs from dist alone)
	const baseModel = new Mamba(base, kernels);
	const models: [string, LanguageModel, number][] = [];
	for (const t of TYPES) {
		const { ckpt, bytes } = quantized(base, t);
		models.push([t, new Mamba(ckpt, kernels), bytes]);
	}
	const books = readdirSync(corpus).filter((f) => f.endsWith('.txt')).sort();
	const rows: Record<string, { bpb: number[]; kl: number[]; p99: number[]; top1: number[]; bytes: number }> = {};
	const baseBpb: number[] = [];
	for (const book of books) {
		const bytes = readFileSync(path.join(corpus, book)).subarray(0, N);
		// One pass of the base per book, recorded by a model wrapper that replays its logits for every comparison.
		const logits: Float32Array[] = [];
		const rec: LanguageModel = { ...baseModel, checkpoint: base, config: base.config, chunk: baseModel.chunk, newState: () => baseModel.newState(), step: (baseModel as LanguageModel).step.bind(baseModel), verify: (baseModel as LanguageModel).verify.bind(baseModel), logProbs: (baseModel as LanguageModel).logProbs.bind(baseModel), kernels: baseModel.kernels, forward: async (tok, s) => { const l = await (baseModel as LanguageModel).forward(tok, s); logits.push(l); return l; } };
		let replayAt = 0;
		const replay: LanguageModel = { ...rec, forward: async () => logits[replayAt++] };
		for (const [t, m, size] of models) {
			replayAt = 0;
			const r = await klDivergence(logits.length ? replay : rec, m, book, bytes);
			const row = (rows[t] ??= { bpb: [], kl: [], p99: [], top1: [], bytes: size });
			row.bpb.push(r.bits_per_byte);
			row.kl.push(r.kl_mean);
			row.p99.push(r.kl_p99);
			row.top1.push(r.top1_agreement);
			if (t === TYPES[0]) baseBpb.push(r.bits_per_byte_base);
			process.stderr.write(`${book} ${t}: bpb ${r.bits_per_byte.toFixed(4)} (base ${r.bits_per_byte_base.toFixed(4)}) KL ${r.kl_mean.toExponential(3)}\n`);
		}
	}
	const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
	const mb = (n: number) => (n / 1e6).toFixed(2);
	process.stdout.write(`${base.name} (${base.dtype}), first ${N} bytes of ${books.length} books in ../shared/corpus/test, backend ${kernels.name}\n\n`);
	process.stdout.write('| type | GGUF tensor data (MB) | bits/byte | Δ vs base | mean KL (nats/byte) | p99 KL | top-1 agreement |\n|---|---|---|---|---|---|---|\n');
	process.stdout.write(`| ${base.dtype} (base) | | ${mean(baseBpb).toFixed(4)} | | | | |\n`);
	for (const t of TYPES) {
		const r = rows[t];
		process.stdout.write(`| ${t.toUpperCase()} | ${mb(r.bytes)} | ${mean(r.bpb).toFixed(4)} | ${(mean(r.bpb) - mean(baseBpb) >= 0 ? '+' : '')}${(mean(r.bpb) - mean(baseBpb)).toFixed(4)} | ${mean(r.kl).toExponential(2)} | ${mean(r.p99).toExponential(2)} | ${(100 * mean(r.top1)).toFixed(2)}% |\n`);
	}
	process.stdout.write(`\nper book bits/byte: base ${baseBpb.map((v) => v.toFixed(4)).join(' ')}\n`);
	for (const t of TYPES) process.stdout.write(`  ${t}: ${rows[t].bpb.map((v) => v.toFixed(4)).join(' ')}\n`);
}

main().catch((e) => {
	process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
	process.exit(1);
});
