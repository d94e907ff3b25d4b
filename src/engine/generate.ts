// Byte generation: plain and speculative, as a stream of GenerationEvents (events.ts).
//
// API (what the CLI and the chat UI use):
//
//   generate(model, prompt, opts, drafter?)  → AsyncGenerator<GenerationEvent>
//       One-shot: a fresh Session, the prompt fed in one chunked forward, then bytes. An empty prompt is not an
//       empty context — the model needs a byte to predict from — so it is fed as "\n" (a text start); the start
//       event still reports promptBytes 0.
//
//   const s = new Session(model, drafter?)    a conversation held in the recurrent state (its size is fixed)
//   await s.append(bytes, signal?)            feed new text (user turn, template); chunked, abortable
//   for await (const ev of s.generate(opts))  continue from everything appended/generated so far
//   const snap = s.snapshot(); s.restore(snap)                in memory (cheap: the state, not the text)
//   encodeSnapshot(snap) / decodeSnapshot(bytes)              to and from a file (/save, /load)
//   s.reset()                                 back to an empty context
//   s.position  bytes consumed so far; s.stateBytes  memory the context costs (model + drafter state)
//
// opts (GenerateOptions) is a subset of the CLI's GenerationOptions: maxBytes, temperature, topK, topP, seed, stop,
// utf8, accept, draftSubwords, plus signal (AbortSignal: ends with done 'aborted'), statsIntervalMs, and the
// speculative schedule knobs resume and draftConfidence (below).
// Events: 'start'; 'draft' (proposed bytes, speculative only); 'commit' (final bytes, source 'draft' or 'model');
// 'reject' (how many drafted bytes were dropped); 'stats' every statsIntervalMs; 'done' (reason, final stats).
// Every committed byte is final: the bytes of all commits, in order, are the output.
// The session is consistent at every yield, so a consumer may stop iterating at any point and generate again.
//
// Speculative rounds (DESIGN.md §6; see speculative.ts for the parts): the drafter drafts m subwords from the
// committed text, the byte model scores pending + drafted bytes in ONE forward from its state, the accept rule keeps a
// prefix, the state is rolled back to the kept bytes, then the byte at the bifurcation point is drawn (the replacement
// from the residual in exact mode); when every drafted byte was kept a bonus byte is drawn from the last position
// for free. A committed byte the state has not consumed yet is "pending": it is fed with the next forward (the next
// verify pass or byte step), so a round costs one verifier forward.
//
// Schedule after a rejection. The paper lets the byte model decode alone until it emits a boundary byte
// (speculative.ts isBoundaryByte: ASCII whitespace and punctuation) so that the drafter is not conditioned on half a
// word. Here the drafter re-derives the unfinished word itself (token healing, speculative.ts), so that reason is gone,
// and drafting again at once is faster: on the shipped pair (cpu, native kernels, greedy, 4 prompts × 300 bytes)
// acceptance stays ~0.74-0.81 either way, while the byte steps spent waiting for a boundary cost more than the
// drafter's calls. Default resume: 'draft'; resume: 'boundary' gives the paper's schedule. When the drafter has no
// proposal (nothing consistent with the text), the byte model decodes to the next boundary byte before drafting again.
// A round also stops drafting early once the drafter's own probability of its proposal drops below draftConfidence
// (0.05): long unlikely drafts make the verify pass longer (dearer on CPUs, where cost grows with the bytes) for bytes
// that are mostly rejected.
import { Mamba } from '../model/mamba.js';
import { MambaState } from '../model/state.js';
import type { LanguageModel, ModelState } from '../model/types.js';
import type { GenerationEvent, GenerationStats, SpeculativeStats } from './events.js';
import { RecentBytes, Sampler, StopMatcher, type SamplingOptions } from './sampling.js';
import { Utf8Validator } from './utf8.js';
import {
	abortError, acceptByte, breathe, ByteBuffer, DraftContext, isBoundaryByte, RecordingKernels, replacementByte,
	type AcceptRule, type Drafter, type DraftSnapshot,
} from './speculative.js';

