// Weight matrices as the model holds them: float32, or stored blocks (QMatrix) straight from a GGUF file.
// Backends that compute only on float32 call denseWeight once per matrix (cached, so a tied embedding and head
// share one copy); a backend with quantized kernels replaces the denseWeight call with a direct use of the blocks.
import { isQMatrix, rowBytes, type QMatrix } from '../tensor/qmatrix.js';
import { dequantize, dequantizeRow } from '../tensor/dequant.js';
import type { LayerWeights, MambaWeights, Weight } from './types.js';

const dense = new WeakMap<QMatrix, Float32Array>();

/** The float32 values of a weight matrix: itself, or its blocks dequantized once. */
export function denseWeight(w: Weight): Float32Array {
	if (!isQMatrix(w)) return w;
	let d = dense.get(w);
	if (!d) dense.set(w, (d = dequantize(w)));
	return d;
}

/** A = −exp(A_log) (E, N): as stored when the file holds A itself (GGUF), else computed in float32 from A_log. */
export function layerA(l: LayerWeights<Weight>): Float32Array {
	return l.A ?? l.aLog.map((v) => -Math.exp(v));
}

/** Row `r` of the embedding (float32), without dequantizing the whole table. */
export function embeddingRow(w: Weight, r: number, cols: number, out: Float32Array, o: number): void {
	if (!isQMatrix(w)) out.set(w.subarray(r * cols, (r + 1) * cols), o);
	else dequantizeRow(w.qtype, w.data, r * rowBytes(w.qtype, cols), cols, out, o);
}

/** The distinct stored types of a model's quantized matrices, e.g. ['q8_0'] (empty when all are float32). */
function quantizedTypes(w: MambaWeights<Weight>): string[] {
	const all: Weight[] = [w.embedding, ...(w.lmHead ? [w.lmHead] : [])];
	for (const l of w.layers) all.push(l.inProj, l.xProj, l.dtProj, l.outProj);
	return [...new Set(all.filter(isQMatrix).map((q) => q.qtype))];
}

/** A note for --verbose when a backend dequantizes stored blocks to float32. */
export function dequantNote(name: string, w: MambaWeights<Weight>, backend: string): string | undefined {
	const types = quantizedTypes(w);
	if (types.length === 0) return undefined;
	return `${name}: ${types.join('/')} weights dequantized to float32 for the ${backend} backend (${backend} has no quantized kernels)`;
}
