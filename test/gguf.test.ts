// GGUF files written by llama.cpp's own tools (../shared/fixtures/gguf, see its README) against independent
// references: every file of supported types loads and its logits over input.txt match the float64 reference run on
// llama.cpp's own dequantization; our quantizers reproduce llama-quantize's bytes; convert round-trips.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { referenceKernels } from '../src/backend/reference.js';
import { convertCheckpoint } from '../src/checkpoint/convert.js';
import { openGguf, typeName } from '../src/checkpoint/gguf.js';
import { loadCheckpoint, loadModel } from '../src/checkpoint/load.js';
import { openSafetensors } from '../src/checkpoint/safetensors.js';
import { klDivergence } from '../src/engine/kl.js';
import { UserError } from '../src/errors.js';
import { Mamba } from '../src/model/mamba.js';
import { isQMatrix, type QType } from '../src/tensor/qmatrix.js';
import { dequantize } from '../src/tensor/dequant.js';
import { quantize, type QuantizeType } from '../src/tensor/quantize.js';
import { rng } from '../src/model/random.js';

const DIR = nodePath.resolve(process.cwd(), '../shared/fixtures/gguf');
const expected = JSON.parse(fs.readFileSync(nodePath.join(DIR, 'expected.json'), 'utf8')) as Record<string, {
	type: string; tensor_types: string[]; logits_file: string; logits_shape: [number, number]; bits_per_byte_input: number;
}>;
const input = Array.from(fs.readFileSync(nodePath.join(DIR, 'input.txt')));
const SUPPORTED = new Set(['F32', 'F16', 'BF16', 'Q8_0', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q4_K', 'Q5_K', 'Q6_K']);
const supportedFiles = Object.keys(expected).filter((f) => expected[f].tensor_types.every((t) => SUPPORTED.has(t)));
const unsupportedFiles = Object.keys(expected).filter((f) => !supportedFiles.includes(f));

// The references are float64 over exactly dequantized weights; we compute in float32. Over 2 layers and 87
// positions float32 rounding moves logits by ~1e-6 (measured: at most 7.2e-7), so 1e-4 (the README's "about 1e-4")
// leaves a wide margin yet catches any wrong dequantization, whose smallest effect here is ~1e-2 (one f16 scale).
const LOGIT_TOL = 1e-4;

async function logitsOf(file: string): Promise<{ logits: Float32Array; bpb: number }> {
	const m = new Mamba(loadModel(nodePath.join(DIR, file)), referenceKernels);
	const logits = await m.forward(input, m.newState());
	const lp = await referenceKernels.logProb(logits.subarray(0, (input.length - 1) * 256), input.length - 1, 256, input.slice(1));
	return { logits, bpb: -lp.reduce((a, b) => a + b, 0) / Math.LN2 / lp.length };
}

test('the fixtures cover every supported type and the unsupported ones', () => {
	assert.ok(supportedFiles.length >= 10, `supported files: ${supportedFiles}`);
	assert.equal(unsupportedFiles.sort(), ['tiny-q2_k.gguf', 'tiny-q3_k_m.gguf']);
});

for (const file of supportedFiles) {
	test(`${file}: logits over input.txt match the float64 reference within ${LOGIT_TOL}; bits per byte match`, async () => {
		const e = expected[file];
		const ref = new Float32Array(new Uint8Array(fs.readFileSync(nodePath.join(DIR, e.logits_file))).buffer);
		assert.is(ref.length, e.logits_shape[0] * e.logits_shape[1]);
		const { logits, bpb } = await logitsOf(file);
		assert.is(logits.length, ref.length);
		let worst = 0;
		for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(ref[i] - logits[i]));
		assert.ok(worst < LOGIT_TOL, `${file}: max |logit − reference| = ${worst}`);
		assert.ok(Math.abs(bpb - e.bits_per_byte_input) < 1e-5, `${file}: ${bpb} bits/byte, expected ${e.bits_per_byte_input}`);
	});
}

test('the loaded model keeps quantized matrices as stored blocks and records the GGUF metadata', () => {
	const c = loadModel(nodePath.join(DIR, 'tiny-q8_0.gguf'));
	assert.is(c.format, 'gguf');
	assert.is(c.dtype, 'Q8_0');
	assert.is(c.config.tied, true);
	assert.is(c.config.contextLength, 1048576);
	assert.equal([c.config.dModel, c.config.nLayer, c.config.dInner, c.config.dState, c.config.dtRank, c.config.dConv], [256, 2, 512, 16, 32, 4]);
	const m = c.weights.layers[0].inProj;
	assert.ok(isQMatrix(m) && m.qtype === 'q8_0' && m.rows === 1024 && m.cols === 256 && m.data.length === 1024 * 8 * 34);
	// A is kept exactly as the file stores it (the model uses it directly).
	const g = openGguf(nodePath.join(DIR, 'tiny-q8_0.gguf'));
	const t = g.tensors.get('blk.0.ssm_a')!;
	const a = new Float32Array(g.readBytes(t).buffer);
	g.close();
	assert.equal(Array.from(c.weights.layers[0].A!), Array.from(a));
});

for (const file of unsupportedFiles) {
	test(`${file}: one clear line naming the tensor and its unsupported type`, () => {
		try {
			loadModel(nodePath.join(DIR, file));
			assert.unreachable('loaded');
		} catch (err) {
			assert.instance(err, UserError);
			const msg = (err as Error).message;
			assert.not.match(msg, /\n/);
			assert.match(msg, /tensor blk\.\d+\.\S+ has type (Q2_K|Q3_K|IQ4_NL), which is not supported/);
		}
	});
}

// llama-quantize (no importance matrix) uses ggml's quantize_row_*_ref; ours must give the same bytes for every
// tensor of a type we quantize, in every fixture file that holds that type.
const FROM_SOURCE: Record<string, string> = { token_embd: 'backbone.embeddings.weight', in: 'in_proj', x: 'x_proj', dt: 'dt_proj', out: 'out_proj' };
const sourceName = (n: string) =>
	n === 'token_embd.weight' ? FROM_SOURCE.token_embd : n.replace(/^blk\.(\d+)\.ssm_(in|x|dt|out)\.weight$/, (_, i, t) => `backbone.layers.${i}.mixer.${FROM_SOURCE[t]}.weight`);

test("our quantizers reproduce llama-quantize's bytes for q8_0, q4_0, q5_0, q4_K, q6_K and f16, tensor by tensor", () => {
	const src = openSafetensors(nodePath.join(DIR, 'source/model.safetensors'));
	const seen = new Map<QType, number>();
	for (const file of ['tiny-q8_0.gguf', 'tiny-q4_0.gguf', 'tiny-q5_0.gguf', 'tiny-q4_k_m.gguf', 'tiny-q6_k.gguf', 'tiny-f16.gguf']) {
		const g = openGguf(nodePath.join(DIR, file));
		for (const t of g.tensors.values()) {
			if (t.dims.length !== 2 || !t.qtype || !['q8_0', 'q4_0', 'q5_0', 'q4_k', 'q6_k', 'f16'].includes(t.qtype)) continue;
			const ours = quantize(src.read(sourceName(t.name)), t.dims[1], t.dims[0], t.qtype as QuantizeType).data;
			const theirs = g.readBytes(t);
			const first = theirs.findIndex((b, i) => b !== ours[i]);
			assert.is(first, -1, `${file} ${t.name} (${typeName(t.typeId)}): first differing byte at ${first}`);
			seen.set(t.qtype, (seen.get(t.qtype) ?? 0) + 1);
		}
		g.close();
	}
	src.close();
	for (const q of ['q8_0', 'q4_0', 'q5_0', 'q4_k', 'q6_k', 'f16'] as QType[]) assert.ok((seen.get(q) ?? 0) >= 2, `${q} compared on ${seen.get(q) ?? 0} tensors`);
});

test('quantize then dequantize stays within each type\'s step (random values, including an all-zero block)', () => {
	const r = rng(7);
	const rows = 4, cols = 512;
	const x = Float32Array.from({ length: rows * cols }, () => (r() * 2 - 1) * 0.3);
	x.fill(0, 0, 256); // a zero block takes the "all zero" branches
	const bound: Record<string, number> = { q8_0: 0.3 / 127, q4_0: 0.3 / 7, q5_0: 0.3 / 15, q4_k: 0.6 / 15, q6_k: 0.3 / 31, f16: 0.3 / 1024, bf16: 0.3 / 128, f32: 0 };
	for (const t of Object.keys(bound) as QuantizeType[]) {
		const y = dequantize(quantize(x, rows, cols, t));
		let worst = 0;
		for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]));
		assert.ok(worst <= bound[t], `${t}: max error ${worst} > ${bound[t]}`);
		for (let i = 0; i < 256; i++) assert.is(y[i], 0, `${t}: zero block`);
	}
});