export interface GenerateOptions extends SamplingOptions {
	maxBytes: number;
	stop: readonly string[];
	utf8: boolean; // mask bytes that would make the text invalid UTF-8 (utf8.ts)
	accept?: AcceptRule; // default exact
	draftSubwords?: number; // subwords per draft (default 3); 0 = no drafting even with a drafter
	signal?: AbortSignal;
	statsIntervalMs?: number; // default 250
	/** After a rejection: draft again at once ('draft', default) or let the byte model decode to a boundary byte first
	 * ('boundary', the paper's schedule). See the header for why the default differs from the paper. */
	resume?: 'draft' | 'boundary';
	/** Stop drafting a round early when the drafter's probability of its proposal falls below this (default 0.05). */
	draftConfidence?: number;
}

/** Default of GenerateOptions.draftConfidence (measured: see the header). */
export const DRAFT_CONFIDENCE = 0.05;

const PREFILL_CHUNK = 1024; // bytes per forward while feeding text (bounds the (T, V) logits array)

const NEWLINE = new Uint8Array([0x0a]);

export interface SessionSnapshot {
	model: string; // checkpoint name + shape, checked on restore
	state: ModelState;
	pending: Uint8Array;
	logits: Float32Array | null;
	utf8: { need: number; lo: number; hi: number };
	draft: DraftSnapshot | null;
	promptBytes: number;
	recent?: Uint8Array; // the last context bytes, for the repeat penalty (in memory only; not in encodeSnapshot)
}

export class Session {
	/** The byte model as this session runs it (over recording kernels when a drafter is attached). */
	readonly model: LanguageModel;
	readonly drafter: Drafter | null;
	private readonly recorder: RecordingKernels | null;
	private readonly state: ModelState;
	private readonly pending = new ByteBuffer(); // committed bytes not yet consumed by the state
	private logits: Float32Array | null = null; // next-byte logits (V), valid when nothing is pending
	private readonly utf8 = new Utf8Validator(); // over the whole context
	private readonly recent = new RecentBytes(); // the context's last bytes, for --repeat-penalty
	private readonly draft: DraftContext | null;
	private promptBytes = 0; // bytes appended since the last generate()

	constructor(model: LanguageModel, drafter: Drafter | null = null) {
		this.drafter = drafter;
		if (drafter && model instanceof Mamba) {
			// A view of the same weights on recording kernels, for rollback by replay (speculative.ts).
			this.recorder = new RecordingKernels(model.kernels);
			this.model = new Mamba(model.checkpoint, this.recorder, model.chunk);
			this.draft = new DraftContext(drafter);
		} else {
			// A device-resident model rolls back by snapshot and replay (its state is copied on the device).
			this.recorder = null;
			this.model = model;
			this.draft = drafter ? new DraftContext(drafter) : null;
		}
		this.state = this.model.newState();
	}

	/** Bytes consumed so far (appended and generated). */
	get position(): number {
		return this.state.position + this.pending.length;
	}

	/** Memory the whole context costs, however long: the byte model's state plus the drafter's. */
	get stateBytes(): number {
		return this.state.byteLength + (this.draft?.stateBytes ?? 0);
	}

	private get empty(): boolean {
		return this.state.position === 0 && this.pending.length === 0;
	}

	/** Feed text (a prompt, a user turn) into the context. Throws an AbortError when signal aborts midway. */
	async append(bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
		await this.feedContext(bytes, signal);
		this.promptBytes += bytes.length;
	}

	private async feedContext(bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
		this.pending.pushAll(bytes);
		this.utf8.pushAll(bytes);
		this.recent.pushAll(bytes);
		this.draft?.append(bytes);
		await this.flush(signal);
		await this.draft?.sync(signal);
	}

