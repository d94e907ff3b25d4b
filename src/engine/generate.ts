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
//   encodeSnapshot(snap) / decodeSnapshot(bytes)              to and from a file (/save, /load; snapshot.ts)
//   s.reset()                                 back to an empty context
//   s.free()                                  give the states back (device memory now); the session is done
//   s.position  bytes consumed so far; s.stateBytes  memory the context costs (model + drafter state)
//
// opts (GenerateOptions, options.ts) holds maxBytes, temperature, topK, topP, seed, stop, utf8, accept,
// draftSubwords, signal (AbortSignal: ends with done 'aborted'), statsIntervalMs, the speculative schedule knobs
// (schedule, resume, draftConfidence; below) and profile (profile.ts).
// Events: 'start'; 'draft' (proposed bytes, speculative only); 'commit' (final bytes, source 'draft' or 'model');
// 'reject' (how many drafted bytes were dropped); 'stats' every statsIntervalMs; 'done' (reason, final stats).
// Every committed byte is final: the bytes of all commits, in order, are the output.
// The session is consistent at every yield, so a consumer may stop iterating at any point and generate again.
//
// Speculative rounds (docs/speculative.md): the drafter (drafter.ts) drafts from the committed text, the byte model scores
// pending + drafted bytes in ONE verify pass from its state (LanguageModel.verify), the accept rule (accept.ts) keeps
// a prefix, the model keeps the state of the kept bytes (its own rollback), then the byte at the bifurcation point is
// the one plain decoding emits there; when every drafted byte was kept a bonus byte is drawn from the last position
// for free. A committed byte the state has not consumed yet is "pending": it is fed with the next forward (the next
// verify pass or byte step), so a round costs one verifier forward. Every sampled byte is the Gumbel-max draw with
// its text position's noise (sampling.ts), so the exact rule gives plain decoding's text for the same seed, greedy or
// sampled; a sampled draft draws with the same noise from the drafter's byte distribution (accept.ts).
//
// How much to draft (schedule 'adaptive', the default; adaptive.ts): each round the schedule picks the number of
// subwords, or a stretch of plain bytes, by the measured bytes per second of each choice on this backend, model pair,
// rule and temperature. schedule 'fixed' always drafts draftSubwords subwords (tests, and experiments).
// After a rejection the drafter drafts again at once (resume 'draft'): it re-derives an unfinished word itself (token
// healing, drafter.ts); resume 'boundary' gives the paper's schedule instead, where the byte model decodes alone to
// the next boundary byte (accept.ts isBoundaryByte). When the drafter has no proposal, the byte model decodes one
// byte and the drafter tries again; after a second miss in a row it decodes to the next boundary byte.
// A round stops drafting early once the drafter's own probability of its proposal drops below
// draftConfidence (0.05): long unlikely drafts make the verify pass longer for bytes that are mostly rejected.
import type { LanguageModel, ModelState } from '../model/types.js';
import { isQMatrix, type QMatrix } from '../tensor/qmatrix.js';
import type { GenerationEvent, GenerationStats, SpeculativeStats } from './events.js';
import type { SessionSnapshot } from './snapshot.js';
import type { GenerateOptions } from './options.js';
import type { Profile } from './profile.js';
import { RecentBytes, Sampler, StopMatcher } from './sampling.js';
import { Utf8Validator } from './utf8.js';
import { ByteBuffer } from './byte-buffer.js';
import { DraftContext, type Draft, type Drafter } from './drafter.js';
import { acceptByte, isBoundaryByte, replacementByte, type AcceptRule } from './accept.js';
import { abortError, breathe } from './loop.js';
import { DraftSchedule, PLAIN_STRETCH } from './adaptive.js';

export type { GenerateOptions } from './options.js';

/** Default of GenerateOptions.draftConfidence (measured: see the header). */
export const DRAFT_CONFIDENCE = 0.05;
/** Default of GenerateOptions.draftSubwords. */
export const DRAFT_SUBWORDS = 3;

const PREFILL_CHUNK = 1024; // bytes per forward while feeding text (bounds the (T, V) logits array)

const NEWLINE = new Uint8Array([0x0a]);

export class Session {
	readonly drafter: Drafter | null;
	private readonly state: ModelState;
	private readonly pending = new ByteBuffer(); // committed bytes not yet consumed by the state
	private logits: Float32Array | null = null; // next-byte logits (V), valid when nothing is pending
	private readonly utf8 = new Utf8Validator(); // over the whole context
	private readonly recent = new RecentBytes(); // the context's last bytes, for --repeat-penalty
	private readonly draft: DraftContext | null;
	private promptBytes = 0; // bytes appended since the last generate()
	private prof: Profile | null = null; // the running generation's profile
	private freed = false;

