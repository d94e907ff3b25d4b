// Drafting that adapts to what it measures (replaces a fixed table of backends where drafting "pays").
//
// Whether a round of drafting pays depends on the backend (a k-byte verify pass costs ~k steps on gpu.js's CPU
// backends, ~1.6-2 steps on native, ~1 on a GPU), on the model pair (a bigger byte model makes a drafter token
// relatively cheaper), on the temperature and rule (acceptance) and on the text. So the Session measures it: the arms
// are "draft up to m subwords" for m = 1..M and "decode plain bytes" (m = 0, in stretches of PLAIN_STRETCH bytes); an
// arm's rate is committed bytes over wall time (the models, the tokenizer, rollback — everything but the consumer's
// time). One arm is the incumbent and runs every round; the others are re-measured (the one measured longest ago) while
// what re-measuring has cost stays under EXPLORE_COST of the time. On a shared machine the load moves every rate, so an
// arm is judged by its rate relative to the incumbent's rate at the time it was measured, and an arm that measures
// better than the incumbent takes over. A round's cost is its time times (1 − its rate / the incumbent's): an arm near
// the incumbent is re-measured often, one far below it (a sampled draft that is mostly rejected costs ~10x a plain byte
// per committed byte) rarely, so exploring costs at most ~EXPLORE_COST of the throughput: drafting is never more than a
// few percent slower than plain decoding, and where it pays it is on. Estimates are kept per backend, model pair, rule
// and temperature for the life of the process, so later generations (chat turns, bench rounds) start informed.

/** Bytes a plain stretch decodes before the schedule chooses again. */
export const PLAIN_STRETCH = 8;
/** Measurements of the full draft and of plain decoding before the first choice… */
const BOOT = 4;
/**
 * … or one of each when one measured more than DECISIVE_RATIO times faster than the other: a sampled draft that is
 * mostly rejected runs at ~0.1x of plain, and each start-up round of it cost ~0.4% of a 3,000-byte generation. A
 * wrong call is undone by exploring, which starts right after (the shorter drafts, never measured, first).
 */
const DECISIVE_RATIO = 2;
/** What re-measuring the arms other than the incumbent may cost, as a share of the time (see above). */
export const EXPLORE_COST = 0.01;
/** Weight of the incumbent's older measurements at each new one (its rate follows the machine's load). */
const DECAY = 0.8;
/** Weight of an explored arm's older measurements. */
const REL_DECAY = 0.7;
/** How much better than the incumbent an arm must measure, over at least two measurements, to take over. */
const MARGIN = 1.02;
/**
 * Plain decoding's measured times are divided by this before any comparison: drafting must beat plain decoding by
 * 5% to be used. Where the two are about even (a fast byte step, low acceptance), rounds measured on a shared
 * machine are noisy enough that an unbiased choice drafts half the time at a few percent below plain.
 */
export const PLAIN_BIAS = 1.05;

interface Arm {
	// decayed sums over its measurements: wall ms, and the ms the incumbent would have taken for the same bytes
	ms: number;
	incumbentMs: number;
	n: number; // measurements since it last lost or won the incumbency
	last: number; // round of the last measurement
}

export class DraftSchedule {
	private readonly arms: Arm[];
	private incumbent: number;
	private bytes = 0; // the incumbent's decayed sums
	private ms = 0;
	private round = 0;
	private totalMs = 0;
	private exploreCost = 0; // Σ over exploring rounds of ms · (1 − that round's rate / the incumbent's), ≥ 0 each
	/** Until both have BOOT measurements (or one is far ahead), the full draft and plain decoding alternate. */
	private booting = true;
	private bootSeen = 0;
	private readonly boot = [{ bytes: 0, ms: 0, n: 0 }, { bytes: 0, ms: 0, n: 0 }]; // plain, full draft

	/** Arms 0 (plain) .. maxSubwords; the full draft is the first incumbent. */
	constructor(readonly maxSubwords: number) {
		this.arms = Array.from({ length: maxSubwords + 1 }, () => ({ ms: 0, incumbentMs: 0, n: 0, last: -Infinity }));
		this.incumbent = maxSubwords;
	}

	private static shared = new Map<string, DraftSchedule>();

