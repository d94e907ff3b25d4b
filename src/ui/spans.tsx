// Text whose parts came from different places (user, byte model, accepted draft), each in its own colour.
import { Text } from 'ink';
import { theme } from './theme.js';
import type { Span } from './turn.js';

const color = (s: Span['source']) => (s === 'user' ? theme.user : s === 'draft' ? theme.accepted : theme.model);

export function Spans({ spans }: { spans: Span[] }) {
	return (
		<>
			{spans.map((s, i) => (
				<Text key={i} color={color(s.source)}>
					{s.text}
				</Text>
			))}
		</>
	);
}
