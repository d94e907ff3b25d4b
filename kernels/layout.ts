// Where activations sit in memory, defined once for every kernel.
//
// Host layout: row-major (T, C). Two activations are several named parts side by side, because one projection
// computes them together:
//   xz  = in_proj(u)   (T, 2E)      [x (E) | z (E)]
//   dbc = x_proj(x)    (T, R + 2N)  [dt_r (R) | B (N) | C (N)]
// Kernels take the parts as Columns views (the array, the part's first column, the row stride), read in place:
// splitXz and splitDbc are the only places that know where a part sits.
//
// Blocked layout (the GPU-resident forward, src/model/resident.ts): an activation (T, C) is stored as
// (⌈T/4⌉, C, 4), element (t, c) at ((t >> 2)·C + c)·4 + (t & 3), so a gpu.js thread returns the 4 positions of one
// block as one Array(4) and one weight load feeds 4 multiply-adds. gpu.js kernels cannot take views, so the
// blocked kernels get the parts' first columns as constants, from the same definitions (dbcColumns).

/** Columns [offset, offset + width) of a row-major array whose rows are `stride` floats: one part of a wider activation. */
export interface Columns {
	readonly data: Float32Array;
	readonly offset: number; // the part's first column
	readonly stride: number; // floats per row of data
}

export const columns = (data: Float32Array, offset: number, stride: number): Columns => ({ data, offset, stride });

/** A (T, width) array with nothing beside it. */
export const rows = (data: Float32Array, width: number): Columns => ({ data, offset: 0, stride: width });

/** A kernel input: a plain (T, width) array, or a view. */
export type Rows = Float32Array | Columns;

/** `x` as a view; a plain array's rows are `width` floats. */
export const asColumns = (x: Rows, width: number): Columns => (x instanceof Float32Array ? rows(x, width) : x);

/** Element (t, i) of a view. */
export const at = (v: Columns, t: number, i: number): number => v.data[t * v.stride + v.offset + i];

/** Row t of a view, `width` long, as a subarray (no copy). */
export const rowOf = (v: Columns, t: number, width: number): Float32Array =>
	v.data.subarray(t * v.stride + v.offset, t * v.stride + v.offset + width);

/** A copy of a view's first T rows, `width` columns each, as one (T, width) array. */
export function copyColumns(v: Columns, T: number, width: number): Float32Array {
	const out = new Float32Array(T * width);
	for (let t = 0; t < T; t++) out.set(rowOf(v, t, width), t * width);
	return out;
}

/** The columns of x_proj's output row: [dt_r (R) | B (N) | C (N)]. */
export const dbcColumns = (R: number, N: number) => ({ dt: 0, B: R, C: R + N, width: R + 2 * N });

/** dt_r (T, R), B (T, N) and C (T, N): views of x_proj's output (T, R + 2N). */
export function splitDbc(dbc: Float32Array, R: number, N: number): { dt: Columns; B: Columns; C: Columns } {
	const c = dbcColumns(R, N);
	return { dt: columns(dbc, c.dt, c.width), B: columns(dbc, c.B, c.width), C: columns(dbc, c.C, c.width) };
}

/** x (T, E), the conv's input, and z (T, E), the gate: views of in_proj's output (T, 2E). */
export function splitXz(xz: Float32Array, E: number): { x: Columns; z: Columns } {
	return { x: columns(xz, 0, 2 * E), z: columns(xz, E, 2 * E) };
}

/** Index of element (t, c) of a blocked (⌈T/4⌉, C, 4) array. */
const blockedIndex = (t: number, c: number, C: number): number => ((t >> 2) * C + c) * 4 + (t & 3);

/** (T, C) → blocked (⌈T/4⌉, C, 4), the padding positions zero. */
export function toBlocked(x: Float32Array, T: number, C: number): Float32Array {
	const out = new Float32Array(Math.ceil(T / 4) * C * 4);
	for (let t = 0; t < T; t++) for (let c = 0; c < C; c++) out[blockedIndex(t, c, C)] = x[t * C + c];
	return out;
}

/** Blocked (⌈T/4⌉, C, 4) → (T, C). */
export function fromBlocked(b: Float32Array, T: number, C: number): Float32Array {
	const out = new Float32Array(T * C);
	for (let t = 0; t < T; t++) for (let c = 0; c < C; c++) out[t * C + c] = b[blockedIndex(t, c, C)];
	return out;
}