	/** The schedule of one (backend, model pair, rule, temperature) in this process. */
	static for(key: string, maxSubwords: number): DraftSchedule {
		const k = `${key}|m${maxSubwords}`;
		let s = DraftSchedule.shared.get(k);
		if (!s) DraftSchedule.shared.set(k, (s = new DraftSchedule(maxSubwords)));
		return s;
	}

	/** Whether the start-up (the full draft and plain decoding in turn) is still on. */
	get startingUp(): boolean {
		return this.booting;
	}

	/** The arm that runs when not exploring. */
	get best(): number {
		return this.incumbent;
	}

	/** An arm's rate relative to the incumbent's (NaN when never measured). */
	relative(arm: number): number {
		const a = this.arms[arm];
		return arm === this.incumbent ? 1 : a.ms > 0 ? a.incumbentMs / a.ms : NaN;
	}

	/** Subwords to draft next round; 0 = decode a plain stretch. */
	choose(): number {
		this.round++;
		const M = this.maxSubwords;
		if (M === 0) return 0;
		if (this.booting) return this.boot[1].n <= this.boot[0].n ? M : 0;
		if (this.exploreCost < EXPLORE_COST * this.totalMs) {
			// an arm that measured better once is measured again first (it takes over on a second good measurement)
			for (let i = 0; i <= M; i++) if (i !== this.incumbent && this.relative(i) > MARGIN) return i;
			let oldest = -1;
			for (let i = 0; i <= M; i++) if (i !== this.incumbent && (oldest < 0 || this.arms[i].last < this.arms[oldest].last)) oldest = i;
			if (oldest >= 0) return oldest;
		}
		return this.incumbent;
	}

	private bootRecord(arm: number, bytes: number, ms: number): void {
		const b = this.boot[arm === 0 ? 0 : 1];
		this.bootSeen++;
		if (this.bootSeen === 1) return; // the very first round also warms up (first drafter call, first verify)
		b.bytes += bytes;
		b.ms += ms;
		b.n++;
		this.arms[arm].last = this.round;
		this.totalMs += ms;
		const [plain, full] = this.boot;
		const ratio = full.bytes / full.ms / (plain.bytes / plain.ms);
		const decisive = plain.n >= 1 && full.n >= 1 && (ratio > DECISIVE_RATIO || ratio < 1 / DECISIVE_RATIO);
		if (!decisive && (plain.n < BOOT || full.n < BOOT)) return;
		// the faster of the two is the incumbent; the other is measured relative to it
		this.booting = false;
		const winner = plain.bytes / plain.ms >= full.bytes / full.ms ? 0 : 1;
		const w = this.boot[winner], l = this.boot[1 - winner];
		this.incumbent = winner === 0 ? 0 : this.maxSubwords;
		this.bytes = w.bytes;
		this.ms = w.ms;
		const loser = this.arms[winner === 0 ? this.maxSubwords : 0];
		loser.ms = l.ms;
		loser.incumbentMs = (l.bytes * w.ms) / w.bytes;
		loser.n = 1;
	}

	/** What an arm gave: committed bytes in ms of wall time. */
	record(arm: number, bytes: number, ms: number): void {
		if (!(ms > 0)) return;
		if (arm === 0) ms /= PLAIN_BIAS;
		if (this.booting && (arm === 0 || arm === this.maxSubwords)) {
			this.bootRecord(arm, bytes, ms);
			return;
		}
		const a = this.arms[arm];
		a.n++;
		a.last = this.round;
		this.totalMs += ms;
		if (arm === this.incumbent) {
			this.bytes = this.bytes * DECAY + bytes;
			this.ms = this.ms * DECAY + ms;
			return;
		}
		const incumbentMs = (bytes * this.ms) / Math.max(this.bytes, 1e-9); // the incumbent's time for these bytes
		this.exploreCost += Math.max(0, ms - incumbentMs);
		a.ms = a.ms * REL_DECAY + ms;
		a.incumbentMs = a.incumbentMs * REL_DECAY + incumbentMs;
		if (a.n >= 2 && this.relative(arm) > MARGIN) {
			// the explored arm is better: it becomes the incumbent, and the old one an arm to re-measure like the others
			const r = this.relative(arm);
			const old = this.arms[this.incumbent];
			old.ms = 1;
			old.incumbentMs = 1 / r;
			old.n = 1;
			this.incumbent = arm;
			a.ms = 0;
			a.incumbentMs = 0;
			this.ms /= r; // the reference rate: the old incumbent's times r
		}
	}
}
