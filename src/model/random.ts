// A Mamba with random weights of any shape: for `bench --shape` (speed does not depend on the values) and tests.
// Values follow the usual init scales so activations stay in a realistic range at any depth.
import type { Checkpoint, LayerWeights, MambaConfig } from './types.js';

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

export function randomCheckpoint(c: MambaConfig, seed = 1): Checkpoint {
	const r = rng(seed);
	const uni = (n: number, scale: number, offset = 0) => Float32Array.from({ length: n }, () => offset + (r() * 2 - 1) * scale);
	const E = c.dInner, d = c.dModel, N = c.dState, R = c.dtRank, k = c.dConv;
	const layer = (): LayerWeights => ({
		norm: uni(d, 0.1, 1),
		normBias: c.norm === 'layer' ? uni(d, 0.1) : undefined,
		inProj: uni(2 * E * d, 1 / Math.sqrt(d)),
		convWeight: uni(E * k, 1 / Math.sqrt(k)),
		convBias: uni(E, 0.1),
		xProj: uni((R + 2 * N) * E, 1 / Math.sqrt(E)),
		dtProj: uni(E * R, 1 / Math.sqrt(R)),
		dtBias: uni(E, 1, -4), // softplus(−4 ± 1) ≈ 0.007–0.05, a typical Δ
		aLog: Float32Array.from({ length: E * N }, (_, i) => Math.log(1 + (i % N)) + (r() - 0.5) * 0.2),
		D: uni(E, 0.5, 1),
		outProj: uni(d * E, 1 / Math.sqrt(E) / Math.sqrt(c.nLayer)),
	});
	return {
		dir: '(random)', name: `random-d${d}-l${c.nLayer}`, format: 'hf', dtype: 'F32', config: c,
		weights: {
			embedding: uni(c.vocabSize * d, 1),
			layers: Array.from({ length: c.nLayer }, layer),
			normF: uni(d, 0.1, 1),
			normFBias: c.norm === 'layer' ? uni(d, 0.1) : undefined,
			lmHead: c.tied ? undefined : uni(c.vocabSize * d, 1 / Math.sqrt(d)),
		},
	};
}