	/** Consume the pending bytes; afterwards `logits` holds the next-byte logits. */
	private async flush(signal?: AbortSignal): Promise<Float32Array> {
		const V = this.model.config.vocabSize;
		while (this.pending.length > 0) {
			await breathe();
			if (signal?.aborted) throw abortError();
			const n = Math.min(PREFILL_CHUNK, this.pending.length);
			const part = this.pending.view().slice(0, n);
			const rows = await this.model.forward(part, this.state);
			this.logits = rows.slice((n - 1) * V, n * V);
			this.pending.shift(n);
		}
		if (!this.logits) throw new Error('no context: append text first');
		return this.logits;
	}

	reset(): void {
		this.state.copyFrom(this.model.newState());
		this.pending.clear();
		this.logits = null;
		this.utf8.copyFrom(new Utf8Validator());
		this.recent.clear();
		if (this.draft) this.draft.restore({ state: this.drafter!.model.newState(), logits: null, unfed: new Uint8Array(0), fed: false });
		this.promptBytes = 0;
	}

	snapshot(): SessionSnapshot {
		return {
			model: modelKey(this.model),
			state: this.state.clone(),
			pending: this.pending.view().slice(),
			logits: this.logits?.slice() ?? null,
			utf8: { need: this.utf8.need, lo: this.utf8.lo, hi: this.utf8.hi },
			draft: this.draft?.snapshot() ?? null,
			promptBytes: this.promptBytes,
			recent: this.recent.last(Infinity),
		};
	}

	/** snapshot() with the states copied to the host, for saving (encodeSnapshot). */
	async hostSnapshot(): Promise<SessionSnapshot> {
		const s = this.snapshot();
		const host = { ...s, state: await s.state.toHost(), draft: s.draft ? { ...s.draft, state: await s.draft.state.toHost() } : null };
		s.state.free?.();
		s.draft?.state.free?.();
		return host;
	}

	restore(s: SessionSnapshot): void {
		if (s.model !== modelKey(this.model)) throw new Error(`snapshot is of model ${s.model}, not ${modelKey(this.model)}`);
		this.state.copyFrom(s.state);
		this.pending.clear();
		this.pending.pushAll(s.pending);
		this.logits = s.logits?.slice() ?? null;
		Object.assign(this.utf8, s.utf8);
		this.recent.copyFrom(s.recent ?? new Uint8Array(0));
		if (this.draft) {
			if (s.draft) this.draft.restore(s.draft);
			else {
				// Saved without a drafter: the drafter starts from scratch (it only affects speed).
				this.draft.restore({ state: this.drafter!.model.newState(), logits: null, unfed: new Uint8Array(0), fed: false });
			}
		}
		this.promptBytes = s.promptBytes;
	}

	/** Continue the context. See the file header for options and events. */
	async *generate(opts: GenerateOptions): AsyncGenerator<GenerationEvent> {
		yield* this.run(opts, null);
	}

