// A weight matrix kept in its stored (possibly quantized) form: ggml's block layouts, as GGUF files hold them.
// Row-major: row r is cols / blockSize consecutive blocks, so a row's bytes are data[r·rowBytes, (r+1)·rowBytes).
// Backends that can compute on blocks read `data` as it is (no float32 copy); the others dequantize at upload.

export type QType = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0' | 'q4_1' | 'q5_0' | 'q5_1' | 'q4_k' | 'q5_k' | 'q6_k';

/** Values per block and bytes per block of each type (ggml's ggml_type_traits). */
export const QTYPE_LAYOUT: Record<QType, { blockSize: number; blockBytes: number }> = {
	f32: { blockSize: 1, blockBytes: 4 },
	f16: { blockSize: 1, blockBytes: 2 },
	bf16: { blockSize: 1, blockBytes: 2 },
	q8_0: { blockSize: 32, blockBytes: 34 }, //  f16 d, int8 qs[32]
	q4_0: { blockSize: 32, blockBytes: 18 }, //  f16 d, u8 qs[16]
	q4_1: { blockSize: 32, blockBytes: 20 }, //  f16 d, f16 m, u8 qs[16]
	q5_0: { blockSize: 32, blockBytes: 22 }, //  f16 d, u8 qh[4], u8 qs[16]
	q5_1: { blockSize: 32, blockBytes: 24 }, //  f16 d, f16 m, u8 qh[4], u8 qs[16]
	q4_k: { blockSize: 256, blockBytes: 144 }, // f16 d, f16 dmin, u8 scales[12], u8 qs[128]
	q5_k: { blockSize: 256, blockBytes: 176 }, // f16 d, f16 dmin, u8 scales[12], u8 qh[32], u8 qs[128]
	q6_k: { blockSize: 256, blockBytes: 210 }, // u8 ql[128], u8 qh[64], i8 scales[16], f16 d
};

export interface QMatrix {
	readonly qtype: QType;
	readonly rows: number; // N (outputs)
	readonly cols: number; // K (reduction length), a multiple of the type's block size
	readonly data: Uint8Array; // rows · rowBytes(qtype, cols) bytes
}

export function rowBytes(qtype: QType, cols: number): number {
	const { blockSize, blockBytes } = QTYPE_LAYOUT[qtype];
	return (cols / blockSize) * blockBytes;
}

export function isQMatrix(w: unknown): w is QMatrix {
	return typeof w === 'object' && w !== null && !ArrayBuffer.isView(w) && 'qtype' in w && 'data' in w;
}
