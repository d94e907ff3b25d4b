// The recurrent state of a Mamba LM: per layer the conv state (E, k−1) and the SSM state h (E, N).
// Its size is fixed by the architecture — it does not grow with context length — so it can be cloned,
// snapshotted and restored cheaply (speculative decoding rolls back to a snapshot after a rejected draft).
import type { HostState, MambaConfig } from './types.js';

export class MambaState implements HostState {
	constructor(
		readonly conv: Float32Array[], // per layer (E, k−1): the last k−1 raw conv inputs, oldest first
		readonly ssm: Float32Array[], // per layer (E, N)
		public position = 0, // tokens consumed so far
	) {}

	static zeros(c: MambaConfig): MambaState {
		const conv = Array.from({ length: c.nLayer }, () => new Float32Array(c.dInner * (c.dConv - 1)));
		const ssm = Array.from({ length: c.nLayer }, () => new Float32Array(c.dInner * c.dState));
		return new MambaState(conv, ssm);
	}

	clone(): MambaState {
		return new MambaState(this.conv.map((a) => a.slice()), this.ssm.map((a) => a.slice()), this.position);
	}

	/** Restore this state from a snapshot (in place, no allocation). */
	copyFrom(other: MambaState): void {
		for (let l = 0; l < this.conv.length; l++) {
			this.conv[l].set(other.conv[l]);
			this.ssm[l].set(other.ssm[l]);
		}
		this.position = other.position;
	}

	/** Host arrays are the garbage collector's; marked so a use after free is caught. */
	free(): void {
		this.freed = true;
	}

	freed = false;

	async toHost(): Promise<MambaState> {
		return this.clone();
	}

	/** Bytes of state: what a conversation costs to keep, however long it is. */
	get byteLength(): number {
		let n = 0;
		for (let l = 0; l < this.conv.length; l++) n += this.conv[l].byteLength + this.ssm[l].byteLength;
		return n;
	}
}
