// Cooperating with the event loop during a generation.

/**
 * Kernels may resolve without ever leaving the microtask queue (the cpu backend does), which would starve timers,
 * I/O and signal handlers (Ctrl-C) for a whole generation. Awaiting this lets the event loop run every 25 ms.
 */
let lastBreath = 0;
export async function breathe(): Promise<void> {
	const now = performance.now();
	if (now - lastBreath < 25) return;
	await new Promise<void>((resolve) => setImmediate(resolve));
	lastBreath = performance.now();
}

function abortError(): Error {
	const e = new Error('aborted');
	e.name = 'AbortError';
	return e;
}
export { abortError };
