// Errors a user can act on. The CLI prints `message` as one line and exits with `exitCode`; never a stack trace.

/** A failure caused by input (a file, a checkpoint, a stream): exit code 1. */
export class UserError extends Error {
	readonly exitCode: number = 1;
	constructor(message: string) {
		super(message);
		this.name = 'UserError';
	}
}

/** A bad command line (unknown flag, bad value): exit code 2. */
export class UsageError extends UserError {
	override readonly exitCode: number = 2;
	constructor(message: string) {
		super(message);
		this.name = 'UsageError';
	}
}
