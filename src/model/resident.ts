// The GPU-resident Mamba forward: the same math as mamba.ts, laid out for a device where every kernel call that
// waits for the host costs a round trip. Weights are uploaded once (resident/upload.ts); activations use the
// blocked layout of kernels/layout.ts; the recurrent state stays on the device (resident/device-state.ts) and is
// copied, never read back, between calls. A forward of T tokens is one recorded command list (resident/plans.ts:
// 11 to 16 passes per layer for a chunk, 6 for a decode step (the row plan), because a pass has a fixed cost however little it
// computes; README, Speed), and the only readback is the logits. Chunks longer than `chunk` run one after another;
// a remainder above 16 tokens is split into powers of two so only a few plans (one per T) are ever built. While
// decoding, the next step is recorded while the GPU runs this one. A verify pass runs a plan that also records the
// recurrence's inputs, so that keep(j) is a replay of two passes rather than a second forward (resident/records.ts);
// it runs padded to one of a few sizes, so that the next one is recorded while the GPU runs this one, too.
import { logProbReference } from '../../kernels/softmax.js';
import { fromBlocked } from '../../kernels/layout.js';
import type { Kernels } from '../backend/types.js';
import { range, whole, type Command, type Pass, type Prepared, type Runner } from '../backend/resident/runner.js';
import type { Checkpoint, LanguageModel, MambaConfig, ModelState, Verification, Weight } from './types.js';
import { verifyPass } from './verification.js';
import { convStride, DeviceState, ssmStride } from './resident/device-state.js';
import { chunkPlan, decodePlan, groupedDecodePlan, rowDecodePlan, type PlanKind } from './resident/plans.js';
import { SPLIT_MAX } from './resident/split.js';
import { rowsFit, upload, type Uploaded, type UploadOptions } from './resident/upload.js';
import { recordCapacity, Records } from './resident/records.js';

/** A recorded verify pass not kept yet; `before` is set once its records can no longer be trusted (preserveLive). */
interface LivePass {
	start: number; // the state's position before the pass
	before: DeviceState | null;
}

export type DecodeKind = 'rows' | 'split-K' | 'grouped';
/**
 * Which projections chunks and verify passes run (plans.ts chunkPlan), or 'auto': rows up to ROWS_UP_TO tokens
 * (below d_model LONG_CHUNK_FROM), split-K up to SPLIT_K_UP_TO, tiles above.
 */
export type ChunkKind = PlanKind | 'auto';
/** The longest pass 'auto' runs on row weights: verify passes (README, Speed: on the shipped model a row verify pass of 8 costs half a split-K one). */
export const ROWS_UP_TO = 32;
/** The longest pass 'auto' runs as split-K: at 64 tokens tiles won only on the 972M shape (README, Speed). */
export const SPLIT_K_UP_TO = 64;
/** The chunk length a forward of a large model runs at once (preferredChunk), and from which d_model. */
export const LONG_CHUNK = 256;
export const LONG_CHUNK_FROM = 1024;
const DECODE_PLANS = { rows: rowDecodePlan, 'split-K': decodePlan, grouped: groupedDecodePlan } as const;

export class ResidentMamba implements LanguageModel {
	readonly config: MambaConfig;
	private readonly plans = new Map<number, Pass[]>();
	private readonly verifyPlans = new Map<number, Pass[]>(); // per T ≤ recordCapacity
	private live: LivePass | null = null; // the verify pass whose records keep(j) may still read
	// Threads per split-K partial pass, for chunks and for decode (bench/webgpu.ts sweeps them; README, Speed).
	private split = 1 << 20;
	private vecSplit = 1 << 18;
	private fused = true; // a fused decode plan (bench/webgpu.ts compares it with running T = 1 as a chunk)
	private kind: DecodeKind; // which fused decode plan (plans.ts): 'rows' where the shape allows, else 'split-K'
	private chunks: ChunkKind = 'auto'; // which projections the chunk and verify plans run (plans.ts chunkPlan)
	private readonly canFuse: boolean; // the split-K and grouped decode kernels take 4 reduction steps at a time
	private next: { state: DeviceState; plan: readonly Pass[]; prepared: Prepared } | null = null; // the next step, recorded
	private nextVerify: { state: DeviceState; size: number; prepared: Prepared } | null = null; // the next verify pass, recorded
	private lastStep: DeviceState | null = null;
	/** Record the next decode step while the GPU runs this one (bench/webgpu.ts --ab compares on and off). */
	pipelineSteps = true;

