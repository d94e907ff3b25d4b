// Open a checkpoint folder on a backend: load and validate the weights, pick the kernels, build the model.
// On webgpu the model is the GPU-resident forward (resident.ts: weights, activations and state stay on the
// device, one submission per forward); on every other backend it is the host forward (mamba.ts) over the kernels.
import { loadModel } from '../checkpoint/load.js';
import { selectBackend } from '../backend/select.js';
import { GpuJsKernels } from '../backend/gpujs.js';
import { WebGpuRunner } from '../backend/resident/webgpu.js';
import type { BackendChoice, Kernels } from '../backend/types.js';
import { Mamba } from './mamba.js';
import { ResidentMamba } from './resident.js';
import type { Checkpoint, LanguageModel, Weight } from './types.js';
import { dequantNote } from './weights.js';

export interface Opened {
	model: LanguageModel;
	kernels: Kernels;
	notes: string[]; // backend selection notes, for --verbose
}

/** The model for a checkpoint on these kernels: resident on webgpu when its shapes allow, else the host forward. */
export async function buildModel(checkpoint: Checkpoint<Weight>, kernels: Kernels, notes: string[] = []): Promise<LanguageModel> {
	const dq = dequantNote(checkpoint.name, checkpoint.weights, kernels.name);
	if (dq) notes.push(dq);
	if (kernels.name === 'webgpu' && kernels instanceof GpuJsKernels) {
		const why = ResidentMamba.unsupported(checkpoint.config);
		if (!why) return ResidentMamba.create(checkpoint, new WebGpuRunner(kernels.gpu), kernels);
		notes.push(`${checkpoint.name}: not GPU-resident (${why}); running kernel by kernel`);
	}
	return new Mamba(checkpoint, kernels);
}

/** `dir`: a checkpoint folder or a .gguf file. */
export async function openModel(dir: string, backend: BackendChoice | Kernels): Promise<Opened> {
	const checkpoint = loadModel(dir);
	const { kernels, notes } = typeof backend === 'string' ? await selectBackend(backend) : { kernels: backend, notes: [] };
	return { model: await buildModel(checkpoint, kernels, notes), kernels, notes };
}
