// Colours, in one place. Ink colours through chalk. chalk reads FORCE_COLOR (and whether the stream is a terminal)
// but not NO_COLOR, so applyColorEnv() adds that: NO_COLOR set to anything non-empty turns colour off unless
// FORCE_COLOR is given (an explicit FORCE_COLOR wins). Where colour is off, drafted-but-unverified text is bracketed
// instead, so it still reads as provisional.
import chalk from 'chalk';

/** Apply NO_COLOR (https://no-color.org) to chalk, and so to Ink. Call once before rendering. */
export function applyColorEnv(env: NodeJS.ProcessEnv = process.env): void {
	if (env.FORCE_COLOR === undefined && env.NO_COLOR !== undefined && env.NO_COLOR !== '') chalk.level = 0;
}

export const theme = {
	user: 'yellow', // text the user typed
	model: undefined, // bytes sampled by the byte model: the terminal's own colour
	accepted: 'cyan', // drafted bytes the byte model verified and kept
	pending: 'gray', // drafted bytes awaiting verification (also dim)
	prompt: 'magenta',
	rate: 'green',
	error: 'red',
	label: 'gray',
} as const;

export const colorOn = (): boolean => chalk.level > 0;
