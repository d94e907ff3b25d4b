// Colours, in one place. Ink colours through chalk, so NO_COLOR / FORCE_COLOR decide whether any are written;
// where colour is off, drafted-but-unverified text is bracketed instead, so it still reads as provisional.
import chalk from 'chalk';

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
