// The input line: "› " and the text being typed, with a block cursor. While the model writes, a hint instead. Above
// it, the lines sent while the model was writing, which go out one by one when it is done.
import { Box, Text } from 'ink';
import { colorOn, theme } from './theme.js';

export interface PromptProps {
	value: string;
	cursor: number;
	busy: boolean;
	queued?: readonly string[];
}

export function Prompt({ queued = [], ...p }: PromptProps) {
	if (queued.length === 0) return <InputLine {...p} />;
	return (
		<Box flexDirection="column">
			{queued.map((line, i) => (
				// one row each, however long: the live part must stay a few rows
				<Text key={i} color={theme.label} wrap="truncate-end">
					{'  queued › '}
					{line}
				</Text>
			))}
			<InputLine {...p} />
		</Box>
	);
}

function InputLine({ value, cursor, busy }: Omit<PromptProps, 'queued'>) {
	if (busy) {
		return (
			<Text color={theme.label}>
				{'  '}Ctrl-C stops{value ? ` · next: ${value}` : ''}
			</Text>
		);
	}
	const atEnd = cursor >= value.length;
	const cp = value.codePointAt(cursor);
	const width = cp !== undefined && cp > 0xffff ? 2 : 1;
	const under = atEnd ? ' ' : value.slice(cursor, cursor + width);
	// Ink hides the terminal's cursor, so draw one: inverse video, or an underscore at the end without colour.
	const mark = colorOn() ? <Text inverse>{under}</Text> : atEnd ? '_' : under;
	return (
		<Text>
			<Text color={theme.prompt}>{'› '}</Text>
			{value.slice(0, cursor)}
			{mark}
			{atEnd ? '' : value.slice(cursor + width)}
			{value === '' ? <Text color={theme.label}>type text for the model to continue · /help for commands</Text> : null}
		</Text>
	);
}