	private constructor(
		readonly checkpoint: Checkpoint<Weight>, readonly runner: Runner, readonly kernels: Kernels, readonly chunk: number,
		private readonly dev: Uploaded,
		private readonly records: Records | null, // null when this shape records nothing (recordCapacity 0)
	) {
		const c = (this.config = checkpoint.config);
		this.canFuse = c.dModel % 4 === 0 && c.dInner % 4 === 0 && c.dtRank % 4 === 0 && c.dState % 4 === 0;
		this.kind = rowsFit(c) ? 'rows' : 'split-K';
	}

	/**
	 * Why this shape cannot run resident, or null. gpu.js computes array indices in f32, exact below 2^24: every
	 * buffer a kernel indexes (the largest is a projection's Wᵀ) must stay under that. convAndState writes the
	 * conv state 4 values at a time.
	 */
	static unsupported(c: MambaConfig, chunk = 64): string | null {
		const E = c.dInner, RC = c.dtRank + 2 * c.dState;
		const largest = Math.max(2 * E * c.dModel, RC * E, c.vocabSize * c.dModel, (chunk / 4 + 1) * E * c.dState, (chunk / 4) * 2 * E * 4, (chunk / 4) * E * c.dState * 2);
		if (largest >= 1 << 24) return `a ${largest}-float buffer; gpu.js indexes exactly only below 2^24`;
		if ((E * (c.dConv - 1)) % 4 !== 0) return `d_inner·(d_conv − 1) = ${E * (c.dConv - 1)} is not a multiple of 4`;
		return null;
	}

	/**
	 * The longest chunk a forward runs at once: 256 for d_model >= LONG_CHUNK_FROM where the shape's buffers allow
	 * it, else 64. Longer chunks give each weight load more positions (matmulTile) and each pass more work for its
	 * fixed cost: the 353M and 972M shapes prefill 2.4x and 2.3x faster so (README, Speed); smaller models were not
	 * measured at 256 and keep 64.
	 */
	static preferredChunk(c: MambaConfig): number {
		return c.dModel >= LONG_CHUNK_FROM && !ResidentMamba.unsupported(c, LONG_CHUNK) ? LONG_CHUNK : 64;
	}

	/** Compile the kernels and upload the weights. `kernels`: the backend the runner runs on (it names it). */
	static async create(
		checkpoint: Checkpoint<Weight>, runner: Runner, kernels: Kernels, chunk = ResidentMamba.preferredChunk(checkpoint.config), options: UploadOptions = {},
	): Promise<ResidentMamba> {
		const why = ResidentMamba.unsupported(checkpoint.config, chunk);
		if (why) throw new Error(`internal: ${checkpoint.name} cannot run resident: ${why}`);
		if (chunk % 4 !== 0) throw new Error('internal: the resident chunk must be a multiple of 4');
		const dev = await upload(checkpoint, runner, chunk, options);
		const capacity = recordCapacity(checkpoint.config, chunk);
		const records = capacity > 0 ? await Records.create(runner, checkpoint.config, dev, capacity) : null;
		const m = new ResidentMamba(checkpoint, runner, kernels, chunk, dev, records);
		m.buildVerifyPlans();
		return m;
	}

