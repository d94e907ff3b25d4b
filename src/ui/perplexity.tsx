// `mambabyte perplexity` on a terminal: per file a progress bar with bytes/s and time left and the running bits
// per byte; finished files move up into <Static>; at the end a table of all files and, with --curve, a bar chart
// and a sparkline of bits per byte against position (does the model hold up past its training length?).
// It renders PerplexityEvents and nothing else; the CLI calls it only when stderr is a TTY and --json is not given.
import { Box, render, Static, Text } from 'ink';
import { inputNote } from '../app/score.js';
import type { PerplexityEvent, PerplexityResult } from '../engine/events.js';
import { bar, barChart, sparkline } from './chart.js';
import { fixed, formatBytes, formatDuration, formatPpl, formatRate } from './format.js';
import { applyColorEnv, theme } from './theme.js';

export interface FileProgress {
	file: string;
	total: number | null;
	done: number;
	bitsPerByte: number;
	bytesPerSecond: number;
}

/** Everything the view shows, built from events only. */
export interface PerplexityState {
	current: FileProgress | null;
	results: PerplexityResult[];
}

export const emptyPerplexity = (): PerplexityState => ({ current: null, results: [] });

export function applyPerplexity(s: PerplexityState, e: PerplexityEvent): PerplexityState {
	switch (e.type) {
		case 'file':
			return { ...s, current: { file: e.file, total: e.bytes, done: 0, bitsPerByte: NaN, bytesPerSecond: NaN } };
		case 'progress':
			return { ...s, current: { file: e.file, total: e.total, done: e.done, bitsPerByte: e.bitsPerByte, bytesPerSecond: e.bytesPerSecond } };
		case 'result':
			return { current: null, results: [...s.results, e.result] };
	}
}

export function ProgressLine({ p, width = 24 }: { p: FileProgress; width?: number }) {
	const known = p.total !== null && p.total > 0;
	const frac = known ? Math.min(1, p.done / (p.total as number)) : 0;
	const left = known && p.bytesPerSecond > 0 ? ((p.total as number) - p.done) / p.bytesPerSecond : NaN;
	return (
		<Text>
			<Text bold>{p.file}</Text>
			{'  '}
			{known ? (
				<Text>
					<Text color={theme.accepted}>{bar(frac, 1, width).padEnd(width, '·')}</Text> {String(Math.floor(frac * 100)).padStart(3)}%
				</Text>
			) : (
				<Text>{formatBytes(p.done)} read</Text>
			)}
			{'  '}
			<Text color={theme.rate}>{formatRate(p.bytesPerSecond)}</Text>
			{known ? `  ${formatDuration(left)} left` : ''}
			{'  '}
			<Text bold>{fixed(p.bitsPerByte, 4)}</Text> bits/byte
		</Text>
	);
}

export function DoneLine({ r }: { r: PerplexityResult }) {
	return (
		<Text>
			<Text color={theme.rate}>✓</Text> {r.file}  <Text bold>{fixed(r.bits_per_byte, 4)}</Text> bits/byte · word ppl {formatPpl(r.word_perplexity)} ·{' '}
			{formatBytes(r.bytes)} in {formatDuration(r.seconds)} ({formatRate(r.bytes_per_second)}){inputNote(r) ? ` · ${inputNote(r)}` : ''}
		</Text>
	);
}

/** The final table as lines of text: file, bytes, bits/byte, word ppl, bytes/s (numbers right-aligned). */
export function tableLines(results: PerplexityResult[]): string[] {
	const head = ['file', 'bytes', 'bits/byte', 'word ppl', 'bytes/s'];
	const rows = results.map((r) => [r.file, String(r.bytes), fixed(r.bits_per_byte, 4), formatPpl(r.word_perplexity), fixed(r.bytes_per_second, 1)]);
	const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
	const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ');
	return [line(head), w.map((n) => '─'.repeat(n)).join('  '), ...rows.map(line)];
}

export function ResultTable({ results }: { results: PerplexityResult[] }) {
	const [head, rule, ...rows] = tableLines(results);
	return (
		<Box flexDirection="column">
			<Text bold>{head}</Text>
			<Text color={theme.label}>{rule}</Text>
			{rows.map((r, i) => (
				<Text key={i}>{r}</Text>
			))}
		</Box>
	);
}

export function CurveChart({ r }: { r: PerplexityResult }) {
	const curve = r.curve ?? [];
	if (curve.length === 0) return null;
	const spark = sparkline(curve);
	const finite = curve.map((c) => c.bits_per_byte).filter(Number.isFinite);
	return (
		<Box flexDirection="column" marginTop={1}>
			<Text bold>{r.file}: bits per byte by position</Text>
			{barChart(curve).map((l, i) => (
				<Text key={i}>{l}</Text>
			))}
			{spark ? (
				<Text>
					<Text color={theme.accepted}>{spark}</Text>
					<Text color={theme.label}>
						{'  '}min {fixed(Math.min(...finite), 3)} · max {fixed(Math.max(...finite), 3)} over {curve.length} ranges of {formatBytes(curve[0].end - curve[0].start)}
					</Text>
				</Text>
			) : null}
		</Box>
	);
}

export function PerplexityView({ state, curve, final }: { state: PerplexityState; curve: boolean; final: boolean }) {
	return (
		<>
			<Static items={state.results}>{(r, i) => <DoneLine key={i} r={r} />}</Static>
			{state.current ? <ProgressLine p={state.current} /> : null}
			{final && state.results.length > 0 ? (
				<Box flexDirection="column" marginTop={1}>
					<ResultTable results={state.results} />
					{inputNote(state.results[0]) ? <Text color={theme.label}>scored: {inputNote(state.results[0])}</Text> : null}
					{curve ? state.results.map((r, i) => <CurveChart key={i} r={r} />) : null}
				</Box>
			) : null}
		</>
	);
}

const macrotask = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Show scoring live on a terminal (stderr by default) and return the results in order. Events are applied as they
 * come; the screen is redrawn at most every `intervalMs`, and the loop yields to the event loop now and then so
 * Ink can draw while the model computes on this thread.
 */
export async function renderPerplexity(
	events: AsyncIterable<PerplexityEvent>,
	opts: { curve: boolean; stream?: NodeJS.WriteStream; intervalMs?: number },
): Promise<PerplexityResult[]> {
	applyColorEnv();
	const interval = opts.intervalMs ?? 50;
	let state = emptyPerplexity();
	const view = (final: boolean) => <PerplexityView state={state} curve={opts.curve} final={final} />;
	const ink = render(view(false), { stdout: opts.stream ?? process.stderr, patchConsole: false, maxFps: 30 }); // Ink draws each (≥ 50 ms apart) update at once
	let last = 0;
	try {
		const it = events[Symbol.asyncIterator]();
		for (;;) {
			const n = await it.next();
			if (n.done) {
				// A generator may return its result instead of yielding it: count it once.
				const r = n.value as PerplexityResult | undefined;
				if (r && typeof r === 'object' && 'bits_per_byte' in r && !state.results.includes(r) && state.current?.file === r.file) {
					state = applyPerplexity(state, { type: 'result', result: r });
				}
				break;
			}
			state = applyPerplexity(state, n.value);
			const now = performance.now();
			if (n.value.type !== 'progress' || now - last >= interval) {
				ink.rerender(view(false));
				last = now;
				await macrotask();
			}
		}
		ink.rerender(view(true));
	} finally {
		ink.unmount();
		await ink.waitUntilExit().catch(() => {});
	}
	return state.results;
}
