// Text charts for bits per byte against position: horizontal bars (one row per position range) and a one-line
// sparkline. Pure string functions, so they are tested as text and work without colour.
import { formatBytes } from './format.js';

export interface CurvePoint {
	start: number;
	end: number;
	bits_per_byte: number;
}

const EIGHTHS = ['', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
const SPARKS = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/** A bar of `value / max` of `width` cells, in eighths of a cell. */
export function bar(value: number, max: number, width: number): string {
	if (!(value > 0) || !(max > 0)) return '';
	const eighths = Math.round((Math.min(value, max) / max) * width * 8);
	return '█'.repeat(Math.floor(eighths / 8)) + EIGHTHS[eighths % 8];
}

/**
 * At most `rows` points: neighbouring position ranges merged, their bits per byte averaged weighted by the bytes
 * they cover (so the merged value is the bits per byte of the merged range).
 */
export function mergeCurve(curve: CurvePoint[], rows: number): CurvePoint[] {
	if (curve.length <= rows) return curve;
	const per = Math.ceil(curve.length / rows);
	const out: CurvePoint[] = [];
	for (let i = 0; i < curve.length; i += per) {
		const group = curve.slice(i, i + per);
		let bits = 0;
		let n = 0;
		for (const p of group) {
			const w = Math.max(1, p.end - p.start);
			bits += p.bits_per_byte * w;
			n += w;
		}
		out.push({ start: group[0].start, end: group[group.length - 1].end, bits_per_byte: bits / n });
	}
	return out;
}

/** One row per position range: "  0-2.0 KiB      ██████████▍ 1.234". Bars start at 0 bits per byte. */
export function barChart(curve: CurvePoint[], opts: { rows?: number; width?: number } = {}): string[] {
	const points = mergeCurve(curve.filter((p) => Number.isFinite(p.bits_per_byte)), opts.rows ?? 16);
	if (points.length === 0) return [];
	const width = opts.width ?? 40;
	const max = Math.max(...points.map((p) => p.bits_per_byte));
	const labels = points.map((p) => `${formatBytes(p.start).replace(/ B$/, '')}–${formatBytes(p.end)}`);
	const lw = Math.max(...labels.map((l) => l.length));
	return points.map((p, i) => `${labels[i].padStart(lw)}  ${bar(p.bits_per_byte, max, width).padEnd(width)} ${p.bits_per_byte.toFixed(3)}`);
}

/** "▃▃▄▅▇█": each range's bits per byte between the curve's min (▁) and max (█); empty when under two points. */
export function sparkline(curve: CurvePoint[], width = 60): string {
	const points = mergeCurve(curve.filter((p) => Number.isFinite(p.bits_per_byte)), width);
	if (points.length < 2) return '';
	const v = points.map((p) => p.bits_per_byte);
	const lo = Math.min(...v);
	const hi = Math.max(...v);
	return v.map((x) => SPARKS[hi > lo ? Math.round(((x - lo) / (hi - lo)) * 7) : 3]).join('');
}
