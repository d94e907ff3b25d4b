// What a verify pass of the GPU-resident forward keeps so that keep(j) costs two passes instead of a forward
// (src/model/resident.ts verify). The verify plan (plans.ts chunkPlan with these records) writes, per layer, in_proj's
// xz, the conv's output x' (and next conv state), x_proj's dbc and Δ into per-layer slices of four record buffers
// instead of the shared activation buffers, so nothing of the pass is overwritten by the next layer; the state
// before the pass is already on the device, in the work buffers the plan read it from (plans.ts). keep(j) is then:
//   scanKeep       every layer's h after j steps, replayed from the state before the pass (kernels/scan.ts)
//   convStateKeep  every layer's conv state after j inputs (kernels/conv.ts)
// then two copies into the state. No projection runs again.
//
// Why this and not the alternatives. Writing h after every position (E·N floats per layer and position) would make
// keep one copy per layer, 2L commands, and multiply the scan's writes by T; replaying from the block-start states
// the chunk scan already writes (at most 3 steps) needs one pass per layer, because those live in per-layer buffers.
// Every pass and copy has a fixed cost on the GPU and on the host (docs/backends.md), larger than replaying ≤ 32
// elementwise steps, so one pass over all layers for each of h and the conv state is the cheapest for small T.
// That needs every layer in one buffer: gpu.js indexes in f32, exact below 2^24, which bounds how many positions
// a pass can record (recordCapacity); a longer verify pass falls back to a device copy of the state and a refeed.
import { range, whole, type DeviceBuffer, type Pass, type Program, type Runner, type View } from '../../backend/resident/runner.js';
import { scanKeep } from '../../../kernels/scan.js';
import { convStateKeep } from '../../../kernels/conv.js';
import { dbcColumns } from '../../../kernels/layout.js';
import type { MambaConfig } from '../types.js';
import { convStride, ssmStride } from './device-state.js';
import { aligned } from './split.js';
import { paramsStride, type Uploaded } from './upload.js';

/** The longest verify pass worth recording: drafts are a few subwords, and records cost memory per position. */
export const VERIFY_MAX = 32;

const EXACT = 1 << 24; // gpu.js's f32 indices are exact below this

/** Per-layer strides of the record buffers for `capacity` positions. */
function strides(c: MambaConfig, capacity: number) {
	const { dInner: E, dConv: K } = c;
	const RC = dbcColumns(c.dtRank, c.dState).width;
	return { xz: aligned(capacity * 2 * E), x: aligned(capacity * E + E * (K - 1)), delta: aligned(capacity * E), dbc: aligned(capacity * RC) };
}

/**
 * The most positions (a multiple of 4, at most min(chunk, VERIFY_MAX)) a verify pass records for this shape, so
 * that every buffer the rollback indexes across layers stays exactly indexable; 0: never record (refeed instead).
 */
export function recordCapacity(c: MambaConfig, chunk: number): number {
	const L = c.nLayer;
	if (Math.max(L * ssmStride(c), L * convStride(c), L * paramsStride(c)) >= EXACT) return 0;
	for (let T = Math.floor(Math.min(chunk, VERIFY_MAX) / 4) * 4; T >= 4; T -= 4) {
		const s = strides(c, T);
		if (L * Math.max(s.xz, s.x, s.delta, s.dbc) < EXACT) return T;
	}
	return 0;
}

/** Where the verify plan writes layer l's activations, for a pass of TB blocks. */
export interface LayerRecord {
	xz: View; // in_proj's output (TB, 2E, 4)
	conv: View; // [x' (TB, E, 4) | next conv state (E, k−1)], the conv's output
	dbc: View; // x_proj's output (TB, RC, 4)
	delta: View; // (TB, E, 4)
}

