// A growable byte buffer: the committed bytes a model has not consumed yet (the Session's pending bytes, the
// drafter's unfed text).

export class ByteBuffer {
	private buf = new Uint8Array(64);
	length = 0;

	push(b: number): void {
		if (this.length === this.buf.length) this.grow(this.length + 1);
		this.buf[this.length++] = b;
	}

	pushAll(bytes: ArrayLike<number>): void {
		if (this.length + bytes.length > this.buf.length) this.grow(this.length + bytes.length);
		for (let i = 0; i < bytes.length; i++) this.buf[this.length + i] = bytes[i];
		this.length += bytes.length;
	}

	/** Drop the first n bytes. */
	shift(n: number): void {
		this.buf.copyWithin(0, n, this.length);
		this.length -= n;
	}

	view(): Uint8Array {
		return this.buf.subarray(0, this.length);
	}

	clear(): void {
		this.length = 0;
	}

	private grow(min: number): void {
		let cap = this.buf.length * 2;
		while (cap < min) cap *= 2;
		const b = new Uint8Array(cap);
		b.set(this.buf.subarray(0, this.length));
		this.buf = b;
	}
}