	/** @internal generate() with the prompt size reported by the one-shot generate(). */
	async *run(opts: GenerateOptions, promptBytesOverride: number | null): AsyncGenerator<GenerationEvent> {
		const signal = opts.signal;
		const V = this.model.config.vocabSize;
		const sampler = new Sampler(opts, this.recent);
		const stop = new StopMatcher(opts.stop);
		const mask = opts.utf8 ? this.utf8 : null;
		const rule: AcceptRule = opts.accept ?? { kind: 'exact' };
		const m = opts.draftSubwords ?? 3;
		const speculative = this.draft !== null && m > 0;
		const interval = opts.statsIntervalMs ?? 250;
		const resume = opts.resume ?? 'draft';
		const minConfidence = opts.draftConfidence ?? DRAFT_CONFIDENCE;
		const promptBytes = promptBytesOverride ?? this.promptBytes;
		this.promptBytes = 0;

		const spec: SpeculativeStats | null = speculative
			? { drafted: 0, tested: 0, accepted: 0, acceptanceRate: 0, meanAcceptedRun: 0, verifyPasses: 0 }
			: null;
		let generated = 0;
		const t0 = performance.now();
		let lastStats = t0;
		const stats = (): GenerationStats => {
			const seconds = (performance.now() - t0) / 1000;
			if (spec) {
				spec.acceptanceRate = spec.tested > 0 ? spec.accepted / spec.tested : 0;
				spec.meanAcceptedRun = spec.verifyPasses > 0 ? spec.accepted / spec.verifyPasses : 0;
			}
			return {
				promptBytes, generatedBytes: generated, seconds,
				bytesPerSecond: seconds > 0 ? generated / seconds : 0,
				speculative: spec ? { ...spec } : null,
			};
		};

		yield {
			type: 'start', promptBytes, backend: this.model.kernels.name, model: this.model.checkpoint.name,
			draft: speculative ? this.drafter!.name : null, stateBytes: this.stateBytes,
		};
		let reason: 'max-bytes' | 'stop' | 'aborted' = 'max-bytes';
		let stopped = false;
		/** Make byte b part of the text; true when a stop string ends with it. */
		const commit = (b: number): boolean => {
			this.utf8.push(b);
			this.recent.push(b);
			this.draft?.push(b);
			generated++;
			return stop.push(b);
		};

		try {
			if (this.empty) await this.feedContext(NEWLINE, signal);
			let phase: 'draft' | 'bytes' = speculative ? 'draft' : 'bytes';
			while (generated < opts.maxBytes && !stopped) {
				await breathe();
				if (signal?.aborted) throw abortError();
				if (spec && phase === 'draft') {
					await this.draft!.sync(signal);
					const { proposal } = await this.draft!.draft(m, opts.maxBytes - generated, minConfidence);
					if (proposal.length === 0) {
						phase = 'bytes';
						continue;
					}
					yield { type: 'draft', bytes: proposal };
					spec.drafted += proposal.length;
					const r = await this.verify(proposal, rule, sampler, mask, opts.maxBytes - generated, commit, spec);
					if (r.accepted.length > 0) yield { type: 'commit', bytes: r.accepted, source: 'draft' };
					if (r.accepted.length < proposal.length) yield { type: 'reject', count: proposal.length - r.accepted.length };
					if (r.extra !== null) yield { type: 'commit', bytes: Uint8Array.of(r.extra), source: 'model' };
					stopped = r.stopped;
					phase = resume === 'boundary' && r.rejected && r.extra !== null && !isBoundaryByte(r.extra) ? 'bytes' : 'draft';
				} else {
					const logits = await this.flush(signal);
					const d = sampler.distribution(logits, 0, V, mask);
					const b = sampler.sample(d);
					this.pending.push(b);
					this.logits = null;
					stopped = commit(b);
					yield { type: 'commit', bytes: Uint8Array.of(b), source: 'model' };
					if (spec && isBoundaryByte(b)) phase = 'draft';
				}
				if (stopped) reason = 'stop';
				const now = performance.now();
				if (now - lastStats >= interval) {
					lastStats = now;
					yield { type: 'stats', stats: stats() };
				}
			}
		} catch (e) {
			if (!(e instanceof Error && e.name === 'AbortError')) throw e;
			reason = 'aborted';
		}
		yield { type: 'done', reason, stats: stats() };
	}

