// mambabyte as a library (`import { load } from 'mambabyte'`): load a byte model and its drafter (a folder, a .gguf
// file or a Hugging Face Hub name), stream generation as the engine's events, score text in bits per byte, and hold
// a conversation whose state can be saved and restored. The `mambabyte` command is built on the same layer
// (app/), so a library call and the command with the same options give the same bytes. README "Library".
import { createReadStream, statSync } from 'node:fs';
import { Conversation } from './app/conversation.js';
import { openModels, type OpenedModels } from './app/open.js';
import { parseBackend } from './backend/select.js';
import { engineOptions, settingsWith, type BackendChoice, type GenerationSettings } from './app/options.js';
import { DEFAULT_SCORING, scoreSource, type ScoringSettings } from './app/score.js';
import { DEFAULT_MODEL, defaultDrafter, resolveSources, type SourceLabels } from './app/sources.js';
import type { GenerationEvent, GenerationStats, PerplexityEvent, PerplexityResult } from './engine/events.js';
import { generate } from './engine/generate.js';
import { UserError } from './errors.js';
import type { MambaConfig } from './model/types.js';

export { Conversation } from './app/conversation.js';
export { DEFAULT_SETTINGS, parseAccept } from './app/options.js';
export type { AcceptRule, BackendChoice, GenerationSettings } from './app/options.js';
export type { ScoringSettings } from './app/score.js';
export { DEFAULT_DRAFT, DEFAULT_MODEL } from './app/sources.js';
export type { GenerationEvent, GenerationStats, PerplexityResult, SpeculativeStats } from './engine/events.js';
export type { MambaConfig } from './model/types.js';
export { UsageError, UserError } from './errors.js';

export interface LoadOptions {
	/** Checkpoint folder, .gguf file, or hub repo ORG/NAME[@REVISION] (default: the shipped byte model). */
	model?: string;
	/** Which .gguf of a hub repo that holds several. */
	modelFile?: string;
	/** The subword drafter, the same kinds of source; null = plain decoding (default: the shipped drafter). */
	drafter?: string | null;
	/** 'auto' (default): webgpu, then native, then gpu.js's cpu backend — the first that works here. */
	backend?: BackendChoice;
	/** Threads of the native backend (default: MAMBABYTE_THREADS or every CPU); read when it first loads. */
	threads?: number;
	/** A progress bar per downloaded hub file on stderr (default off). */
	progress?: boolean;
	/** Receives notes: backend choices, downloads. */
	log?: (message: string) => void;
}

/** Options of one generation: any knob of GenerationSettings (the rest take their defaults), and a stop signal. */
export type GenerateOptions = Partial<GenerationSettings> & { signal?: AbortSignal };

/** Options of one scoring pass. */
export type ScoreOptions = Partial<ScoringSettings> & { name?: string };

export interface Completion {
	bytes: Uint8Array; // exactly the committed bytes
	text: string; // the bytes as UTF-8 (invalid sequences as U+FFFD)
	reason: 'max-bytes' | 'stop' | 'aborted';
	stats: GenerationStats;
}

const LABELS: SourceLabels = { model: 'model', drafter: 'drafter' };
const toBytes = (x: string | Uint8Array) => (typeof x === 'string' ? new TextEncoder().encode(x) : x);

/** Drain a stream of generation events into the text it committed. */
export async function collect(events: AsyncIterable<GenerationEvent>): Promise<Completion> {
	const parts: Uint8Array[] = [];
	for await (const ev of events) {
		if (ev.type === 'commit') parts.push(ev.bytes);
		if (ev.type === 'done') {
			const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
			let at = 0;
			for (const p of parts) bytes.set(p, (at += p.length) - p.length);
			return { bytes, text: new TextDecoder().decode(bytes), reason: ev.reason, stats: ev.stats };
		}
	}
	throw new Error('internal: the generation ended without a done event');
}

/** A loaded byte model (and drafter) on one backend. */
export class MambaByte {
	/** @internal use load() */
	constructor(private readonly opened: OpenedModels) {}

	/** The checkpoint's short name (folder or file name). */
	get name(): string {
		return this.opened.model.checkpoint.name;
	}
	/** The backend the model runs on: webgpu, native, cpu, webasm or headlessgl. */
	get backend(): string {
		return this.opened.kernels.name;
	}
	/** The drafter's name, or null without one. */
	get drafter(): string | null {
		return this.opened.drafter?.name ?? null;
	}
	get config(): MambaConfig {
		return this.opened.model.config;
	}
	/** Why other backends were skipped, and other notes from loading. */
	get notes(): readonly string[] {
		return this.opened.notes;
	}

	/**
	 * Continue `prompt` (an empty one is fed as "\n"): the engine's events — 'start', 'draft' (proposed, not final),
	 * 'commit' (final bytes, in order), 'reject', 'stats', and 'done' last. Greedy with accept 'exact' gives the
	 * same bytes with or without the drafter.
	 */
	generate(prompt: string | Uint8Array, o: GenerateOptions = {}): AsyncGenerator<GenerationEvent> {
		const { signal, ...settings } = o;
		return generate(this.opened.model, toBytes(prompt), engineOptions(settingsWith(settings), signal), this.opened.drafter);
	}

	/** generate(), collected. */
	complete(prompt: string | Uint8Array, o: GenerateOptions = {}): Promise<Completion> {
		return collect(this.generate(prompt, o));
	}

	/** Bits per byte of `input` (the first byte is context only), with word perplexity and, on request, a curve. */
	score(input: string | Uint8Array, o: ScoreOptions = {}): Promise<PerplexityResult> {
		const bytes = toBytes(input);
		return this.finish(this.scoring(o.name ?? 'input', bytes.length, (async function* () { yield bytes; })(), o));
	}

	/** score() of a file, read in pieces (memory stays flat however large it is). */
	scoreFile(path: string, o: ScoreOptions = {}): Promise<PerplexityResult> {
		let size: number;
		try {
			size = statSync(path).size;
		} catch {
			throw new UserError(`${path}: no such file`);
		}
		return this.finish(this.scoring(o.name ?? path, size, createReadStream(path, { highWaterMark: 1 << 16 }), o));
	}

	/** The scoring events of an input as they come (progress every few KB, then the result). */
	scoring(name: string, size: number | null, source: AsyncIterable<Uint8Array>, o: Partial<ScoringSettings> = {}): AsyncGenerator<PerplexityEvent, PerplexityResult> {
		return scoreSource(this.opened.model, name, size, source, { ...DEFAULT_SCORING, ...o });
	}

	/** A conversation in the recurrent state: append text, generate, saveState() / restoreState(). */
	session(): Conversation {
		return new Conversation(this.opened);
	}

	private async finish(events: AsyncGenerator<PerplexityEvent, PerplexityResult>): Promise<PerplexityResult> {
		for (;;) {
			const n = await events.next();
			if (n.done) return n.value;
		}
	}
}

/** Load a byte model and its drafter (downloading hub names once into the Hugging Face cache). */
export async function load(o: LoadOptions = {}): Promise<MambaByte> {
	const given = {
		model: o.model ?? DEFAULT_MODEL,
		modelFile: o.modelFile,
		drafter: o.drafter === undefined ? defaultDrafter() : o.drafter,
		backend: parseBackend(o.backend ?? 'auto'),
		threads: o.threads ?? null,
	};
	const sources = await resolveSources(given, { labels: LABELS, progress: o.progress, log: o.log });
	const opened = await openModels(sources, LABELS);
	for (const n of opened.notes) o.log?.(n);
	return new MambaByte(opened);
}
