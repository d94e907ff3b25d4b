// What happens when stdout cannot be written. A closed pipe (`| head -c 10`) is how a reader says "enough": exit 0
// quietly, as `yes | head` does in shells that do not report SIGPIPE. Anything else (ENOSPC on /dev/full, EIO) is
// a real failure: one line on stderr and exit 1, so a script notices that its output was lost.
import { errnoWords } from '../util/read-bounded.js';

export function stdoutFailed(err: unknown): never {
	const code = (err as NodeJS.ErrnoException)?.code;
	if (code === 'EPIPE') process.exit(0);
	try {
		process.stderr.write(`mambabyte: cannot write to stdout: ${errnoWords(err)}\n`);
	} finally {
		process.exit(1);
	}
}

/** True for an errno error of a write no other code claimed (file writers report theirs as UserErrors). */
export function isStdoutWriteError(err: unknown): boolean {
	const e = err as NodeJS.ErrnoException;
	return e instanceof Error && e.syscall === 'write' && typeof e.code === 'string';
}
