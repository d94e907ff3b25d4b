// `mambabyte convert IN OUT [--dtype f16|bf16|f32|q8_0|q4_0|q4_k|q6_k]`: any supported checkpoint (folder or .gguf)
// to the HF safetensors layout, or to one GGUF file (quantized types, or OUT ending in .gguf).
import { convertCheckpoint, checkpointSummary } from '../checkpoint/index.js';
import { CONVERT_DTYPES, type ConvertDType, writesGguf } from '../checkpoint/convert.js';
import { UsageError } from '../errors.js';

export async function runConvert(inDir: string, outDir: string, dtype: string): Promise<void> {
	if (!(CONVERT_DTYPES as readonly string[]).includes(dtype)) throw new UsageError(`--dtype ${dtype}: expected ${CONVERT_DTYPES.join(', ')}`);
	const dt = dtype as ConvertDType;
	if (writesGguf(outDir, dt) && !/\.gguf$/i.test(outDir)) throw new UsageError(`convert ${outDir}: --dtype ${dtype} writes a single GGUF file; name OUT *.gguf`);
	const { ckpt, choices } = convertCheckpoint(inDir, outDir, dt);
	process.stdout.write(`wrote ${outDir} (${checkpointSummary(ckpt)} → ${dtype.toUpperCase()}${writesGguf(outDir, dt) ? ' GGUF' : ''})\n`);
	// Tensors stored in another type than asked, as llama-quantize does it; grouped by reason.
	const groups = new Map<string, string[]>();
	for (const c of choices) {
		const k = `${c.qtype.toUpperCase()}: ${c.why}`;
		groups.set(k, [...(groups.get(k) ?? []), c.name]);
	}
	for (const [why, names] of groups) process.stdout.write(`  ${names.length} tensor${names.length === 1 ? '' : 's'} as ${why} (${names.slice(0, 3).join(', ')}${names.length > 3 ? ', …' : ''})\n`);
	process.stdout.write('  1-D tensors, the conv weights and A stay F32\n'.repeat(writesGguf(outDir, dt) ? 1 : 0));
}
