// This project's fourth addition to gpu.js's code generation: integer index sums (a kernel-level option,
// `intIndex: true`). gpu.js computes every index in f32 and converts it at each load, `get_user_x(0, 0, i32(E))`,
// and a float-to-integer conversion issues at a quarter of the rate of a multiply-add on NVIDIA GPUs: a matmul
// thread that loads 20 values a step for 64 multiply-adds spent more issue slots converting indices than
// computing. Where the kernel's author vouches that every term of every index sum is a whole number (as they
// are when indices are built from floor(), integer constants and other indices, all below 2^24 where f32 holds
// them exactly), i32(a + b + 3) is i32(a) + i32(b) + 3: the same value, and the conversions of a and b are common
// to all the loads of a step (i32(xi) + 1, i32(xi) + 2, …), so the shader compiler converts each once.
//
// A rewrite of the WGSL gpu.js generates: each getter call's i32(…) argument is split at its top-level + and −
// (gpu.js parenthesises every binary operation), recursively; other terms keep their i32(…), and integer
// literals lose their ".0". The kernel's meaning is unchanged, so CpuRunner does nothing for it.
const GETTER_CALL = /get_user_\w+\(0, 0, i32\(/g;

/** The index of the parenthesis that closes the one at `open`. */
function closing(s: string, open: number): number {
	let depth = 0;
	for (let i = open; i < s.length; i++) {
		if (s[i] === '(') depth++;
		else if (s[i] === ')' && --depth === 0) return i;
	}
	throw new Error('internal: integer indices: unbalanced parentheses in the WGSL');
}

/** e without the parentheses that wrap all of it. */
function unwrap(e: string): string {
	let s = e.trim();
	while (s.startsWith('(') && closing(s, 0) === s.length - 1) s = s.slice(1, -1).trim();
	return s;
}

/** The position of e's last top-level binary + or − (left-associative sums split there), or −1. */
function lastSum(e: string): number {
	let depth = 0;
	for (let i = e.length - 1; i > 0; i--) {
		const ch = e[i];
		if (ch === ')') depth++;
		else if (ch === '(') depth--;
		else if (depth === 0 && (ch === '+' || ch === '-')) {
			const before = e.slice(0, i).trimEnd();
			// binary when it follows an operand (not a sign), unless that operand is a number's exponent (2.5e-3)
			const exponent = /(?:^|[^\w$])\d+(?:\.\d*)?[eE]$/.test(before);
			if (/[\w.)\]]$/.test(before) && !exponent) return i;
		}
	}
	return -1;
}

/** An i32 expression equal to i32(e), for an e whose sum terms are whole numbers. */
export function integerSum(e: string): string {
	const s = unwrap(e);
	const at = lastSum(s);
	if (at < 0) {
		const literal = /^(\d+)\.0*$/.exec(s);
		return literal ? literal[1] : `i32(${s})`;
	}
	return `(${integerSum(s.slice(0, at))} ${s[at]} ${integerSum(s.slice(at + 1))})`;
}

/** gpu.js's WGSL with every getter's index computed as a sum of converted terms (see above). */
export function intIndexWGSL(wgsl: string): string {
	let out = '';
	let from = 0;
	for (const m of wgsl.matchAll(GETTER_CALL)) {
		if (m.index! < from) continue;
		const open = m.index! + m[0].length - 1; // the '(' of i32(
		const close = closing(wgsl, open);
		out += wgsl.slice(from, m.index!) + m[0].slice(0, -'i32('.length) + integerSum(wgsl.slice(open + 1, close));
		from = close + 1;
	}
	if (from === 0) throw new Error('internal: integer indices: no getter call in the WGSL');
	return out + wgsl.slice(from);
}
