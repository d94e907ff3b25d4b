// The kernel interface the host forward (src/model/mamba.ts) runs on. Three implementations: gpu.js kernels
// (src/backend/gpujs.ts, one gpu.js mode per backend name), the native C kernels for CPUs (src/backend/native.ts,
// an optional addon) and the plain references (src/backend/reference.ts, slow and obviously correct, used by
// tests). Arrays are row-major Float32Array; the arguments and their shapes are described in kernels/*.ts.
import type { Matrix } from '../../kernels/types.js';
import type { Rows } from '../../kernels/layout.js';
import type { Epilogue } from '../../kernels/projection.js';
import type { NormArgs, NormDims } from '../../kernels/norms.js';
import type { ConvArgs, ConvDims } from '../../kernels/conv.js';
import type { ScanArgs, ScanDims } from '../../kernels/scan.js';

export type BackendName = 'cpu' | 'webasm' | 'webgpu' | 'headlessgl' | 'native' | 'reference';
export const BACKEND_CHOICES = ['auto', 'cpu', 'webasm', 'webgpu', 'headlessgl', 'native'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

export interface Kernels {
	readonly name: BackendName;
	/** y (T, N) = x Wᵀ, W (N, K), then the epilogue; x: (T, K) rows, or a view of K columns (kernels/projection.ts). */
	linear(w: Matrix, x: Rows, T: number, epi?: Epilogue): Promise<Float32Array>;
	/** RMSNorm (no b) or LayerNorm (with b) of x (T, d) (kernels/norms.ts). */
	norm(args: NormArgs, dims: NormDims): Promise<Float32Array>;
	/** silu(causal depthwise conv) of x (T, E), earlier positions from the conv state (kernels/conv.ts). */
	convSilu(args: ConvArgs, dims: ConvDims): Promise<Float32Array>;
	/** The selective scan over T steps from h, updated in place; returns y (T, E) (kernels/scan.ts). */
	scan(args: ScanArgs, dims: ScanDims): Promise<Float32Array>;
	/** ln p(target[t]) under each logits row (T, V). */
	logProb(logits: Float32Array, T: number, V: number, target: ArrayLike<number>): Promise<Float64Array>;
}
