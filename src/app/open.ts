// Opening models: load and validate a checkpoint, pick the kernels, build the forward, and pair a byte model with its
// drafter (on the same backend, but native beside a GPU-resident byte model: drafterKernels). On webgpu the model is
// the GPU-resident forward (model/resident.ts: weights, activations and state stay on the device, one submission per
// forward); on every other backend it is the host forward (model/mamba.ts) over the kernels.
import { GpuJsKernels } from '../backend/gpujs.js';
import { NativeKernels, nativeAvailable } from '../backend/native.js';
import { WebGpuRunner } from '../backend/resident/webgpu.js';
import { selectBackend } from '../backend/select.js';
import type { BackendChoice, Kernels } from '../backend/types.js';
import { loadModel } from '../checkpoint/load.js';
import { Drafter } from '../engine/drafter.js';
import { UserError } from '../errors.js';
import { Mamba } from '../model/mamba.js';
import { ResidentMamba } from '../model/resident.js';
import type { Checkpoint, LanguageModel, Weight } from '../model/types.js';
import { dequantNote } from '../model/weights.js';
import type { ModelSources } from './options.js';
import { applyThreads, FLAG_LABELS, type SourceLabels } from './sources.js';

export interface Opened {
	model: LanguageModel;
	kernels: Kernels;
	notes: string[]; // backend selection notes, for --verbose
}

/** A byte model and its drafter, opened on one backend. */
export interface OpenedModels extends Opened {
	drafter: Drafter | null;
}

/** The model for a checkpoint on these kernels: resident on webgpu when its shapes allow, else the host forward. */
export async function buildModel(checkpoint: Checkpoint<Weight>, kernels: Kernels, notes: string[] = []): Promise<LanguageModel> {
	// the native kernels compute on the stored blocks (model/mamba.ts); every other backend takes float32
	const dq = kernels instanceof NativeKernels ? undefined : dequantNote(checkpoint.name, checkpoint.weights, kernels.name);
	if (dq) notes.push(dq);
	if (kernels.name === 'webgpu' && kernels instanceof GpuJsKernels) {
		const why = ResidentMamba.unsupported(checkpoint.config);
		if (!why) return ResidentMamba.create(checkpoint, new WebGpuRunner(kernels.gpu), kernels);
		notes.push(`${checkpoint.name}: not GPU-resident (${why}); running kernel by kernel`);
	}
	return new Mamba(checkpoint, kernels);
}

/** The checkpoint at a local path: a folder (safetensors, pytorch_model.bin, or model.gguf) or a .gguf file. */
export const openCheckpoint = (path: string): Checkpoint<Weight> => loadModel(path);

/** `path`: a checkpoint folder or a .gguf file, on a backend chosen now or on kernels already chosen. */
export async function openModel(path: string, backend: BackendChoice | Kernels): Promise<Opened> {
	const checkpoint = openCheckpoint(path);
	const { kernels, notes } = typeof backend === 'string' ? await selectBackend(backend) : { kernels: backend, notes: [] };
	return { model: await buildModel(checkpoint, kernels, notes), kernels, notes };
}

/** The drafter of a built subword model (its checkpoint folder holds tokenizer.json). */
export const drafterFor = (model: LanguageModel): Drafter => new Drafter(model, Drafter.tokenizerOf(model));

/** A subword drafter (a checkpoint folder with tokenizer.json) on these kernels. */
export async function openDrafter(path: string, kernels: Kernels): Promise<Drafter> {
	return drafterFor((await openModel(path, kernels)).model);
}

/** Generation and scoring read and predict bytes: a subword model is refused where a byte model belongs. */
export function checkByteModel(model: LanguageModel, source: string, labels: SourceLabels = FLAG_LABELS): void {
	if (model.checkpoint.tokenizerPath) {
		throw new UserError(`${labels.model} ${source}: this is a subword model (it has tokenizer.json); expected a byte model (use it as ${labels.drafter})`);
	}
	if (model.config.vocabSize < 256) throw new UserError(`${labels.model} ${source}: vocabulary of ${model.config.vocabSize}, a byte model needs 256`);
}

/**
 * The kernels a byte model's drafter runs on: the byte model's, except beside a GPU-resident byte model (webgpu),
 * where it runs native when the addon is built. A drafted subword on the GPU costs a pass list of its own whose fixed
 * cost a 2.8M model cannot amortise. Over eight H200 runs (sessions 5-8, README, Speed) the native drafter was
 * ahead in `top:3` in seven (1.03-2.62x against 0.94-2.50x) and at the chat's default, t 0.8 `exact`, ahead in five
 * and behind in one (0.88-1.01x against 0.83-1.02x); greedy `exact` was a draw (0.91-1.11x against 0.86-1.02x).
 */
export function drafterKernels(kernels: Kernels): Kernels {
	return kernels.name === 'webgpu' && nativeAvailable() ? NativeKernels.create() : kernels;
}

/** The byte model and (when a source is given) its drafter, from local sources (resolveSources). */
export async function openModels(s: Omit<ModelSources, 'modelFile'>, labels: SourceLabels = FLAG_LABELS): Promise<OpenedModels> {
	applyThreads(s.threads);
	const opened = await openModel(s.model, s.backend);
	checkByteModel(opened.model, s.model, labels);
	if (!s.drafter) return { ...opened, drafter: null };
	const kernels = drafterKernels(opened.kernels);
	if (kernels !== opened.kernels) opened.notes.push(`drafter: ${kernels.name} (beside the ${opened.kernels.name} byte model)`);
	return { ...opened, drafter: await openDrafter(s.drafter, kernels) };
}
