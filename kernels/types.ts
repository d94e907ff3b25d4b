// What a gpu.js kernel function sees as `this`. Kernel functions are plain `function`s: gpu.js reads their source
// (Function.prototype.toString of the compiled JS) and transpiles it for each backend, so they may use only
// arithmetic, Math.*, loops over constant bounds, and the arguments/constants they are given.

export interface KernelThis<C> {
	thread: { x: number; y: number; z: number };
	output: { x: number; y: number; z: number };
	constants: C;
}

/** A row-major weight matrix (rows × cols), the unit a backend keeps resident. */
export interface Matrix {
	data: Float32Array; // (rows, cols)
	rows: number;
	cols: number;
}

export const matrix = (data: Float32Array, rows: number, cols: number): Matrix => ({ data, rows, cols });
