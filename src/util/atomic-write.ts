// Replacing a file without ever destroying the good one: the new bytes go to a temporary file with a unique name in
// the target's folder (so the rename stays on one filesystem), created with O_CREAT|O_EXCL|O_NOFOLLOW (a planted
// file or symlink under that name is refused, never written through), fsynced, then renamed over the target
// (rename replaces a symlink at the target; it never writes into what the link points at). On any failure the
// temporary file is removed and the target is untouched. Used by /save, `convert`, and any writer of model files.
//
//   writeFileAtomic(path, data)          data: a Uint8Array or an iterable of chunks (written one at a time)
//   const f = AtomicFile.create(path)    several files that must appear together: write each, then commit
//   f.write(chunk) … f.finish()          in the order the reader needs (config last), abort() the rest on error
//   f.commit() / f.abort()
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { randomBytes } from 'node:crypto';
import { UserError } from '../errors.js';
import { errnoWords } from './read-bounded.js';

const WRITE_CHUNK = 1 << 30; // writeSync takes at most 2 GiB per call

/** A one-line UserError for a failed write of `path` (ENOSPC, EROFS, EACCES … named as such). */
function writeError(path: string, err: unknown): UserError {
	if (err instanceof UserError) return err;
	return new UserError(`${path}: cannot write: ${errnoWords(err)}`);
}

export class AtomicFile {
	private fd: number | null;
	private state: 'open' | 'finished' | 'done' = 'open';

	private constructor(readonly path: string, readonly tempPath: string, fd: number) {
		this.fd = fd;
	}

	/** Create the temporary file beside `path` (mode 0o644 less the umask). */
	static create(path: string): AtomicFile {
		const dir = nodePath.dirname(path);
		const temp = nodePath.join(dir, `.${nodePath.basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
		const c = fs.constants;
		let fd: number;
		try {
			fd = fs.openSync(temp, c.O_WRONLY | c.O_CREAT | c.O_EXCL | c.O_NOFOLLOW, 0o644);
		} catch (err) {
			throw writeError(path, err);
		}
		return new AtomicFile(path, temp, fd);
	}

	write(bytes: Uint8Array): void {
		if (this.state !== 'open' || this.fd === null) throw new Error(`internal: write to ${this.path} after finish`);
		let done = 0;
		try {
			while (done < bytes.byteLength) {
				done += fs.writeSync(this.fd, bytes, done, Math.min(WRITE_CHUNK, bytes.byteLength - done));
			}
		} catch (err) {
			this.abort();
			throw writeError(this.path, err);
		}
	}

	/** Flush the data to the disk and close; the target is still untouched. */
	finish(): void {
		if (this.state !== 'open' || this.fd === null) return;
		try {
			fs.fsyncSync(this.fd);
			fs.closeSync(this.fd);
			this.fd = null;
			this.state = 'finished';
		} catch (err) {
			this.abort();
			throw writeError(this.path, err);
		}
	}

	/** Rename the finished temporary file over the target (and sync the folder, so the rename itself is durable). */
	commit(): void {
		this.finish();
		if (this.state !== 'finished') throw new Error(`internal: commit of ${this.path} twice`);
		try {
			fs.renameSync(this.tempPath, this.path);
		} catch (err) {
			this.abort();
			throw writeError(this.path, err);
		}
		this.state = 'done';
		syncDir(nodePath.dirname(this.path));
	}

	/** Remove the temporary file (a no-op once committed). Never throws. */
	abort(): void {
		if (this.state === 'done') return;
		if (this.fd !== null) {
			try {
				fs.closeSync(this.fd);
			} catch {
				/* already failing: the unlink below is what matters */
			}
			this.fd = null;
		}
		try {
			fs.unlinkSync(this.tempPath);
		} catch {
			/* gone already */
		}
		this.state = 'done';
	}
}

function syncDir(dir: string): void {
	// Best effort: some filesystems refuse fsync on a directory (EINVAL/EISDIR); the data itself is synced.
	try {
		const fd = fs.openSync(dir, fs.constants.O_RDONLY);
		try {
			fs.fsyncSync(fd);
		} finally {
			fs.closeSync(fd);
		}
	} catch {
		/* see above */
	}
}

/** Replace `path` with `data` atomically. Returns the number of bytes written. */
export function writeFileAtomic(path: string, data: Uint8Array | Iterable<Uint8Array>): number {
	const f = AtomicFile.create(path);
	let n = 0;
	try {
		for (const chunk of data instanceof Uint8Array ? [data] : data) {
			f.write(chunk);
			n += chunk.byteLength;
		}
		f.commit();
	} catch (err) {
		f.abort();
		throw err;
	}
	return n;
}

/** The real path of `p`, or of its deepest existing ancestor joined with the rest (for a folder not made yet). */
export function realPathOf(p: string): string {
	const abs = nodePath.resolve(p);
	const rest: string[] = [];
	let cur = abs;
	for (;;) {
		try {
			return nodePath.join(fs.realpathSync(cur), ...rest);
		} catch {
			const parent = nodePath.dirname(cur);
			if (parent === cur) return abs;
			rest.unshift(nodePath.basename(cur));
			cur = parent;
		}
	}
}
