// The recurrent state of the GPU-resident forward, kept on the device: per layer h (E, N) and the conv state
// (E, k−1) in two buffers, each layer at an aligned stride. It is copied on the device (clone, copyFrom), uploaded
// from a host MambaState, and read back only for toHost (saving a session).
import { whole, type DeviceBuffer, type Runner } from '../../backend/resident/runner.js';
import { MambaState } from '../state.js';
import type { MambaConfig, ModelState } from '../types.js';
import { aligned } from './split.js';

/** Recurrent state kept on the device: per layer h (E, N) and the conv state (E, k−1), each at a 64-float stride. */
export class DeviceState implements ModelState {
	constructor(
		private readonly runner: Runner,
		private readonly c: MambaConfig,
		readonly ssm: DeviceBuffer, // (L, ssmStride)
		readonly conv: DeviceBuffer, // (L, convStride)
		public position = 0,
	) {}

	static zeros(runner: Runner, c: MambaConfig): DeviceState {
		const s = new DeviceState(runner, c, runner.alloc(c.nLayer * ssmStride(c)), runner.alloc(c.nLayer * convStride(c)));
		s.upload(MambaState.zeros(c));
		return s;
	}

	clone(): DeviceState {
		const s = new DeviceState(this.runner, this.c, this.runner.alloc(this.ssm.length), this.runner.alloc(this.conv.length), this.position);
		s.copyFrom(this);
		return s;
	}

	copyFrom(other: ModelState): void {
		if (this.freed || (other instanceof DeviceState && other.freed)) throw new Error('internal: a freed device state was used');
		if (other instanceof DeviceState) {
			this.runner.copy(whole(other.ssm), whole(this.ssm));
			this.runner.copy(whole(other.conv), whole(this.conv));
		} else if (other instanceof MambaState) {
			this.upload(other);
		} else {
			throw new Error('internal: unknown state kind');
		}
		this.position = other.position;
	}

	private upload(h: MambaState): void {
		const ss = ssmStride(this.c), cs = convStride(this.c);
		const ssm = new Float32Array(this.ssm.length), conv = new Float32Array(this.conv.length);
		for (let l = 0; l < this.c.nLayer; l++) {
			ssm.set(h.ssm[l], l * ss);
			conv.set(h.conv[l], l * cs);
		}
		this.runner.upload(whole(this.ssm), ssm);
		this.runner.upload(whole(this.conv), conv);
	}

	async toHost(): Promise<MambaState> {
		const [ssm, conv] = [await this.runner.read(whole(this.ssm)), await this.runner.read(whole(this.conv))];
		const E = this.c.dInner, N = this.c.dState, K1 = this.c.dConv - 1;
		const h = MambaState.zeros(this.c);
		for (let l = 0; l < this.c.nLayer; l++) {
			h.ssm[l].set(ssm.subarray(l * ssmStride(this.c), l * ssmStride(this.c) + E * N));
			h.conv[l].set(conv.subarray(l * convStride(this.c), l * convStride(this.c) + E * K1));
		}
		h.position = this.position;
		return h;
	}

	get byteLength(): number {
		const c = this.c;
		return c.nLayer * c.dInner * (c.dState + c.dConv - 1) * 4;
	}

	free(): void {
		if (this.freed) return;
		this.freed = true;
		this.runner.free(this.ssm);
		this.runner.free(this.conv);
	}

	/** Whether free() was called: a freed state must not be used again. */
	freed = false;
}

/** Floats between two layers' h in a DeviceState (and in the plans' work buffer). */
export const ssmStride = (c: MambaConfig): number => aligned(c.dInner * c.dState);
/** Floats between two layers' conv states. */
export const convStride = (c: MambaConfig): number => aligned(c.dInner * (c.dConv - 1));
