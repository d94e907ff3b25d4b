// How the GPU-resident forward cuts its work (src/model/resident.ts): split-K slices of a projection's reduction,
// slices of a norm's row, and the alignment of per-layer slices of one buffer.

/** Bindings at an offset must be 256-byte aligned: per-layer slices of one buffer start at multiples of 64 floats. */
const ALIGN = 64;
export const aligned = (n: number): number => Math.ceil(n / ALIGN) * ALIGN;

/** The most threads a split-K partial pass may have (the bench knob's upper bound). */
export const SPLIT_MAX = 1 << 20;

/**
 * Split-K slices: the most (a power of two) that keeps the threads of a partial pass within `threads`, with at
 * least 8 reduction steps per slice. Decode (one block) gets many slices, prefill few.
 */
export function slices(TB: number, K: number, N: number, threads: number): number {
	let S = 1;
	while (S * 2 * TB * N <= threads && S * 2 * 8 <= K && (K % 4 !== 0 || K % (S * 2 * 4) === 0)) S *= 2;
	return S;
}

/** Rows and blocks of 4 positions a matmulTile thread computes (kernels/projection.ts). */
export const TILE = { rows: 4, blocks: 4 } as const;

/** Whether matmulTile runs a projection of N outputs on TB blocks. */
export const tileFits = (TB: number, N: number): boolean => N % TILE.rows === 0 && TB % TILE.blocks === 0;

/**
 * Split-K slices of a matmulTile pass given a chunk's split-K budget of `threads`: as slices() with TB·N/(R·B)
 * threads a slice (R rows × B blocks a thread) within a quarter of the budget (a tile thread does R·B times
 * matmulPartial's work), and few enough that the partial sums (S·TB·N·4 floats) stay below 2^24, where gpu.js's
 * f32 indices are exact.
 */
export function tileSlices(TB: number, K: number, N: number, threads: number): number {
	let S = slices(TB, K, N / (TILE.rows * TILE.blocks), threads / 4);
	while (S > 1 && S * TB * N * 4 >= 1 << 24) S /= 2;
	return S;
}

/** Decode split-K slices for matvecPartial: as slices(), each slice a multiple of 4 long, at most 64 to reduce. */
export function vecSlices(K: number, N: number, threads: number): number {
	let S = 1;
	while (S < 64 && S * 2 * N <= threads && S * 2 * 8 <= K && K % (S * 2 * 4) === 0) S *= 2;
	return S;
}

/** Slices of a row for normSlices: a power of two dividing d, at most 32, each at least 8 long. */
export function normSliceCount(d: number): number {
	let S = 1;
	while (S < 32 && d % (S * 2) === 0 && d / (S * 2) >= 8) S *= 2;
	return S;
}

/** The group-sum width of a decode projection with N outputs: the largest power of two up to `want` dividing N. */
export function groupWidth(N: number, want: number): number {
	let C = 1;
	while (C * 2 <= want && N % (C * 2) === 0) C *= 2;
	return C;
}

/**
 * Slices of a group-sum decode projection (kernels/projection.ts matvecGroup; P parts of each column per
 * workgroup): as vecSlices, the most (a power of two dividing K) within `threads` and `max`, each at least P long.
 * `max` bounds what the kernel after it sums per value (the plans say which).
 */
export function groupSlices(K: number, N: number, P: number, threads: number, max: number): number {
	let S = 1;
	while (S * 2 <= max && S * 2 * N * P <= threads && K % (S * 2) === 0 && K / (S * 2) >= P) S *= 2;
	return S;
}

/** The most slices the decode plan leaves for an elementwise kernel to sum, per projection (plans.ts). */
export const GROUP_SLICES = { in: 16, x: 16, dt: 8, out: 64 } as const;

/**
 * Slices of x_proj in the row plan (kernels/projection.ts matvecRow): x_proj has few rows (R + 2N), so slicing K
 * puts more workgroups on the GPU, but dt_proj and the scan add the slices in every thread. At most ROW_SLICES,
 * within `threads`, each slice even and at least 512 long.
 */
export const ROW_SLICES = 2;
export function rowSlices(K: number, N: number, threads: number): number {
	let S = 1;
	while (S * 2 <= ROW_SLICES && S * 2 * N * 64 <= threads && K % (S * 4) === 0 && K / (S * 2) >= 512) S *= 2;
	return S;
}
