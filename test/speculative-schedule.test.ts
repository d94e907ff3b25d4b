// The adaptive draft schedule (engine/adaptive.ts) against simulated arms with known rates: it must settle on the
// fastest arm, spend little on the others, and follow a machine whose load changes every rate at once.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DraftSchedule, PLAIN_STRETCH } from '../src/engine/adaptive.js';
import { rng } from '../src/model/random.js';

/**
 * Run the schedule for `rounds` choices. rates[m] = bytes per ms of arm m (plain = arm 0, in stretches); a drafting
 * round yields a noisy 1..(2·mean − 1) bytes; load(t) scales every rate. Returns throughput over the best arm's.
 */
function simulate(rates: number[], rounds: number, load: (ms: number) => number = () => 1, seed = 1) {
	const s = new DraftSchedule(rates.length - 1);
	const r = rng(seed);
	let ms = 0;
	let bytes = 0;
	let ideal = 0; // ms the best arm would have needed for the same bytes
	const best = Math.max(...rates);
	const time = new Array<number>(rates.length).fill(0);
	for (let i = 0; i < rounds; i++) {
		const m = s.choose();
		const b = m === 0 ? PLAIN_STRETCH : 1 + Math.floor(r() * 5); // mean 3 bytes per drafting round
		const t = b / (rates[m] * load(ms)) * (0.8 + 0.4 * r()); // ±20% noise per measurement
		s.record(m, b, t);
		ms += t;
		bytes += b;
		time[m] += t;
		ideal += b / (best * load(ms));
	}
	return { speed: ideal / ms, share: time.map((t) => t / ms), schedule: s };
}

test('drafting that does not pay is (almost) never used: >= 0.97x of plain', () => {
	for (const seed of [1, 2, 3]) {
		const { speed, share, schedule } = simulate([1, 0.3, 0.4, 0.45], 3000, undefined, seed);
		assert.is(schedule.best, 0, 'plain decoding wins');
		assert.ok(speed >= 0.97, `throughput ${speed.toFixed(3)} of plain (seed ${seed})`);
		assert.ok(share[1] + share[2] + share[3] < 0.05, `time drafting ${(share[1] + share[2] + share[3]).toFixed(3)}`);
	}
});

test('an arm far below plain (a sampled draft mostly rejected: ~0.1x) costs about EXPLORE_COST: >= 0.985x', () => {
	for (const seed of [1, 2, 3]) {
		const { speed, share } = simulate([1, 0.08, 0.1, 0.12], 6000, undefined, seed);
		assert.ok(speed >= 0.985, `throughput ${speed.toFixed(4)} of plain (seed ${seed})`);
		assert.ok(share[1] + share[2] + share[3] < 0.02, `time drafting ${(share[1] + share[2] + share[3]).toFixed(3)}`);
	}
});

test('the start-up is short when one side is far ahead: a ~0.1x draft runs 2 rounds, not 5, in a short generation', () => {
	for (const seed of [1, 2, 3]) {
		// ~4,800 plain bytes, a few seconds: the old start-up (5 draft rounds) gave 0.966-0.974x here
		const { speed, schedule } = simulate([1, 0.08, 0.1, 0.12], 600, undefined, seed);
		assert.is(schedule.best, 0);
		assert.ok(speed >= 0.975, `throughput ${speed.toFixed(4)} of plain (seed ${seed})`);
	}
	// the full draft's start-up: the warm-up and one measured round, not the warm-up and four
	const s0 = new DraftSchedule(3);
	let full = 0;
	for (let i = 0; i < 12; i++) {
		const m = s0.choose();
		if (m === 3) full++;
		s0.record(m, m === 0 ? PLAIN_STRETCH : 2, m === 0 ? PLAIN_STRETCH : 20); // the draft at 0.1x
	}
	assert.is(full, 2, 'rounds of the full draft in the first 12');
	// and the opposite: a draft at 3x plain is the incumbent after the warm-up and one measurement of each
	const s = new DraftSchedule(3);
	const arms: number[] = [];
	for (let i = 0; i < 3; i++) {
		const m = s.choose();
		arms.push(m);
		s.record(m, m === 0 ? PLAIN_STRETCH : 9, m === 0 ? PLAIN_STRETCH : 3);
	}
	assert.equal(arms, [3, 3, 0], 'warm-up, one of each');
	assert.ok(!s.startingUp, 'the start-up is over');
	assert.is(s.best, 3, 'the draft is the incumbent');
});

test('a short draft that pays is found soon when the full draft loses at the start-up (a short generation)', () => {
	// the full draft at 0.45x ends the start-up after one round of each; m = 1 at 1.5x must still be found early
	let mean = 0;
	for (let seed = 1; seed <= 20; seed++) mean += simulate([1, 1.5, 1.1, 0.45], 300, undefined, seed).speed / 20;
	assert.ok(mean >= 0.95, `mean throughput ${mean.toFixed(3)} of the best arm over 20 seeds`);
});

test('drafting that pays is found, and the best draft length with it', () => {
	for (const [rates, want] of [[[1, 1.3, 1.6, 1.5], 2], [[1, 1.2, 1.4, 1.9], 3], [[1, 1.5, 1.1, 0.9], 1]] as const) {
		const { speed, schedule, share } = simulate([...rates], 3000);
		// arms within noise of each other may trade places; the one in use must be near the best, and the best used most
		assert.ok(rates[schedule.best] >= 0.9 * Math.max(...rates), `rates ${rates}: settled on ${schedule.best}`);
		assert.ok(share[want] === Math.max(...share) || rates[want] - rates[schedule.best] < 0.15, `time shares ${share.map((x) => x.toFixed(2))}`);
		assert.ok(speed >= 0.95, `throughput ${speed.toFixed(3)} of the best arm (rates ${rates})`);
	}
});

test('a load that changes over time moves every rate at once: the choice holds', () => {
	// the machine gets 3x slower and back, every ~2 s of simulated time
	const load = (ms: number) => (Math.floor(ms / 2000) % 2 === 0 ? 1 : 1 / 3);
	const { speed, schedule } = simulate([1, 0.5, 0.6, 0.7], 6000, load);
	assert.is(schedule.best, 0);
	assert.ok(speed >= 0.96, `throughput ${speed.toFixed(3)}`);
	const up = simulate([1, 1.2, 1.5, 1.8], 6000, load);
	assert.is(up.schedule.best, 3);
	assert.ok(up.speed >= 0.94, `throughput ${up.speed.toFixed(3)}`);
});

test('no drafting allowed (M = 0): always plain', () => {
	const s = new DraftSchedule(0);
	for (let i = 0; i < 10; i++) assert.is(s.choose(), 0);
});

test.run();
