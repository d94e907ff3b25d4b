// `mambabyte convert IN OUT [--dtype f16|bf16|f32]`: any supported checkpoint to the HF safetensors layout.
import { convertCheckpoint, checkpointSummary } from '../checkpoint/index.js';
import { UsageError } from '../errors.js';

export async function runConvert(inDir: string, outDir: string, dtype: string): Promise<void> {
	if (dtype !== 'f16' && dtype !== 'bf16' && dtype !== 'f32') throw new UsageError(`--dtype ${dtype}: expected f16, bf16 or f32`);
	const ckpt = convertCheckpoint(inDir, outDir, dtype);
	process.stdout.write(`wrote ${outDir} (${checkpointSummary(ckpt)} → ${dtype.toUpperCase()})\n`);
}
