// Open a checkpoint folder on a backend: load and validate the weights, pick the kernels, build the model.
import { loadCheckpoint } from '../checkpoint/load.js';
import { selectBackend } from '../backend/select.js';
import type { BackendChoice, Kernels } from '../backend/types.js';
import { Mamba } from './mamba.js';

export interface Opened {
	model: Mamba;
	kernels: Kernels;
	notes: string[]; // backend selection notes, for --verbose
}

export async function openModel(dir: string, backend: BackendChoice | Kernels): Promise<Opened> {
	const checkpoint = loadCheckpoint(dir);
	const { kernels, notes } = typeof backend === 'string' ? await selectBackend(backend) : { kernels: backend, notes: [] };
	return { model: new Mamba(checkpoint, kernels), kernels, notes };
}
