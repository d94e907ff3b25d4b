// Drafting that adapts to what it measures (replaces a fixed table of backends where drafting "pays").
//
// Whether a round of drafting pays depends on the backend (a k-byte verify pass costs ~k steps on gpu.js's CPU
// backends, ~1.6-2 steps on native, ~1 on a GPU), on the model pair (a bigger byte model makes a drafter token
// relatively cheaper), on the temperature and rule (acceptance) and on the text. So the Session measures it: the
// arms are "draft up to m subwords" for m = 1..M and "decode plain bytes" (m = 0, in stretches of PLAIN_STRETCH
// bytes); each arm's rate is committed bytes over wall time (the models, the tokenizer, rollback — everything but
// the consumer's time), averaged with decay so that it follows the text. Every round takes the arm with the best
// rate, except that up to EXPLORE_SHARE of the time goes to re-measuring the others (the one measured longest ago).
// Exploring costs at most EXPLORE_SHARE · (1 − its rate / the best rate) of the throughput, so drafting is never
// more than ~3% slower than plain decoding, and where it pays it is on. Estimates are kept per backend, model pair,
// rule and temperature for the life of the process, so later generations (chat turns, bench rounds) start informed.

/** Bytes a plain stretch decodes before the schedule chooses again. */
export const PLAIN_STRETCH = 8;
/** Share of the time spent re-measuring arms other than the best. */
export const EXPLORE_SHARE = 0.03;
/** Weight of an arm's older measurements each time it is measured again. */
const DECAY = 0.9;

interface Arm {
	bytes: number; // decayed sums
	ms: number;
	n: number; // measurements (not decayed)
	last: number; // round of the last measurement
}

export class DraftSchedule {
	private readonly arms: Arm[];
	private round = 0;
	private totalMs = 0;
	private exploreMs = 0;
	private exploring = -1;

	/** Arms 0 (plain) .. maxSubwords. */
	constructor(readonly maxSubwords: number) {
		this.arms = Array.from({ length: maxSubwords + 1 }, () => ({ bytes: 0, ms: 0, n: 0, last: -Infinity }));
	}

	private static shared = new Map<string, DraftSchedule>();

	/** The schedule of one (backend, model pair, rule, temperature) in this process. */
	static for(key: string, maxSubwords: number): DraftSchedule {
		const k = `${key}|m${maxSubwords}`;
		let s = DraftSchedule.shared.get(k);
		if (!s) DraftSchedule.shared.set(k, (s = new DraftSchedule(maxSubwords)));
		return s;
	}

	/** Bytes per ms of an arm (NaN when never measured). */
	rate(arm: number): number {
		const a = this.arms[arm];
		return a.n > 0 && a.ms > 0 ? a.bytes / a.ms : NaN;
	}

	/** The best measured arm. */
	best(): number {
		let best = -1;
		for (let i = 0; i < this.arms.length; i++) if (this.arms[i].n > 0 && (best < 0 || this.rate(i) > this.rate(best))) best = i;
		return best;
	}

	/** Subwords to draft next round; 0 = decode a plain stretch. */
	choose(): number {
		this.round++;
		this.exploring = -1;
		const M = this.maxSubwords;
		if (M === 0) return 0;
		// first measure the full draft twice and plain decoding once
		if (this.arms[M].n < 2 && this.arms[M].n <= this.arms[0].n) return M;
		if (this.arms[0].n < 1) return 0;
		const best = this.best();
		if (this.exploreMs < EXPLORE_SHARE * this.totalMs) {
			let oldest = -1;
			for (let i = 0; i <= M; i++) if (i !== best && (oldest < 0 || this.arms[i].last < this.arms[oldest].last)) oldest = i;
			if (oldest >= 0) {
				this.exploring = oldest;
				return oldest;
			}
		}
		return best;
	}

	/** What the chosen arm gave: committed bytes in ms of wall time. */
	record(arm: number, bytes: number, ms: number): void {
		const a = this.arms[arm];
		a.bytes = a.bytes * DECAY + bytes;
		a.ms = a.ms * DECAY + ms;
		a.n++;
		a.last = this.round;
		this.totalMs += ms;
		if (arm === this.exploring) this.exploreMs += ms;
	}
}