	/** Threads per split-K partial pass, [chunks, decode] (tuning knobs for bench/webgpu.ts); drops the plans. */
	get splitThreads(): [number, number] {
		return [this.split, this.vecSplit];
	}
	set splitThreads([chunks, decode]: [number, number]) {
		for (const n of [chunks, decode]) if (!(n >= 1 && n <= SPLIT_MAX)) throw new RangeError(`split threads ${n} outside 1..${SPLIT_MAX}`);
		[this.split, this.vecSplit] = [chunks, decode];
		this.plans.clear();
		this.verifyPlans.clear();
	}

	/** Whether decode runs the fused plan (the default, when the shapes allow) or the chunk plan with T = 1. */
	get fusedDecode(): boolean {
		return this.fused && (this.kind === 'rows' ? rowsFit(this.config) : this.canFuse);
	}
	set fusedDecode(on: boolean) {
		this.fused = on;
		this.plans.clear();
		this.next = null;
	}

	/**
	 * Which fused decode plan runs (plans.ts): 'rows' (6 passes a layer, the default where the shape allows),
	 * 'split-K' (9) or 'grouped' (7; slower on an H100, bench/results/h100-webgpu-session5-grouped.txt).
	 * bench/webgpu.ts compares them.
	 */
	get decodeKind(): DecodeKind {
		return this.kind;
	}
	set decodeKind(kind: DecodeKind) {
		if (kind === 'rows' && !rowsFit(this.config)) throw new Error('internal: the row decode plan needs an even d_model and d_inner and d_state a multiple of 4');
		this.kind = kind;
		this.plans.clear();
		this.next = null;
	}

	/**
	 * Which projections chunks and verify passes run (plans.ts chunkPlan): 'split-K' (partial sums then a reduction,
	 * 14 passes a layer), 'tiles' (the same passes, the partial sums 4 rows × 16 positions a thread), 'rows'
	 * (matmulRow, 11; where the shape has row weights), or 'auto' (the
	 * default: rows for passes up to ROWS_UP_TO tokens on models below d_model LONG_CHUNK_FROM, split-K up to
	 * SPLIT_K_UP_TO, tiles above; README, Speed, says what each choice rests on). bench/webgpu.ts compares them.
	 */
	get chunkKind(): ChunkKind {
		return this.chunks;
	}
	set chunkKind(kind: ChunkKind) {
		if (kind === 'rows' && !rowsFit(this.config)) throw new Error('internal: row chunks need the row weights (rowsFit)');
		// matmulRow runs TB·N·64 threads, and gpu.js's thread index is an f32 too: exact below 2^24
		const c = this.config, threads = (this.chunk / 4) * Math.max(2 * c.dInner, c.dModel, c.vocabSize) * 64;
		if (!['auto', 'split-K', 'tiles', 'rows'].includes(kind)) throw new Error(`internal: no chunk kind ${String(kind)}`);
		if (kind === 'rows' && threads >= 1 << 24) throw new Error(`internal: row chunks of ${this.chunk} would run ${threads} threads a pass; gpu.js indexes them exactly only below 2^24`);
		this.chunks = kind;
		this.plans.clear();
		this.verifyPlans.clear();
		this.next = null;
		this.nextVerify = null;
	}

	/** The plan kind a pass of T tokens runs (chunkKind, with 'auto' resolved). */
	planKind(T: number): PlanKind {
		if (this.chunks !== 'auto') return this.chunks;
		const c = this.config, threads = Math.ceil(T / 4) * Math.max(2 * c.dInner, c.dModel, c.vocabSize) * 64;
		// rows were measured faster for verify passes on the shipped model only; on the 353M and 972M shapes they were
		// a third as fast as split-K at 64 tokens and not measured shorter, so those keep split-K
		if (T <= ROWS_UP_TO && rowsFit(c) && c.dModel < LONG_CHUNK_FROM && threads < 1 << 24) return 'rows';
		return T > SPLIT_K_UP_TO ? 'tiles' : 'split-K';
	}

