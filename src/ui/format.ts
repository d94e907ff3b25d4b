// Number formatting shared by the chat status line and the perplexity view. Pure functions, no colour.

/** 1536 → "1.5 KiB"; whole bytes below 1 KiB ("980 B"). */
export function formatBytes(n: number): string {
	if (!Number.isFinite(n)) return '–';
	if (n < 1024) return `${Math.round(n)} B`;
	const units = ['KiB', 'MiB', 'GiB', 'TiB'];
	let v = n / 1024;
	let u = 0;
	while (v >= 1024 && u < units.length - 1) {
		v /= 1024;
		u++;
	}
	return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

/** Bytes per second: "12.3 B/s", "4.1 KiB/s", "2.0 MiB/s". */
export function formatRate(bytesPerSecond: number): string {
	if (!Number.isFinite(bytesPerSecond) || bytesPerSecond < 0) return '– B/s';
	if (bytesPerSecond < 1024) return `${bytesPerSecond < 100 ? bytesPerSecond.toFixed(1) : Math.round(bytesPerSecond)} B/s`;
	return `${formatBytes(bytesPerSecond)}/s`;
}

/** Seconds as "0:07", "12:34", "1:02:03"; "–" when unknown. */
export function formatDuration(seconds: number): string {
	if (!Number.isFinite(seconds) || seconds < 0) return '–';
	const s = Math.round(seconds);
	const h = Math.floor(s / 3600);
	const m = Math.floor((s % 3600) / 60);
	const ss = String(s % 60).padStart(2, '0');
	return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** 0.784 → "78%". */
export function formatPercent(fraction: number): string {
	if (!Number.isFinite(fraction)) return '–';
	return `${Math.round(fraction * 100)}%`;
}

/** A fixed number of decimals, "–" for NaN/∞ (e.g. bits per byte before anything was scored). */
export function fixed(v: number, digits: number): string {
	return Number.isFinite(v) ? v.toFixed(digits) : '–';
}

/** A perplexity: two decimals, or scientific notation when huge (a random model's word perplexity is ~1e16). */
export function formatPpl(v: number): string {
	if (!Number.isFinite(v)) return '–';
	return v < 1e6 ? v.toFixed(2) : v.toExponential(2);
}