/** The record buffers, the two rollback programs and their passes (one pair per j), of one ResidentMamba. */
export class Records {
	private readonly keepPlans = new Map<number, Pass[]>();
	private readonly stride: ReturnType<typeof strides>;
	private readonly bufs: Record<'xz' | 'x' | 'delta' | 'dbc' | 'ssm' | 'conv', DeviceBuffer>;

	private constructor(
		private readonly r: Runner, private readonly c: MambaConfig, private readonly dev: Uploaded, readonly capacity: number,
		private readonly programs: { scan: Program; conv: Program },
	) {
		this.stride = strides(c, capacity);
		const L = c.nLayer, s = this.stride;
		this.bufs = {
			xz: r.alloc(L * s.xz), x: r.alloc(L * s.x), delta: r.alloc(L * s.delta), dbc: r.alloc(L * s.dbc),
			ssm: r.alloc(L * ssmStride(c)), conv: r.alloc(L * convStride(c)), // keep's output, in a DeviceState's layout
		};
	}

	/**
	 * Compile the rollback kernels and allocate the records, with the model: they are the model's own buffers, like
	 * its work buffers, and a verify pass must not allocate.
	 */
	static async create(r: Runner, c: MambaConfig, dev: Uploaded, capacity: number): Promise<Records> {
		const { dInner: E, dState: N, dConv: K } = c;
		const cols = dbcColumns(c.dtRank, N);
		const s = strides(c, capacity);
		const A = 'array' as const;
		const scan = await r.program(scanKeep, {
			E, N, RC: cols.width, Bc: cols.B, hStride: ssmStride(c), xStride: s.x, dStride: s.delta, bStride: s.dbc,
			pStride: paramsStride(c), TMAX: capacity,
		}, { delta: A, x: A, dbc: A, p: A, h0: A, J: 'scalar' });
		const conv = await r.program(convStateKeep, { E, K, cStride: convStride(c), zStride: s.xz }, { xz: A, state: A, J: 'scalar' });
		return new Records(r, c, dev, capacity, { scan, conv });
	}

	/** Layer l's record slices for a pass of TB blocks (TB ≤ capacity / 4). */
	layer(l: number, TB: number): LayerRecord {
		const { dInner: E, dConv: K } = this.c;
		const RC = dbcColumns(this.c.dtRank, this.c.dState).width;
		const s = this.stride, b = this.bufs;
		return {
			xz: range(b.xz, l * s.xz, TB * 2 * E * 4),
			conv: range(b.x, l * s.x, TB * E * 4 + E * (K - 1)),
			dbc: range(b.dbc, l * s.dbc, TB * RC * 4),
			delta: range(b.delta, l * s.delta, TB * E * 4),
		};
	}

	/**
	 * keep(j) after a recorded pass: both rollback passes, writing the kept state into `ssm` and `conv` (whole
	 * views in a DeviceState's layout) to be copied into the state. The work buffers must still hold the state
	 * before the pass, and the records the pass's own (resident.ts guards both).
	 */
	keep(j: number): { passes: readonly Pass[]; ssm: View; conv: View } {
		if (!(j >= 0 && j <= this.capacity)) throw new Error(`internal: keep ${j} outside a record of ${this.capacity}`);
		let passes = this.keepPlans.get(j);
		if (!passes) {
			const { r, c, dev, bufs: b } = this;
			const L = c.nLayer;
			passes = [
				r.pass(this.programs.scan, {
					delta: whole(b.delta), x: whole(b.x), dbc: whole(b.dbc), p: whole(dev.bufs.params), h0: whole(dev.bufs.workSsm), J: j,
				}, whole(b.ssm), (L * ssmStride(c)) / 4),
				r.pass(this.programs.conv, { xz: whole(b.xz), state: whole(dev.bufs.workConv), J: j }, whole(b.conv), (L * convStride(c)) / 4),
			];
			this.keepPlans.set(j, passes);
		}
		return { passes, ssm: whole(this.bufs.ssm), conv: whole(this.bufs.conv) };
	}
}