	/** How many of the row plan's projection matrices the device holds in 16 bits (halves.ts; bf16 of them as bfloat16), of how many. */
	get halfMatrices(): { half: number; bf16: number; of: number } {
		const rows = this.dev.layers.flatMap((L) => (L.rows ? [L.rows.inProj, L.rows.xProj, L.rows.dtProj, L.rows.outProj] : []));
		if (this.dev.headRows) rows.push(this.dev.headRows.head);
		return { half: rows.filter((m) => m.w.half).length, bf16: rows.filter((m) => m.w.half === 'bf16').length, of: rows.length };
	}

	newState(): DeviceState {
		return DeviceState.zeros(this.runner, this.config);
	}

	/** The recorded passes of one chunk of T tokens (scalars baked in), built once per T. */
	plan(T: number): readonly Pass[] {
		let passes = this.plans.get(T);
		if (!passes) {
			passes = T === 1 && this.fusedDecode
				? DECODE_PLANS[this.kind](this.runner, this.config, this.dev, this.vecSplit)
				: chunkPlan(this.runner, this.config, this.dev, T, this.split, undefined, this.planKind(T));
			this.plans.set(T, passes);
		}
		return passes;
	}

	/** Logits (T, V) for every position of tokens, advancing state. */
	async forward(tokens: ArrayLike<number>, state: ModelState): Promise<Float32Array> {
		const V = this.config.vocabSize;
		const logits = new Float32Array(tokens.length * V);
		for (let s = 0; s < tokens.length; ) {
			const left = tokens.length - s;
			let T = Math.min(left, this.chunk);
			if (T > 16 && T < this.chunk) T = 1 << Math.floor(Math.log2(T));
			logits.set(await this.forwardChunk(Array.prototype.slice.call(tokens, s, s + T) as number[], state), s * V);
			s += T;
		}
		return logits;
	}

	async step(token: number, state: ModelState): Promise<Float32Array> {
		return this.forwardChunk([token], state);
	}

	/**
	 * Logits (T, V) of tokens fed from state, then keep(j) rolls back to the first j. A pass of at most
	 * `recordCapacity` tokens runs the verify plan, which keeps every layer's recurrence inputs on the device
	 * (resident/records.ts): keep(j) replays them from the state before the pass, two passes and two copies with no
	 * projection (for j = T too: the pass ran padded, verifyChunk). A longer pass keeps a device copy of the state,
	 * and keep(j) restores it and feeds the j kept tokens again.
	 */
	async verify(tokens: ArrayLike<number>, state: ModelState): Promise<Verification> {
		if (!(state instanceof DeviceState)) throw new Error('internal: a resident model runs on its own DeviceState');
		const toks = Array.prototype.slice.call(tokens) as number[];
		const T = toks.length;
		if (!(T >= 1 && T <= this.recordCapacity)) {
			const before = state.clone();
			return verifyPass(T, {
				feed: () => this.forward(toks, state),
				rollback: (j) => this.refeed(before, toks.slice(0, j), state),
				release: () => before.free(),
			});
		}
		const rec = this.records!;
		const start = state.position;
		const live: LivePass = { start, before: null };
		return verifyPass(T, {
			feed: async () => {
				const logits = await this.verifyChunk(toks, state, rec);
				this.live = live;
				return logits;
			},
			rollback: async (j) => {
				if (live.before) return this.refeed(live.before, toks.slice(0, j), state);
				if (state.freed) throw new Error('internal: a freed device state was used');
				const k = rec.keep(j);
				await this.runner.run([
					...k.passes.map((pass) => ({ pass })),
					{ copy: { from: k.ssm, to: whole(state.ssm) } },
					{ copy: { from: k.conv, to: whole(state.conv) } },
				]);
				state.position = start + j;
			},
			release: () => {
				if (this.live === live) this.live = null;
				live.before?.free();
			},
			// the pass ran padded to its plan's size and copied no state out: the state comes from the replay
			rollsBackAll: true,
		});
	}

	/**
	 * Every verify plan and keep(j) plan, built now rather than in the first rounds that use them: building one
	 * takes longer than running it, and the adaptive schedule would charge that to drafting (src/engine/adaptive.ts).
	 */
	private buildVerifyPlans(): void {
		const rec = this.records;
		if (!rec) return;
		for (let T = 1; T <= rec.capacity; T = this.verifySize(T) + 1) this.verifyPlan(this.verifySize(T), rec);
		for (let j = 0; j <= rec.capacity; j++) rec.keep(j);
	}