	/**
	 * One verify pass: score pending + proposal in one forward, keep the accepted prefix, roll back, draw the byte
	 * after it. Commits the bytes (through `commit`) and leaves the session consistent.
	 */
	private async verify(
		proposal: Uint8Array, rule: AcceptRule, sampler: Sampler, mask: Utf8Validator | null,
		budget: number, commit: (b: number) => boolean, spec: SpeculativeStats,
	): Promise<{ accepted: Uint8Array; extra: number | null; rejected: boolean; stopped: boolean }> {
		const V = this.model.config.vocabSize;
		const p = this.pending.length;
		const tokens = new Uint8Array(p + proposal.length);
		tokens.set(this.pending.view());
		tokens.set(proposal, p);
		const startLogits = this.logits;
		const startPosition = this.state.position;
		const recorder = this.recorder;
		// Until the records have been seen to cover a forward, also keep a plain snapshot to fall back on
		// (always, for a device-resident model: there the snapshot is a copy on the device).
		const snapshot = recorder?.trusted ? null : this.state.clone();
		recorder?.start();
		let rows: Float32Array;
		try {
			rows = await this.model.forward(tokens, this.state);
		} catch (e) {
			recorder?.clear();
			throw e;
		}
		recorder?.stop();
		if (recorder && snapshot && !recorder.check(this.state as MambaState, tokens.length)) recorder.clear();
		spec.verifyPasses++;
		// Distribution of proposal[i] given the text before it.
		const dist = (i: number) =>
			p + i === 0 ? sampler.distribution(startLogits!, 0, V, mask) : sampler.distribution(rows, p + i - 1, V, mask);

		let k = 0;
		let stopped = false;
		let rejected = false;
		let extra: number | null = null;
		for (let i = 0; i < proposal.length && k < budget && !stopped; i++) {
			const d = dist(i);
			spec.tested++;
			if (!acceptByte(rule, sampler, d, proposal[i])) {
				rejected = true;
				extra = replacementByte(rule, sampler, d, proposal[i]);
				break;
			}
			spec.accepted++;
			k++;
			stopped = commit(proposal[i]);
		}
		if (!stopped && !rejected && k === proposal.length && k < budget) {
			extra = sampler.sample(dist(proposal.length)); // bonus byte from the last position
		}

		// Bring the state to exactly the committed bytes: tokens[0 .. p + k).
		const j = p + k;
		if (j < tokens.length) {
			const ok = recorder ? await recorder.rollback(this.state as MambaState, startPosition, tokens.length, j) : false;
			if (!ok) {
				if (!snapshot) throw new Error('internal: verifier rollback records are incomplete');
				this.state.copyFrom(snapshot);
				if (j > 0) await this.model.forward(tokens.subarray(0, j), this.state);
			}
		}
		recorder?.clear();
		snapshot?.free?.();
		this.pending.clear();
		if (extra !== null) {
			this.pending.push(extra);
			this.logits = null;
			if (commit(extra)) stopped = true;
		} else {
			this.logits = j === 0 ? startLogits : rows.slice((j - 1) * V, j * V);
		}
		return { accepted: proposal.slice(0, k), extra, rejected, stopped };
	}
}

/** Identifies a model for snapshots: name, shape, and a fingerprint of sampled weights. */
function modelKey(m: LanguageModel): string {
	const c = m.config;
	const w = m.checkpoint.weights;
	let h = 0x811c9dc5;
	const mix = (a: Float32Array) => {
		const bits = new Uint32Array(a.buffer, a.byteOffset, a.length);
		const step = Math.max(1, Math.floor(a.length / 512));
		for (let i = 0; i < a.length; i += step) h = Math.imul(h ^ bits[i], 0x01000193) >>> 0;
	};
	mix(w.embedding);
	mix(w.normF);
	if (w.lmHead) mix(w.lmHead);
	const fp = h.toString(16).padStart(8, '0');
	return `${m.checkpoint.name} d${c.dModel} l${c.nLayer} e${c.dInner} n${c.dState} k${c.dConv} v${c.vocabSize} #${fp}`;
}

/** One-shot generation from a prompt (see the file header). */
export async function* generate(
	model: LanguageModel, prompt: Uint8Array, opts: GenerateOptions, drafter: Drafter | null = null,
): AsyncGenerator<GenerationEvent> {
	const session = new Session(model, drafter);
	try {
		await session.append(prompt.length > 0 ? prompt : NEWLINE, opts.signal);
	} catch (e) {
		if (!(e instanceof Error && e.name === 'AbortError')) throw e;
		const stats: GenerationStats = {
			promptBytes: prompt.length, generatedBytes: 0, seconds: 0, bytesPerSecond: 0,
			speculative: null,
		};
		yield {
			type: 'start', promptBytes: prompt.length, backend: session.model.kernels.name,
			model: session.model.checkpoint.name, draft: drafter?.name ?? null, stateBytes: session.stateBytes,
		};
		yield { type: 'done', reason: 'aborted', stats };
		return;
	}
	yield* session.run(opts, prompt.length);
}

// ---------------------------------------------------------------------------------------------------------------
// Snapshot files: "MBSNAP1\n", a little-endian u32 header length, a JSON header, then the float arrays in order.

