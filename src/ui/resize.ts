// Redrawing the chat when the terminal changes width. A terminal reflows what is on screen when its width changes,
// so the rows Ink last drew are no longer the rows it erases before the next frame: a shrink leaves stale partial
// lines and a second status line behind, a growth eats rows of the transcript. So on a width change the screen and
// the scrollback (which holds the reflowed copy) are cleared, and the caller prints everything again.
import { useEffect, useState } from 'react';

/** Erase the screen and the scrollback, cursor home (ECMA-48 ED 2 and xterm's ED 3). */
export const CLEAR_SCREEN = '\x1b[2J\x1b[3J\x1b[H';

/**
 * A number that changes after each change of `stdout`'s width, once the screen was cleared: use it as the key of
 * what must be printed again. A dragged window sends many resize events; the redraw waits until they have been
 * quiet for `delayMs` (0 = at once). A change of height alone needs nothing.
 */
export function useWidthRedraw(stdout: NodeJS.WriteStream, delayMs: number): number {
	const [layout, setLayout] = useState(0);
	useEffect(() => {
		let columns = stdout.columns;
		let timer: NodeJS.Timeout | null = null;
		const redraw = () => {
			timer = null;
			if (stdout.columns === columns) return;
			columns = stdout.columns;
			stdout.write(CLEAR_SCREEN);
			setLayout((n) => n + 1);
		};
		const onResize = () => {
			if (delayMs <= 0) return redraw();
			if (timer) clearTimeout(timer);
			timer = setTimeout(redraw, delayMs);
		};
		stdout.on('resize', onResize);
		return () => {
			if (timer) clearTimeout(timer);
			stdout.off('resize', onResize);
		};
	}, [stdout, delayMs]);
	return layout;
}