	/**
	 * The plan size a verify pass of T tokens runs at: the smallest of 8, 16, 32 ... (at most the record capacity)
	 * that holds it. Few sizes mean few plans and a next pass that can be recorded before its draft exists.
	 */
	private verifySize(T: number): number {
		const cap = this.recordCapacity;
		let size = 8;
		while (size < T) size *= 2;
		return Math.min(size, cap);
	}

	/**
	 * A verify pass: the tokens padded (with token 0) to their plan's size, the state read into the work buffers
	 * and left there (keep(j) replays the records from it, resident/records.ts). While the GPU runs it, the next
	 * pass of the same size on the same state is recorded: speculative rounds on one state repeat it, and the
	 * host's recording of ~14 passes a layer costs about as much as the GPU's work (docs/backends.md).
	 */
	private async verifyChunk(tokens: number[], s: ModelState, rec: Records): Promise<Float32Array> {
		if (!(s instanceof DeviceState)) throw new Error('internal: a resident model runs on its own DeviceState');
		if (s.freed) throw new Error('internal: a freed device state was used');
		const V = this.config.vocabSize;
		const T = tokens.length;
		const size = this.verifySize(T);
		for (const tok of tokens) {
			if (!(tok >= 0 && tok < V)) throw new RangeError(`token ${tok} outside the vocabulary 0..${V - 1}`);
		}
		this.preserveLive();
		const b = this.dev.bufs;
		const ids = new Float32Array(size);
		ids.set(tokens);
		this.runner.upload(range(b.tokens, 0, size), ids); // queued before the submission below
		const read = range(b.logits, 0, (size / 4) * V * 4);
		// (a decode step recorded ahead stays: it reads the state when it runs, after this pass and its keep, so the
		// plain steps after a drafting round stay pipelined and the schedule measures them at their real cost)
		const ahead = this.nextVerify;
		this.nextVerify = null;
		let done: Promise<Float32Array | null>;
		if (ahead && ahead.state === s && ahead.size === size) done = this.runner.submit(ahead.prepared);
		else {
			if (ahead) this.runner.discard(ahead.prepared);
			done = this.runner.run(this.verifyCommands(size, s, rec), read);
		}
		if (this.pipelineSteps) this.nextVerify = { state: s, size, prepared: this.runner.prepare(this.verifyCommands(size, s, rec), read) };
		const blocked = (await done)!;
		s.position += T;
		return fromBlocked(blocked, T, V);
	}

	/** A verify pass's commands: the state into the work buffers, then the plan (nothing is copied out). */
	private verifyCommands(size: number, s: DeviceState, rec: Records): Command[] {
		return [
			{ copy: { from: whole(s.ssm), to: whole(this.dev.bufs.workSsm) } },
			{ copy: { from: whole(s.conv), to: whole(this.dev.bufs.workConv) } },
			...this.verifyPlan(size, rec).map((pass) => ({ pass })),
		];
	}

	/** The most tokens a verify pass records for a rollback without a refeed (resident/records.ts). */
	get recordCapacity(): number {
		return this.records?.capacity ?? 0;
	}

	/** Restore `before` into state and feed `tokens`: the rollback of a pass that kept no records. */
	private async refeed(before: DeviceState, tokens: number[], state: DeviceState): Promise<void> {
		state.copyFrom(before);
		if (tokens.length > 0) await this.forward(tokens, state);
	}