	constructor(readonly model: LanguageModel, drafter: Drafter | null = null) {
		this.drafter = drafter;
		this.draft = drafter ? new DraftContext(drafter) : null;
		this.state = model.newState();
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
			this.logits = n === 1 ? rows : rows.slice((n - 1) * V, n * V);
			this.pending.shift(n);
		}
		if (!this.logits) throw new Error('no context: append text first');
		return this.logits;
	}

	reset(): void {
		const zero = this.model.newState();
		this.state.copyFrom(zero);
		zero.free();
		this.pending.clear();
		this.logits = null;
		this.utf8.copyFrom(new Utf8Validator());
		this.recent.clear();
		this.draft?.reset();
		this.promptBytes = 0;
	}

	/** The session's states copied (the caller owns them: freeSnapshot, or restore and then free). */
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
		try {
			return { ...s, state: await s.state.toHost(), draft: s.draft ? { ...s.draft, state: await s.draft.state.toHost() } : null };
		} finally {
			s.state.free();
			s.draft?.state.free();
		}
	}

	/** Continue from a snapshot (copied into this session's states: the snapshot stays the caller's). */
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
			else this.draft.reset(); // saved without a drafter: the drafter starts from scratch (it only affects speed)
		}
		this.promptBytes = s.promptBytes;
	}

	/** Give the byte model's and the drafter's states back; the session must not be used afterwards. */
	free(): void {
		if (this.freed) return;
		this.freed = true;
		this.state.free();
		this.draft?.free();
	}

	/** Bytes of text before the next byte: what the model consumed plus what it has still to consume. */
	private get textPosition(): number {
		return this.state.position + this.pending.length;
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
		const M = opts.draftSubwords ?? DRAFT_SUBWORDS;
		const speculative = this.draft !== null && M > 0;
		const interval = opts.statsIntervalMs ?? 250;
		const resume = opts.resume ?? 'draft';
		const minConfidence = opts.draftConfidence ?? DRAFT_CONFIDENCE;
		// a sampled draft (the Gumbel coupling: accept.ts) under the exact rule; greedy drafts otherwise
		const draftTemperature = rule.kind === 'exact' && !sampler.greedy ? opts.temperature : 0;
		const schedule = speculative && (opts.schedule ?? 'adaptive') === 'adaptive'
			? DraftSchedule.for(`${this.model.kernels.name}|${modelKey(this.model)}|${this.drafter!.model.kernels.name}:${this.drafter!.name}|${rule.kind === 'top' ? `top${rule.k}` : 'exact'}|t${opts.temperature}`, M)
			: null;
		const promptBytes = promptBytesOverride ?? this.promptBytes;
		this.promptBytes = 0;
		const prof = opts.profile ?? null;
		this.prof = prof;
		if (this.draft) this.draft.profile = prof;

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
			// plain bytes to decode before the next draft: a measured stretch (arm 0), or until a boundary byte
			let plainLeft = speculative ? 0 : Infinity;
			let untilBoundary = false;
			let emptyDrafts = 0; // drafts in a row that proposed nothing
			let lastDraftArm = 0; // the arm of the last drafting round, until a plain stretch
			let stretch = { bytes: 0, ms: 0 };
			const tLoop = performance.now();
			while (generated < opts.maxBytes && !stopped) {
				let t = performance.now();
				await breathe();
				if (prof) t = prof.add('yield', t);
				if (signal?.aborted) throw abortError();
				if (spec && plainLeft === 0 && !untilBoundary) {
					const m = schedule ? schedule.choose() : M;
					if (m === 0) {
						// the byte the last drafting round committed is still to be fed: its step belongs to that
						// round (its bytes counted it), not to the plain stretch, which would measure 8 bytes for 9 steps
						if (lastDraftArm > 0 && this.pending.length > 0) {
							const tFeed = performance.now();
							await this.flush(signal);
							schedule?.record(lastDraftArm, 0, performance.now() - tFeed);
						}
						lastDraftArm = 0;
						plainLeft = PLAIN_STRETCH;
						stretch = { bytes: 0, ms: 0 };
						emptyDrafts = 0;
						continue;
					}
					lastDraftArm = m;
					const tRound = performance.now();
					await this.draft!.sync(signal);
					const budget = opts.maxBytes - generated;
					const d = await this.draft!.draft({
						subwords: m, maxBytes: budget, minConfidence, temperature: draftTemperature,
						uniform: () => sampler.uniform(), noise: (i) => sampler.noise(this.textPosition + i),
					});
					if (d.proposal.length === 0) {
						// nothing consistent with the text: one plain byte changes the tail; a second miss in a row
						// decodes to the next boundary byte (binary or foreign text need not cost a draft per byte)
						if (++emptyDrafts >= 2) untilBoundary = true;
						else plainLeft = 1;
						continue;
					}
					emptyDrafts = 0;
					const draftMs = performance.now() - tRound;
					t = performance.now();
					yield { type: 'draft', bytes: d.proposal };
					if (prof) prof.add('yield', t);
					const tVerify = performance.now();
					const r = await this.verify(d, rule, sampler, mask, budget, commit, spec);
					schedule?.record(m, r.accepted.length + (r.extra === null ? 0 : 1), draftMs + performance.now() - tVerify);
					t = performance.now();
					if (r.accepted.length > 0) yield { type: 'commit', bytes: r.accepted, source: 'draft' };
					if (r.accepted.length < d.proposal.length) yield { type: 'reject', count: d.proposal.length - r.accepted.length };
					if (r.extra !== null) yield { type: 'commit', bytes: Uint8Array.of(r.extra), source: 'model' };
					if (prof) {
						prof.add('yield', t);
						prof.rounds++;
					}
					stopped = r.stopped;
					untilBoundary = resume === 'boundary' && r.rejected && r.extra !== null && !isBoundaryByte(r.extra);
				} else {
					const logits = await this.flush(signal);
					const d = sampler.distribution(logits, 0, V, mask);
					const b = sampler.sample(d, this.textPosition);
					this.pending.push(b);
					this.logits = null;
					stopped = commit(b);
					const now = performance.now();
					if (prof) {
						prof.add('plain-step', t);
						prof.plainSteps++;
					}
					if (untilBoundary) {
						if (isBoundaryByte(b)) untilBoundary = false;
					} else if (spec) {
						stretch.bytes++;
						stretch.ms += now - t;
						if (--plainLeft === 0 && emptyDrafts === 0) schedule?.record(0, stretch.bytes, stretch.ms);
					}
					t = performance.now();
					yield { type: 'commit', bytes: Uint8Array.of(b), source: 'model' };
					if (prof) prof.add('yield', t);
				}
				if (stopped) reason = 'stop';
				const now = performance.now();
				if (now - lastStats >= interval) {
					lastStats = now;
					yield { type: 'stats', stats: stats() };
					if (prof) prof.add('yield', now);
				}
			}
			if (prof) {
				prof.totalMs += performance.now() - tLoop;
				prof.bytes += generated;
			}
		} catch (e) {
			if (!(e instanceof Error && e.name === 'AbortError')) throw e;
			reason = 'aborted';
		} finally {
			this.prof = null;
			if (this.draft) this.draft.profile = null;
		}
		yield { type: 'done', reason, stats: stats() };
	}

	/**
	 * One verify pass: score pending + drafted bytes in one forward, keep the accepted prefix (the model rolls its
	 * state back), draw the byte after it. Commits the bytes (through `commit`) and leaves the session consistent.
	 */
	private async verify(
		draft: Draft, rule: AcceptRule, sampler: Sampler, mask: Utf8Validator | null,
		budget: number, commit: (b: number) => boolean, spec: SpeculativeStats,
	): Promise<{ accepted: Uint8Array; extra: number | null; rejected: boolean; stopped: boolean }> {
		const proposal = draft.proposal;
		const V = this.model.config.vocabSize;
		const p = this.pending.length;
		const tokens = new Uint8Array(p + proposal.length);
		tokens.set(this.pending.view());
		tokens.set(proposal, p);
		const startLogits = this.logits;
		const at = this.textPosition; // the text position of proposal[0] (after the pending bytes)
		const prof = this.prof;
		let t = performance.now();
		const pass = await this.model.verify(tokens, this.state);
		const rows = pass.logits;
		if (prof) t = prof.add('verify', t);
		spec.drafted += proposal.length;
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
			if (!acceptByte(rule, sampler, d, proposal[i], at + i)) {
				rejected = true;
				extra = replacementByte(sampler, d, at + i);
				break;
			}
			spec.accepted++;
			k++;
			stopped = commit(proposal[i]);
		}
		if (!stopped && !rejected && k === proposal.length && k < budget) {
			extra = sampler.sample(dist(proposal.length), at + proposal.length); // bonus byte from the last position
		}
		if (prof) t = prof.add('accept', t);
		// Bring the state to exactly the committed bytes: tokens[0 .. p + k).
		const j = p + k;
		await pass.keep(j);
		if (prof) prof.add('rollback', t);
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
	const mix = (w: Float32Array | QMatrix) => {
		const a = isQMatrix(w) ? new Uint32Array(w.data.buffer, w.data.byteOffset, w.data.byteLength >> 2) : w;
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
	} finally {
		session.free();
	}

}
