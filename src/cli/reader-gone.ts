// Noticing that the reader of stdout left (`mambabyte perplexity a b | head -c 20`) while there is nothing to write.
// A closed pipe only shows as EPIPE on the next write, and perplexity writes one line per file, which may be
// minutes apart. On Linux, when stdout is a pipe, the processes that hold its read end are found once in /proc
// (fd links to pipe:[INODE] opened read-only), then checked at most every `everyMs`; when none holds it any more (and
// a fresh scan finds no new holder, e.g. a child that inherited it), the check says so. Elsewhere, or when no reader is
// visible (another user's process), this does nothing and EPIPE at the next write still ends the run.
import { fstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';

function readersOf(target: string): string[] {
	const found: string[] = [];
	let pids: string[];
	try {
		pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid);
	} catch {
		return found;
	}
	for (const pid of pids) {
		let fds: string[];
		try {
			fds = readdirSync(`/proc/${pid}/fd`);
		} catch {
			continue; // gone, or not ours to see
		}
		for (const fd of fds) {
			try {
				if (readlinkSync(`/proc/${pid}/fd/${fd}`) !== target) continue;
				const flags = /flags:\s*([0-7]+)/.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
				if (flags && (parseInt(flags[1], 8) & 3) !== 1) found.push(`/proc/${pid}/fd/${fd}`); // not write-only
			} catch {
				// closed meanwhile
			}
		}
	}
	return found;
}

/**
 * A check for stdout's pipe readers having left, to call often (it looks at /proc at most every `everyMs`). It is
 * polled, not a timer: scoring runs on this thread and may not leave room for timers between chunks.
 */
export function readerGone(everyMs = 500): () => boolean {
	const never = () => false;
	if (process.platform !== 'linux') return never;
	let target: string;
	try {
		const st = fstatSync(1);
		if (!st.isFIFO()) return never;
		target = `pipe:[${st.ino}]`;
	} catch {
		return never;
	}
	let known = readersOf(target);
	if (known.length === 0) return never;
	const holds = (link: string) => {
		try {
			return readlinkSync(link) === target;
		} catch {
			return false;
		}
	};
	let last = performance.now();
	let gone = false;
	return () => {
		const now = performance.now();
		if (gone || now - last < everyMs) return gone;
		last = now;
		known = known.filter(holds);
		if (known.length === 0) known = readersOf(target);
		gone = known.length === 0;
		return gone;
	};
}