	/**
	 * Before anything else runs on this model's work and record buffers: if a verify pass is not kept yet, copy
	 * the state before it out of the work buffers, so that its keep(j) refeeds instead of reading records that
	 * are about to be overwritten (the engine keeps a pass before its next forward; this is the safety net).
	 */
	private preserveLive(): void {
		const live = this.live;
		if (!live) return;
		this.live = null;
		const c = this.config, b = this.dev.bufs;
		const before = new DeviceState(this.runner, c, this.runner.alloc(b.workSsm.length), this.runner.alloc(b.workConv.length), live.start);
		this.runner.copy(whole(b.workSsm), whole(before.ssm));
		this.runner.copy(whole(b.workConv), whole(before.conv));
		live.before = before;
	}

	/** ln p(targets[t]) under each row of logits (T, V): on the host, where the logits already are. */
	async logProbs(logits: Float32Array, targets: ArrayLike<number>): Promise<Float64Array> {
		return logProbReference(logits, targets.length, this.config.vocabSize, targets);
	}

	/** One chunk on state s. */
	private async forwardChunk(tokens: number[], s: ModelState): Promise<Float32Array> {
		if (!(s instanceof DeviceState)) throw new Error('internal: a resident model runs on its own DeviceState');
		const V = this.config.vocabSize;
		const T = tokens.length;
		const TB = Math.ceil(T / 4);
		for (const tok of tokens) {
			if (!(tok >= 0 && tok < V)) throw new RangeError(`token ${tok} outside the vocabulary 0..${V - 1}`);
		}
		if (s.freed) throw new Error('internal: a freed device state was used');
		this.preserveLive();
		const b = this.dev.bufs;
		const ids = new Float32Array(TB * 4);
		ids.set(tokens);
		this.runner.upload(range(b.tokens, 0, TB * 4), ids); // queued before the submission below
		const read = range(b.logits, 0, TB * V * 4);
		let done: Promise<Float32Array | null>;
		const plan = this.plan(T);
		const step = T === 1;
		if (step && this.next?.state === s && this.next.plan === plan) done = this.runner.submit(this.next.prepared);
		else {
			if (this.next) this.runner.discard(this.next.prepared);
			done = this.runner.run(this.commands(T, s), read);
		}
		this.next = null;
		// Steps on one state in a row (decoding): record the next step while the GPU works on this one, so the
		// host's recording time hides behind the GPU's.
		if (step && this.lastStep === s && this.pipelineSteps) this.next = { state: s, plan, prepared: this.runner.prepare(this.commands(1, s), read) };
		this.lastStep = step ? s : null;
		const blocked = (await done)!;
		s.position += T;
		return fromBlocked(blocked, T, V);
	}

	/**
	 * A chunk's commands on state s. The plan reads the state from fixed work buffers (its bindings never change):
	 * copy in, run, then copy each layer's new h and conv state out.
	 */
	private commands(T: number, s: DeviceState): Command[] {
		if (s.freed) throw new Error('internal: a freed device state was used');
		const c = this.config;
		const { dInner: E, dState: N, dConv: K } = c;
		const TB = Math.ceil(T / 4);
		const hAt = T === 1 && this.fusedDecode ? E * 4 : TB * E * N; // where the new h is in each layer's H
		return [
			{ copy: { from: whole(s.ssm), to: whole(this.dev.bufs.workSsm) } },
			{ copy: { from: whole(s.conv), to: whole(this.dev.bufs.workConv) } },
			...this.plan(T).map((pass) => ({ pass })),
			...this.dev.layers.flatMap((layer, l): Command[] => [
				{ copy: { from: range(layer.H, hAt, E * N), to: range(s.ssm, l * ssmStride(c), E * N) } },
				{
					copy: {
						from: range(layer.convOut, TB * E * 4, E * (K - 1)),
						to: range(s.conv, l * convStride(c), E * (K - 1)),
					},
				},
			]),
		];
	}

	/** The passes of a verify pass of T tokens (a chunk plan writing the records), built once per T. */
	private verifyPlan(T: number, rec: Records): readonly Pass[] {
		let passes = this.verifyPlans.get(T);
		if (!passes) this.verifyPlans.set(T, (passes = chunkPlan(this.runner, this.config, this.dev, T, this.split, rec, this.planKind(T))));
		return passes;
	}
}
