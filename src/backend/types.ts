// The kernel interface the model runs on. Three implementations: gpu.js kernels (src/backend/gpujs.ts, the fast
// path, one gpu.js mode per backend name), the native C kernels for CPUs (src/backend/native.ts, an optional addon)
// and the plain references (src/backend/reference.ts, slow and obviously correct, used by tests). Every array is
// row-major Float32Array; shapes in comments.
import type { Matrix } from '../../kernels/types.js';

export type BackendName = 'cpu' | 'webasm' | 'webgpu' | 'headlessgl' | 'native' | 'reference';
export const BACKEND_CHOICES = ['auto', 'cpu', 'webasm', 'webgpu', 'headlessgl', 'native'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

export interface Epilogue {
	residual?: Float32Array; // (T, N): y = r + x Wᵀ
	softplusBias?: Float32Array; // (N):   y = softplus(x Wᵀ + b)
}

export interface Kernels {
	readonly name: BackendName;
	/** y (T, N) = x (T, stride S ≥ K; first K columns) · Wᵀ, W (N, K), then the epilogue. */
	linear(w: Matrix, x: Float32Array, T: number, S: number, epi?: Epilogue): Promise<Float32Array>;
	/** RMSNorm (b undefined) or LayerNorm (with b) of x (T, d). */
	norm(x: Float32Array, T: number, d: number, w: Float32Array, b: Float32Array | undefined, eps: number): Promise<Float32Array>;
	/** silu(causal depthwise conv) of the x half of xz (T, 2E), reading earlier positions from state (E, k−1). */
	convSilu(xz: Float32Array, T: number, E: number, k: number, state: Float32Array, w: Float32Array, b: Float32Array): Promise<Float32Array>;
	/** The selective scan over T steps from h (E, N), updated in place; returns y (T, E) with D skip and silu(z) gate. */
	scan(
		delta: Float32Array, xs: Float32Array, dbc: Float32Array, xz: Float32Array,
		A: Float32Array, D: Float32Array, h: Float32Array, T: number, E: number, N: number, R: number,
	): Promise<Float32Array>;
	/** ln p(target[t]) under each logits row (T, V). */
	logProb(logits: Float32Array, T: number, V: number, target: ArrayLike<number>): Promise<Float64Array>;
}