const MAGIC = new TextEncoder().encode('MBSNAP1\n');

export function encodeSnapshot(s: SessionSnapshot): Uint8Array {
	const host = (st: ModelState) => {
		if (!(st instanceof MambaState)) throw new Error('internal: encode a host snapshot (Session.hostSnapshot)');
		return st;
	};
	const state = host(s.state);
	const draftState = s.draft ? host(s.draft.state) : null;
	const arrays: Float32Array[] = [];
	const push = (a: Float32Array) => arrays.push(a) - 1;
	const header = {
		model: s.model,
		position: s.state.position,
		conv: state.conv.map(push),
		ssm: state.ssm.map(push),
		pending: Array.from(s.pending),
		logits: s.logits ? push(s.logits) : null,
		utf8: s.utf8,
		promptBytes: s.promptBytes,
		draft: s.draft
			? {
				position: s.draft.state.position,
				conv: draftState!.conv.map(push),
				ssm: draftState!.ssm.map(push),
				logits: s.draft.logits ? push(s.draft.logits) : null,
				unfed: Array.from(s.draft.unfed),
				fed: s.draft.fed,
			}
			: null,
		lengths: [] as number[],
	};
	header.lengths = arrays.map((a) => a.length);
	const json = new TextEncoder().encode(JSON.stringify(header));
	const floats = arrays.reduce((n, a) => n + a.length, 0);
	const pad = (4 - ((MAGIC.length + 4 + json.length) % 4)) % 4;
	const out = new Uint8Array(MAGIC.length + 4 + json.length + pad + floats * 4);
	out.set(MAGIC);
	new DataView(out.buffer).setUint32(MAGIC.length, json.length + pad, true);
	out.set(json, MAGIC.length + 4);
	out.fill(0x20, MAGIC.length + 4 + json.length, MAGIC.length + 4 + json.length + pad);
	let at = MAGIC.length + 4 + json.length + pad;
	const dv = new DataView(out.buffer);
	for (const a of arrays) {
		for (let i = 0; i < a.length; i++, at += 4) dv.setFloat32(at, a[i], true);
	}
	return out;
}

export function decodeSnapshot(bytes: Uint8Array): SessionSnapshot {
	for (let i = 0; i < MAGIC.length; i++) if (bytes[i] !== MAGIC[i]) throw new Error('not a mambabyte session snapshot');
	const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
	const hlen = dv.getUint32(MAGIC.length, true);
	type H = {
		model: string; position: number; conv: number[]; ssm: number[]; pending: number[]; logits: number | null;
		utf8: SessionSnapshot['utf8']; promptBytes: number; lengths: number[];
		draft: { position: number; conv: number[]; ssm: number[]; logits: number | null; unfed: number[]; fed: boolean } | null;
	};
	const h = JSON.parse(new TextDecoder().decode(bytes.subarray(MAGIC.length + 4, MAGIC.length + 4 + hlen))) as H;
	const arrays: Float32Array[] = [];
	let at = MAGIC.length + 4 + hlen;
	for (const n of h.lengths) {
		if (at + n * 4 > bytes.length) throw new Error('session snapshot is truncated');
		const a = new Float32Array(n);
		for (let i = 0; i < n; i++, at += 4) a[i] = dv.getFloat32(at, true);
		arrays.push(a);
	}
	const get = (i: number) => arrays[i];
	return {
		model: h.model,
		state: new MambaState(h.conv.map(get), h.ssm.map(get), h.position),
		pending: Uint8Array.from(h.pending),
		logits: h.logits === null ? null : get(h.logits),
		utf8: h.utf8,
		promptBytes: h.promptBytes,
		draft: h.draft
			? {
				state: new MambaState(h.draft.conv.map(get), h.draft.ssm.map(get), h.draft.position),
				logits: h.draft.logits === null ? null : get(h.draft.logits),
				unfed: Uint8Array.from(h.draft.unfed),
				fed: h.draft.fed,
			}
			: null,
	};
}
