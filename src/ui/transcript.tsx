// Finished lines, printed once through Ink's <Static> and never redrawn (so streaming does not flicker).
import { Box, Static, Text } from 'ink';
import type { Item } from './items.js';
import { Spans } from './spans.js';
import { theme } from './theme.js';

export function ItemLine({ item }: { item: Item }) {
	switch (item.kind) {
		case 'user':
			return (
				<Text>
					<Text color={theme.prompt}>{'› '}</Text>
					<Text color={theme.user}>{item.text}</Text>
				</Text>
			);
		case 'model':
			return (
				<Box paddingLeft={2}>
					<Text>{item.spans.length === 0 ? ' ' : <Spans spans={item.spans} />}</Text>
				</Box>
			);
		case 'note':
			return (
				<Text color={item.tone === 'error' ? theme.error : undefined} dimColor={item.tone === 'dim'}>
					{item.text}
				</Text>
			);
	}
}

export function Transcript({ items }: { items: Item[] }) {
	return <Static items={items}>{(item) => <ItemLine key={item.id} item={item} />}</Static>;
}