const tmp = () => fs.mkdtempSync(nodePath.join(os.tmpdir(), 'mambabyte-gguf-'));

test('convert SOURCE OUT.gguf --dtype T writes the tensors llama-quantize writes (types, shapes, bytes)', () => {
	const dir = tmp();
	try {
		for (const [dtype, file] of [['q8_0', 'tiny-q8_0.gguf'], ['q4_0', 'tiny-q4_0.gguf'], ['q4_k', 'tiny-q4_k_m.gguf'], ['q6_k', 'tiny-q6_k.gguf'], ['f32', 'tiny-f32.gguf']] as const) {
			const out = nodePath.join(dir, `${dtype}.gguf`);
			convertCheckpoint(nodePath.join(DIR, 'source'), out, dtype);
			const ours = openGguf(out), theirs = openGguf(nodePath.join(DIR, file));
			assert.equal([...ours.tensors.keys()].sort(), [...theirs.tensors.keys()].sort(), `${dtype}: tensor names`);
			for (const [name, t] of theirs.tensors) {
				const o = ours.tensors.get(name)!;
				assert.equal([o.typeId, o.dims], [t.typeId, t.dims], `${dtype} ${name}: type and shape`);
				assert.ok(Buffer.from(ours.readBytes(o)).equals(Buffer.from(theirs.readBytes(t))), `${dtype} ${name}: bytes`);
			}
			for (const k of ['general.architecture', 'mamba.embedding_length', 'mamba.block_count', 'mamba.ssm.inner_size', 'mamba.ssm.time_step_rank', 'tokenizer.ggml.model', 'tokenizer.ggml.tokens']) {
				assert.equal(ours.metadata.get(k)?.value, theirs.metadata.get(k)?.value, `${dtype} metadata ${k}`);
			}
			assert.is(ours.size, theirs.size, `${dtype}: file size`);
			ours.close();
			theirs.close();
			assert.equal(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temporary file left');
		}
	} finally {
		fs.rmSync(dir, { recursive: true, force: true });
	}
});

test('convert GGUF -> HF safetensors -> GGUF keeps the stored blocks and the model', async () => {
	const dir = tmp();
	try {
		const q8 = nodePath.join(DIR, 'tiny-q8_0.gguf');
		convertCheckpoint(q8, nodePath.join(dir, 'hf'), 'f32'); // dequantized values, A_log = log(−A)
		const hf = loadCheckpoint(nodePath.join(dir, 'hf'));
		const orig = loadModel(q8);
		assert.equal(Array.from(hf.weights.layers[1].outProj), Array.from(dequantize(orig.weights.layers[1].outProj as never)));
		// Re-quantizing dequantized q8_0 values gives back the same blocks (the scale and levels are recovered).
		convertCheckpoint(nodePath.join(dir, 'hf'), nodePath.join(dir, 'back.gguf'), 'q8_0');
		const back = openGguf(nodePath.join(dir, 'back.gguf')), want = openGguf(q8);
		for (const [name, t] of want.tensors) {
			if (t.qtype !== 'q8_0') continue;
			assert.ok(Buffer.from(back.readBytes(back.tensors.get(name)!)).equals(Buffer.from(want.readBytes(t))), `${name}`);
		}
		back.close();
		want.close();
		// The HF copy runs the same model (A from log(−A) may differ by an ulp: logits agree to float32 noise).
		const a = new Mamba(orig, referenceKernels), b = new Mamba(hf, referenceKernels);
		const la = await a.forward(input, a.newState()), lb = await b.forward(input, b.newState());
		let worst = 0;
		for (let i = 0; i < la.length; i++) worst = Math.max(worst, Math.abs(la[i] - lb[i]));
		assert.ok(worst < 1e-4, `logits differ by ${worst}`);
	} finally {
		fs.rmSync(dir, { recursive: true, force: true });
	}
});

test('convert refuses a quantized type into a folder, with one line', () => {
	assert.throws(() => convertCheckpoint(nodePath.join(DIR, 'source'), nodePath.join(os.tmpdir(), 'not-gguf-folder'), 'q8_0'), (e: unknown) => e instanceof UserError && /name it \*\.gguf/.test((e as Error).message));
});

test('KL divergence: zero against itself; against Q4_0 positive, equal to a direct float64 computation', async () => {
	const f32 = new Mamba(loadModel(nodePath.join(DIR, 'tiny-f32.gguf')), referenceKernels);
	const q4 = new Mamba(loadModel(nodePath.join(DIR, 'tiny-q4_0.gguf')), referenceKernels);
	const bytes = Uint8Array.from(input);
	const self = await klDivergence(f32, f32, 'input.txt', bytes);
	assert.is(self.kl_mean, 0);
	assert.is(self.kl_max, 0);
	assert.is(self.top1_agreement, 1);
	assert.ok(Math.abs(self.bits_per_byte - expected['tiny-f32.gguf'].bits_per_byte_input) < 1e-5);
	const r = await klDivergence(f32, q4, 'input.txt', bytes);
	assert.ok(Math.abs(r.bits_per_byte - expected['tiny-q4_0.gguf'].bits_per_byte_input) < 1e-5, `q4_0 bits/byte ${r.bits_per_byte}`);
	// Direct: KL at every position from the two logit tables.
	const la = await f32.forward(input, f32.newState()), lb = await q4.forward(input, q4.newState());
	const kls: number[] = [];
	for (let t = 0; t < input.length - 1; t++) {
		const ls = (l: Float32Array) => {
			const row = Array.from(l.subarray(t * 256, (t + 1) * 256));
			const m = Math.max(...row);
			const z = Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0)) + m;
			return row.map((v) => v - z);
		};
		const p = ls(la), q = ls(lb);
		kls.push(Math.max(0, p.reduce((s, v, i) => s + Math.exp(v) * (v - q[i]), 0)));
	}
	const mean = kls.reduce((a, b) => a + b, 0) / kls.length;
	assert.ok(r.kl_mean > 0 && Math.abs(r.kl_mean - mean) < 1e-9 * Math.max(1, mean), `${r.kl_mean} vs ${mean}`);
	assert.is(r.kl_max, Math.max(...kls));
	assert.ok(r.kl_median <= r.kl_p90 && r.kl_p90 <= r.kl_p99 && r.kl_p99 <= r.kl_max);
	assert.ok(r.top1_agreement > 0.5 && r.top1_agreement <= 1);
});

test.run();
