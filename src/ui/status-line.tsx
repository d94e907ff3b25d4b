// Two rows under the live text: the turn's figures (speed, acceptance, bytes) and the session's setting (model,
// backend, drafter, context consumed and the fixed state size). Every number comes from the engine's stats.
import { Box, Text } from 'ink';
import { acceptName, type AcceptRule } from '../app/options.js';
import type { GenerationStats } from '../engine/events.js';
import { fixed, formatBytes, formatPercent, formatRate } from './format.js';
import { theme } from './theme.js';

export interface StatusProps {
	phase: 'ready' | 'reading' | 'generating' | 'stopped';
	stats: GenerationStats | null; // this turn's (while generating) or the last turn's
	generated: number; // bytes committed this turn (shown until the engine's first stats arrive)
	backend: string;
	model: string;
	drafter: string | null;
	draftOn: boolean;
	accept: AcceptRule;
	contextBytes: number;
	stateBytes: number;
	temperature: number;
	topP: number;
}

export function Figures(p: Pick<StatusProps, 'phase' | 'stats' | 'generated' | 'draftOn'>) {
	const { stats } = p;
	// Before the engine's first figures of a speculative turn: the acceptance fields, empty.
	const spec = stats?.speculative ?? (p.draftOn && !stats ? { accepted: 0, tested: 0, acceptanceRate: NaN, meanAcceptedRun: NaN } : null);
	const mark = p.phase === 'generating' || p.phase === 'reading' ? '●' : '○';
	return (
		<Text>
			<Text color={p.phase === 'generating' ? theme.rate : theme.label}>{mark} </Text>
			<Text color={theme.rate}>{stats ? formatRate(stats.bytesPerSecond) : '– B/s'}</Text>
			<Text color={theme.label}> · </Text>
			{spec ? (
				<Text>
					accept <Text color={theme.accepted}>{spec.tested > 0 ? formatPercent(spec.acceptanceRate) : '–'}</Text>{' '}
					({spec.accepted}/{spec.tested}) · mean run {fixed(spec.meanAcceptedRun, 1)}
				</Text>
			) : (
				<Text color={theme.label}>no draft</Text>
			)}
			<Text color={theme.label}> · </Text>
			<Text>{formatBytes(Math.max(stats?.generatedBytes ?? 0, p.generated))} generated</Text>
			{p.phase === 'reading' ? <Text color={theme.label}> · reading prompt…</Text> : null}
			{p.phase === 'stopped' ? <Text color={theme.label}> · stopped</Text> : null}
		</Text>
	);
}

export function Setting(p: Omit<StatusProps, 'phase' | 'stats' | 'generated'>) {
	const draft = p.drafter ? (p.draftOn ? `draft ${p.drafter} (${acceptName(p.accept)})` : 'draft off') : 'no drafter';
	return (
		<Text color={theme.label} wrap="truncate-end">
			{p.model} on {p.backend} · {draft} · context {formatBytes(p.contextBytes)} · state {formatBytes(p.stateBytes)} (fixed) · t {p.temperature}
			{p.topP < 1 ? ` · top-p ${p.topP}` : ''}
		</Text>
	);
}

export function StatusLine(p: StatusProps) {
	return (
		<Box flexDirection="column">
			<Figures phase={p.phase} stats={p.stats} generated={p.generated} draftOn={p.drafter !== null && p.draftOn} />
			<Setting {...p} />
		</Box>
	);
}
