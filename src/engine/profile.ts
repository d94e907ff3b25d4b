// Where a generation's time goes, part by part (`mambabyte bench --profile`). The Session adds the wall time of
// each part when GenerateOptions.profile is given; nothing is measured otherwise. Parts:
//   tokenize      re-tokenizing the drafter's unfed text (DraftContext.sync)
//   drafter-feed  feeding the drafter the tokens that became final
//   drafter-step  drafting: the drafter's steps and its working-state copies
//   verify        the byte model's forward over pending + drafted bytes
//   accept        building the byte distributions and applying the acceptance rule
//   snapshot      copies of the byte model's state (and logits) kept to roll back to
//   rollback      bringing the byte model's state back to the kept bytes
//   plain-step    byte steps of the byte model alone (no draft this round) and drawing the byte
//   yield         handing the event loop a turn (breathe) and the consumer's time between events
// Their sum is the whole generation; `other` is what no part claims (the loop itself, stats, events).

export const PROFILE_PARTS = ['tokenize', 'drafter-feed', 'drafter-step', 'verify', 'accept', 'snapshot', 'rollback', 'plain-step', 'yield'] as const;
export type ProfilePart = (typeof PROFILE_PARTS)[number];

export class Profile {
	readonly ms = Object.fromEntries(PROFILE_PARTS.map((p) => [p, 0])) as Record<ProfilePart, number>;
	/** Verify passes (drafting rounds) and plain byte steps measured. */
	rounds = 0;
	plainSteps = 0;
	bytes = 0;
	totalMs = 0;

	/** Add the time since t0 (a performance.now() reading) to part; returns now, to chain parts. */
	add(part: ProfilePart, t0: number): number {
		const now = performance.now();
		this.ms[part] += now - t0;
		return now;
	}

	merge(o: Profile): void {
		for (const p of PROFILE_PARTS) this.ms[p] += o.ms[p];
		this.rounds += o.rounds;
		this.plainSteps += o.plainSteps;
		this.bytes += o.bytes;
		this.totalMs += o.totalMs;
	}

	get otherMs(): number {
		return Math.max(0, this.totalMs - PROFILE_PARTS.reduce((s, p) => s + this.ms[p], 0));
	}

	/** A table: each part's ms per verify round and share of the total; `stepMs` (a plain byte step) sets the unit. */
	table(stepMs: number | null): string {
		const rows: string[][] = [];
		const per = (ms: number) => (this.rounds > 0 ? ms / this.rounds : 0);
		for (const p of [...PROFILE_PARTS, 'other'] as const) {
			const ms = p === 'other' ? this.otherMs : this.ms[p];
			rows.push([p, (ms).toFixed(1), per(ms).toFixed(3), stepMs ? (per(ms) / stepMs).toFixed(2) : '-', ((100 * ms) / Math.max(this.totalMs, 1e-9)).toFixed(1) + '%']);
		}
		const head = ['part', 'ms', 'ms/round', 'byte steps/round', 'share'];
		const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
		const line = (c: string[]) => '| ' + c.map((x, i) => x.padEnd(widths[i])).join(' | ') + ' |';
		return [
			`${this.rounds} verify rounds, ${this.plainSteps} plain steps, ${this.bytes} bytes in ${this.totalMs.toFixed(0)} ms` +
				(stepMs ? `; a plain byte step ${stepMs.toFixed(3)} ms` : ''),
			line(head), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...rows.map(line),
		].join('\n');
	}
}
