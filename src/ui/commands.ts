// What a line typed at the chat prompt means: text for the model, or a /command. Pure parsing; chat.tsx acts.
import { parseAccept, type AcceptRule } from '../app/options.js';

export type Command =
	| { kind: 'text'; text: string }
	| { kind: 'help' }
	| { kind: 'reset' }
	| { kind: 'temp'; value: number }
	| { kind: 'topp'; value: number }
	| { kind: 'draft'; on: boolean }
	| { kind: 'accept'; accept: AcceptRule }
	| { kind: 'save'; file: string }
	| { kind: 'load'; file: string }
	| { kind: 'stats' }
	| { kind: 'exit' }
	| { kind: 'error'; message: string };

export const HELP: [string, string][] = [
	['/help', 'this list'],
	['/reset', 'forget the conversation (zero the recurrent state)'],
	['/temp X', 'sampling temperature, 0 = greedy'],
	['/topp X', 'nucleus sampling, in (0, 1]; 1 = off'],
	['/draft on|off', 'speculative decoding with the subword drafter'],
	['/accept exact|top:K', 'exact keeps plain decoding\'s output; top:3 is the paper\'s rule'],
	['/save FILE', 'write the state and the transcript to FILE'],
	['/load FILE', 'resume a saved conversation'],
	['/stats', 'totals for this session'],
	['/exit', 'leave (also Ctrl-C at an empty prompt, or Ctrl-D)'],
	['//text', 'send text that begins with a slash'],
];

export function parseLine(line: string): Command {
	if (!line.startsWith('/')) return { kind: 'text', text: line };
	if (line.startsWith('//')) return { kind: 'text', text: line.slice(1) };
	const m = /^\/(\S+)\s*(.*)$/.exec(line.trimEnd());
	const name = (m?.[1] ?? '').toLowerCase();
	const arg = (m?.[2] ?? '').trim();
	const num = (lo: number, hi: number, loOpen: boolean, what: string): number | string => {
		const v = arg === '' ? NaN : Number(arg);
		const ok = Number.isFinite(v) && (loOpen ? v > lo : v >= lo) && v <= hi;
		return ok ? v : `/${name} ${arg}: expected ${what}`;
	};
	switch (name) {
		case 'help':
		case '?':
			return { kind: 'help' };
		case 'reset':
			return { kind: 'reset' };
		case 'temp':
		case 'temperature': {
			const v = num(0, 100, false, 'a number from 0 (greedy) to 100');
			return typeof v === 'number' ? { kind: 'temp', value: v } : { kind: 'error', message: v };
		}
		case 'topp':
		case 'top-p': {
			const v = num(0, 1, true, 'a number in (0, 1]');
			return typeof v === 'number' ? { kind: 'topp', value: v } : { kind: 'error', message: v };
		}
		case 'draft':
			if (arg === 'on' || arg === 'off') return { kind: 'draft', on: arg === 'on' };
			return { kind: 'error', message: `/draft ${arg}: expected on or off` };
		case 'accept':
			try {
				return { kind: 'accept', accept: parseAccept(arg) };
			} catch {
				return { kind: 'error', message: `/accept ${arg}: expected exact or top:K with K from 1 to 256` };
			}
		case 'save':
		case 'load':
			if (arg === '') return { kind: 'error', message: `/${name}: expected a FILE` };
			return { kind: name, file: arg };
		case 'stats':
			return { kind: 'stats' };
		case 'exit':
		case 'quit':
		case 'q':
			return { kind: 'exit' };
		default:
			return { kind: 'error', message: `/${name}: unknown command (try /help)` };
	}
}
