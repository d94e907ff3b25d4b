// A Mamba with random weights of any shape: for `bench --shape` (speed does not depend on the values) and tests.
// Values follow the usual init scales so activations stay in a realistic range at any depth.
import type { Checkpoint, LayerWeights, MambaConfig } from './types.js';
import { f16ToF32, floatToHalf } from '../tensor/dtypes.js';

/** Deterministic uniform [0, 1) generator (mulberry32). */
export function rng(seed: number): () => number {
	let a = seed >>> 0;
	return () => {
		a = (a + 0x6d2b79f5) >>> 0;
		let t = a;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
}

export function shapeConfig(dModel: number, nLayer: number, vocabSize = 256): MambaConfig {
	return {
		dModel, nLayer, vocabSize,
		dInner: 2 * dModel, dState: 16, dConv: 4, dtRank: Math.ceil(dModel / 16),
		eps: 1e-5, norm: 'rms', tied: true,
	};
}

/**
 * `v` rounded to float16 values, in place: to nearest even at 10 mantissa bits on the float32 bits where the value
 * is a normal float16, through floatToHalf elsewhere (fast enough for the 972M shape's billion weights).
 */
function roundToHalf(v: Float32Array): Float32Array {
	const u = new Uint32Array(v.buffer, v.byteOffset, v.length);
	const one = new Uint16Array(1), back = new Float32Array(1);
	for (let i = 0; i < u.length; i++) {
		const x = u[i];
		const exp = (x >>> 23) & 0xff;
		if (exp >= 113 && exp < 142) u[i] = (x + 0x0fff + ((x >>> 13) & 1)) & ~0x1fff;
		else {
			one[0] = floatToHalf(v[i]);
			f16ToF32(one, back);
			v[i] = back[0];
		}
	}
	return v;
}

/** `v` rounded to bfloat16 values (to nearest even at the top 16 bits), in place. */
function roundToBf16(v: Float32Array): Float32Array {
	const u = new Uint32Array(v.buffer, v.byteOffset, v.length);
	for (let i = 0; i < u.length; i++) u[i] = (u[i] + 0x7fff + ((u[i] >>> 16) & 1)) & 0xffff0000;
	return v;
}

/**
 * Random weights of shape `c`. `sixteen`: the matrices (projections, embedding, head) rounded to float16 or bfloat16
 * values, as a checkpoint stored in F16 or BF16 holds them, so that the GPU keeps them in 16 bits
 * (src/backend/resident/halves.ts).
 */
export function randomCheckpoint(c: MambaConfig, seed = 1, { sixteen }: { sixteen?: 'f16' | 'bf16' } = {}): Checkpoint {
	const r = rng(seed);
	const uni = (n: number, scale: number, offset = 0) => {
		const out = new Float32Array(n);
		for (let i = 0; i < n; i++) out[i] = offset + (r() * 2 - 1) * scale;
		return out;
	};
	const round = sixteen === 'f16' ? roundToHalf : sixteen === 'bf16' ? roundToBf16 : (v: Float32Array) => v;
	const mat = (n: number, scale: number) => round(uni(n, scale));
	const E = c.dInner, d = c.dModel, N = c.dState, R = c.dtRank, k = c.dConv;
	const layer = (): LayerWeights => ({
		norm: uni(d, 0.1, 1),
		normBias: c.norm === 'layer' ? uni(d, 0.1) : undefined,
		inProj: mat(2 * E * d, 1 / Math.sqrt(d)),
		convWeight: uni(E * k, 1 / Math.sqrt(k)),
		convBias: uni(E, 0.1),
		xProj: mat((R + 2 * N) * E, 1 / Math.sqrt(E)),
		dtProj: mat(E * R, 1 / Math.sqrt(R)),
		dtBias: uni(E, 1, -4), // softplus(−4 ± 1) ≈ 0.007–0.05, a typical Δ
		aLog: Float32Array.from({ length: E * N }, (_, i) => Math.log(1 + (i % N)) + (r() - 0.5) * 0.2),
		D: uni(E, 0.5, 1),
		outProj: mat(d * E, 1 / Math.sqrt(E) / Math.sqrt(c.nLayer)),
	});
	return {
		dir: '(random)', name: `random-d${d}-l${c.nLayer}`, format: 'hf', dtype: sixteen === 'f16' ? 'F16' : sixteen === 'bf16' ? 'BF16' : 'F32', config: c,
		weights: {
			embedding: mat(c.vocabSize * d, 1),
			layers: Array.from({ length: c.nLayer }, layer),
			normF: uni(d, 0.1, 1),
			normFBias: c.norm === 'layer' ? uni(d, 0.1) : undefined,
			lmHead: c.tied ? undefined : mat(c.vocabSize * d, 1 / Math.sqrt(d)),
		},
	};
}
