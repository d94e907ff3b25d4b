// Scoring a byte stream (docs/metrics.md): bits per byte = Σ −log2 p(b_t | b_<t) / (N − 1); the first byte is context
// only. One recurrent pass over the whole stream, read in pieces, so memory stays flat however long the file is.
// With a window W each byte instead sees at most W − 1 bytes of context: segments of W bytes start every W/2
// bytes and each scores only its second half (the first scores all), a standard strided sliding window at twice
// the cost of the single pass.
import type { LanguageModel, ModelState } from '../model/types.js';
import { concatBytes } from '../util/bytes.js';
import { UserError } from '../errors.js';
import type { PerplexityEvent, PerplexityResult } from './events.js';

export interface ScoreOptions {
	curve: boolean;
	bucket: number; // curve bucket size in bytes
	window: number | null;
	backend: string;
	model: string;
	progressEveryBytes?: number;
}

const LN2 = Math.LN2;
const isSpace = (b: number) => b === 0x20 || (b >= 0x09 && b <= 0x0d);

/** Buckets a --curve may have: the curve is one JSON list, so more than this is a mistake (--bucket too small). */
export const MAX_CURVE_BUCKETS = 1_000_000;

/**
 * Accumulates log-loss and word count; per-bucket sums only when a curve was asked for (`bucket` not null), in a
 * dense array that stops at MAX_CURVE_BUCKETS — so memory is flat in the file's length either way.
 */
class Tally {
	nats = 0;
	scored = 0;
	bytes = 0;
	words = 0;
	private inWord = false;
	readonly bucketNats: number[] = [];
	readonly bucketCount: number[] = [];
	constructor(readonly bucket: number | null) {}

	see(chunk: Uint8Array) {
		for (const b of chunk) {
			const space = isSpace(b);
			if (!space && !this.inWord) this.words++;
			this.inWord = !space;
		}
		this.bytes += chunk.length;
	}

	score(position: number, lnp: number) {
		this.nats -= lnp;
		this.scored++;
		if (this.bucket === null) return;
		const k = Math.floor(position / this.bucket);
		if (k >= MAX_CURVE_BUCKETS) throw tooManyBuckets(this.bucket);
		while (this.bucketNats.length <= k) {
			this.bucketNats.push(0);
			this.bucketCount.push(0);
		}
		this.bucketNats[k] -= lnp;
		this.bucketCount[k]++;
	}

	get bitsPerByte() {
		return this.scored ? this.nats / LN2 / this.scored : NaN;
	}
}

const tooManyBuckets = (bucket: number) =>
	new UserError(`--curve with buckets of ${bucket} bytes gives more than ${MAX_CURVE_BUCKETS} buckets for this input; pass a larger --bucket`);

/** ln p(next byte) for each position of `inputs` (targets[i] follows inputs[i]), advancing state. */
async function logProbs(model: LanguageModel, state: ModelState, inputs: Uint8Array, targets: Uint8Array) {
	return model.logProbs(await model.forward(inputs, state), targets);
}

export async function* scoreStream(
	model: LanguageModel, file: string, total: number | null, source: AsyncIterable<Uint8Array>, o: ScoreOptions,
): AsyncGenerator<PerplexityEvent, PerplexityResult> {
	if (o.curve && total !== null && Math.ceil(total / o.bucket) > MAX_CURVE_BUCKETS) throw tooManyBuckets(o.bucket);
	yield { type: 'file', file, bytes: total };
	const tally = new Tally(o.curve ? o.bucket : null);
	const started = performance.now();
	const every = o.progressEveryBytes ?? 4096;
	let lastProgress = 0;
	const progress = (): PerplexityEvent => {
		const seconds = (performance.now() - started) / 1000;
		return { type: 'progress', file, done: tally.bytes, total, bitsPerByte: tally.bitsPerByte, bytesPerSecond: tally.scored / Math.max(seconds, 1e-9) };
	};
	// A window longer than the file scores exactly like the single pass: cap it, so nothing is sized from W.
	const window = o.window && total !== null ? Math.min(o.window, Math.max(2, total)) : o.window;
	const scorer = window ? windowScorer(model, tally, window) : streamScorer(model, tally);
	try {
		yield* scoreAll(scorer, tally, source, every, () => {
			lastProgress = tally.bytes;
			return progress();
		}, () => tally.bytes - lastProgress >= every);
		await scorer.finish();
	} finally {
		scorer.free();
	}
	yield progress();
	const seconds = (performance.now() - started) / 1000;
	const bpb = tally.bitsPerByte;
	const result: PerplexityResult = {
		file,
		bytes: tally.bytes,
		scored: tally.scored,
		bits_per_byte: bpb,
		word_perplexity: tally.words ? Math.exp((bpb * LN2 * tally.bytes) / tally.words) : NaN,
		seconds,
		bytes_per_second: tally.scored / Math.max(seconds, 1e-9),
		backend: o.backend,
		model: o.model,
	};
	if (o.curve) {
		result.curve = tally.bucketCount.flatMap((n, k) =>
			n === 0 ? [] : [{ start: k * o.bucket, end: Math.min((k + 1) * o.bucket, tally.bytes), bits_per_byte: tally.bucketNats[k] / LN2 / n }]);
	}
	yield { type: 'result', result };
	return result;
}

