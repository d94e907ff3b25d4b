// Where models come from: the shipped pair under checkpoints/, local folders and .gguf files, and Hugging Face Hub
// names (fetched into the standard cache by hub/). resolveSources() turns every source into a local path before
// anything is loaded, so a missing folder or a failed download is one line before any model memory is spent.
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../errors.js';
import type { ModelSources } from './options.js';

/** The package root (bin/, dist/, checkpoints/ live under it). */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const DEFAULT_MODEL = path.join(PACKAGE_ROOT, 'checkpoints', 'byte-model');
export const DEFAULT_DRAFT = path.join(PACKAGE_ROOT, 'checkpoints', 'subword-drafter');

/** How errors name the sources: the CLI's flags, or the library's option names. */
export interface SourceLabels {
	model: string;
	drafter: string;
}
export const FLAG_LABELS: SourceLabels = { model: '--model', drafter: '--draft' };

/** A folder that holds a checkpoint: config.json with HF/mamba_ssm weights, or a model.gguf (the shipped layout). */
export const isCheckpointDir = (dir: string) => existsSync(path.join(dir, 'config.json')) || existsSync(path.join(dir, 'model.gguf'));

/**
 * The drafting policy: the shipped drafter unless one is named or drafting is turned off. It drafts for any byte
 * model (drafts are bytes, whatever model verifies them), and the engine drafts only as much as measurably pays on
 * the backend and model pair at hand (engine/adaptive.ts), down to not at all, so it is on by default everywhere.
 */
export function defaultDrafter(): string | null {
	return isCheckpointDir(DEFAULT_DRAFT) ? DEFAULT_DRAFT : null;
}

/** ORG/NAME[/FILE.gguf][@REVISION] that is not a local path: a Hugging Face Hub repo (src/hub). */
export function isHubName(value: string): boolean {
	return !existsSync(value) && !path.isAbsolute(value) && !value.startsWith('.') &&
		/^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*(\/[^@]+\.gguf)?(@[\w./-]+)?$/.test(value);
}

/** A local checkpoint: a folder, or a single-file checkpoint (.gguf). A missing one is a file failure: exit 1. */
export function checkLocal(dir: string, label: string): string {
	if (!existsSync(dir)) throw new UserError(`${label} ${dir}: no such folder${isHubName(dir) ? '' : ' (expected a checkpoint folder, a .gguf file or a hub repo ORG/NAME)'}`);
	if (!statSync(dir).isDirectory() && !dir.toLowerCase().endsWith('.gguf')) {
		throw new UserError(`${label} ${dir}: not a folder (expected a checkpoint folder with config.json, or a .gguf file)`);
	}
	return dir;
}

export interface ResolveOptions {
	labels?: SourceLabels;
	progress?: boolean; // a progress bar per downloaded file on stderr
	log?: (message: string) => void;
}

/** The local path of one source: checked when local, downloaded (once, then cached) when a hub name. */
export async function resolveSource(value: string, label: string, o: ResolveOptions & { file?: string } = {}): Promise<string> {
	if (!isHubName(value)) return checkLocal(value, label);
	const { resolveHubModel } = await import('../hub/index.js');
	return resolveHubModel(value, { file: o.file, progress: o.progress ?? false, log: o.log });
}

/**
 * The native backend reads its thread count when its addon loads, which is when a backend is first chosen; the
 * variable is also what a user sets without a flag.
 */
export function applyThreads(threads: number | null): void {
	if (threads !== null) process.env.MAMBABYTE_THREADS = String(threads);
}

/** The sources with hub names replaced by local snapshots and local paths checked (the shipped drafter is trusted). */
export async function resolveSources<T extends Pick<ModelSources, 'model' | 'modelFile' | 'threads'> & { drafter?: string | null }>(
	o: T, r: ResolveOptions = {},
): Promise<T> {
	applyThreads(o.threads);
	const labels = r.labels ?? FLAG_LABELS;
	const model = await resolveSource(o.model, labels.model, { ...r, file: o.modelFile });
	const drafter = typeof o.drafter === 'string' && o.drafter !== DEFAULT_DRAFT ? await resolveSource(o.drafter, labels.drafter, r) : o.drafter;
	return { ...o, model, drafter };
}
