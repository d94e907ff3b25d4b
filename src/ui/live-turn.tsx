// The part of the model's answer still changing: the unfinished line, then the drafted bytes waiting for the
// verifier, dim (or ‹bracketed› without colour). They turn cyan when accepted, or vanish when rejected.
import { Box, Text } from 'ink';
import { Spans } from './spans.js';
import { colorOn, theme } from './theme.js';
import type { TurnView } from './turn.js';

export function PendingDraft({ text }: { text: string }) {
	if (text === '') return null;
	return (
		<Text color={theme.pending} dimColor>
			{colorOn() ? text : `‹${text}›`}
		</Text>
	);
}

export function LiveTurn({ view }: { view: TurnView }) {
	if (view.line.length === 0 && view.draft === '') return null;
	return (
		<Box paddingLeft={2}>
			<Text>
				<Spans spans={view.line} />
				<PendingDraft text={view.draft} />
			</Text>
		</Box>
	);
}