/** Feed every read to the scorer in pieces of `every` bytes, so progress arrives during a large read too. */
async function* scoreAll(
	scorer: Scorer, tally: Tally, source: AsyncIterable<Uint8Array>, every: number,
	progress: () => PerplexityEvent, due: () => boolean,
): AsyncGenerator<PerplexityEvent> {
	for await (const read of source) {
		for (let at = 0; at < read.length; at += every) {
			const piece = read.subarray(at, at + every);
			tally.see(piece);
			await scorer.push(piece);
			if (due()) yield progress();
		}
	}
}

interface Scorer {
	push(piece: Uint8Array): Promise<void>;
	finish(): Promise<void>;
	/** Give the scorer's state back (called once, whether scoring finished or not). */
	free(): void;
}

/** One recurrent pass: inputs b_0..b_{N−2}, targets b_1..b_{N−1}, in chunks with one byte of lookahead. */
function streamScorer(model: LanguageModel, tally: Tally): Scorer {
	const state = model.newState();
	const chunk = model.chunk;
	let pending: Uint8Array = new Uint8Array(0); // bytes read but not yet fed as inputs
	let fed = 0; // position of pending[0] in the file
	const run = async (n: number) => {
		const lp = await logProbs(model, state, pending.subarray(0, n), pending.subarray(1, n + 1));
		for (let i = 0; i < n; i++) tally.score(fed + i + 1, lp[i]);
		pending = pending.slice(n);
		fed += n;
	};
	return {
		async push(piece) {
			pending = concatBytes([pending, piece]);
			while (pending.length > chunk) await run(chunk);
		},
		async finish() {
			if (pending.length > 1) await run(pending.length - 1);
		},
		free: () => state.free(),
	};
}

/** Strided sliding window of W bytes (stride ⌈W/2⌉); keeps only the last W bytes in memory. */
function windowScorer(model: LanguageModel, tally: Tally, W: number): Scorer {
	const stride = Math.max(1, Math.ceil(W / 2));
	let buf: Uint8Array = new Uint8Array(0); // file bytes from position base on
	let base = 0;
	let start = 0; // start of the next segment
	let scoredUpTo = 0; // every target position < this has been scored (position 0 is never a target)
	// one state for every segment, reset from a zero state (no new device state per segment)
	const zero = model.newState();
	const state = model.newState();
	const segment = async (len: number) => {
		const s = start - base;
		const bytes = buf.subarray(s, s + len);
		// One reused state, reset per segment, fed in pieces of the model's chunk: logits stay (chunk, V) however
		// long the window is.
		state.copyFrom(zero);
		for (let a = 0; a < len - 1; a += model.chunk) {
			const b = Math.min(len - 1, a + model.chunk);
			const lp = await logProbs(model, state, bytes.subarray(a, b), bytes.subarray(a + 1, b + 1));
			for (let i = a; i < b; i++) {
				const pos = start + i + 1;
				if (pos >= scoredUpTo) tally.score(pos, lp[i - a]);
			}
		}
		scoredUpTo = start + len;
	};
	return {
		async push(piece) {
			buf = concatBytes([buf, piece]);
			while (start - base + W <= buf.length) {
				await segment(W);
				start += stride;
				const drop = start - base;
				buf = buf.slice(drop);
				base += drop;
			}
		},
		async finish() {
			const len = buf.length - (start - base);
			if (base + buf.length > scoredUpTo && len >= 2) await segment(len);
		},
		free: () => {
			state.free();
			zero.free();
		},
	};
}
