// The vocabulary arithmetic of drafting (drafter.ts): token distributions, and ranges of the drafting tokens sorted by
// their bytes (tokens that share a prefix are one contiguous run, so "every token that starts with these bytes" is a
// binary search, not a scan of the vocabulary).

/** π over the drafting tokens in sorted order: softmax(logits / temperature), float64. */
export function tokenDistribution(logits: Float32Array, order: Int32Array, temperature: number, out: Float64Array): void {
	let max = -Infinity;
	for (let i = 0; i < order.length; i++) if (logits[order[i]] > max) max = logits[order[i]];
	let sum = 0;
	for (let i = 0; i < order.length; i++) {
		const z = logits[order[i]];
		const e = Number.isFinite(z) ? Math.exp((z - max) / temperature) : 0;
		out[i] = e;
		sum += e;
	}
	for (let i = 0; i < order.length; i++) out[i] /= sum;
}

/** The distribution of the first byte of a token drawn from π (in sorted order). */
export function firstByteDistribution(pi: Float64Array, order: Int32Array, bytes: (Uint8Array | null)[]): Float64Array {
	const q = new Float64Array(256);
	for (let i = 0; i < order.length; i++) if (pi[i] > 0) q[bytes[order[i]]![0]] += pi[i];
	return q;
}

/** Inverse-CDF draw over bytes in ascending order; never a zero-probability byte. */
export function drawByte(q: Float64Array, u: number): number {
	let acc = 0;
	let last = -1;
	for (let b = 0; b < 256; b++) {
		if (q[b] <= 0) continue;
		acc += q[b];
		last = b;
		if (u < acc) return b;
	}
	return last;
}

/** Compare token bytes a with key[0..n) over their first min(len, n) bytes: <0, 0 (one is a prefix), >0. */
function comparePrefix(a: Uint8Array, key: Uint8Array, n: number): number {
	const m = Math.min(a.length, n);
	for (let i = 0; i < m; i++) if (a[i] !== key[i]) return a[i] - key[i];
	return a.length < n ? -1 : 0;
}

/** [lo, hi) of the sorted tokens that start with key[0..n). */
export function prefixRange(order: Int32Array, bytes: (Uint8Array | null)[], key: Uint8Array, n: number): [number, number] {
	let lo = 0, hi = order.length;
	while (lo < hi) {
		const mid = (lo + hi) >> 1;
		if (comparePrefix(bytes[order[mid]]!, key, n) < 0) lo = mid + 1;
		else hi = mid;
	}
	let end = lo, top = order.length;
	while (end < top) {
		const mid = (end + top) >> 1;
		if (comparePrefix(bytes[order[mid]]!, key, n) <= 0) end = mid + 1;
		else top = mid;
	}
	return [lo, end];
}

/** Position in sorted order of the token whose bytes are exactly key[0..n), or −1. */
export function exactToken(order: Int32Array, bytes: (Uint8Array | null)[], key: Uint8Array, n: number): number {
	const [lo, hi] = prefixRange(order, bytes, key, n);
	return lo < hi && bytes[order[lo]]!.length === n ? lo : -1;
}

/** Within [lo, hi) (tokens sharing their first `depth` bytes), those whose byte at `depth` is b. */
export function childRange(order: Int32Array, bytes: (Uint8Array | null)[], lo: number, hi: number, depth: number, b: number): [number, number] {
	let a = lo;
	while (a < hi && (bytes[order[a]]!.length <= depth || bytes[order[a]]![depth] < b)) a++;
	let e = a;
	while (e < hi && bytes[order[e]]![depth] === b) e++;
	return [a, e];
}

/** softmax(logits)[id] in float64. */
export function softmaxAt(logits: Float32Array, id: number): number {
	let max = -Infinity;
	for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
	let sum = 0;
	for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
	return Math.exp(logits[id] - max) / sum;
}

/**
 * Greedy choice of the next subword: the highest logit (lowest id on ties) among drafting tokens that agree with the
 * part of the tail not yet covered (tail[covered..]): the token is a prefix of it, or it is a prefix of the token.
 */
export function pickToken(logits: Float32Array, tokenBytes: (Uint8Array | null)[], tail: Uint8Array, covered: number): number {
	const rest = tail.length - covered;
	let best = -1;
	let bestZ = -Infinity;
	const n = Math.min(tokenBytes.length, logits.length);
	for (let id = 0; id < n; id++) {
		const b = tokenBytes[id];
		if (!b || b.length === 0) continue;
		const z = logits[id];
		if (!(z > bestZ)) continue;
		if (rest > 0) {
			const len = Math.min(rest, b.length);
			let ok = true;
			for (let i = 0; i < len && ok; i++) ok = b[i] === tail[covered + i];
			if (!ok) continue;
		}
		best = id;
		bestZ = z;
	}
	return best;
}
