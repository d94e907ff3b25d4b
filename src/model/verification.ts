// The one implementation of a verify pass's contract (LanguageModel.verify, src/model/types.ts), shared by the host
// and the GPU-resident models, which differ only in how they feed the tokens and how they roll back.
import type { Verification } from './types.js';

interface VerifyPass {
	/** Feed the T tokens, returning their logits (T, V). */
	feed(): Promise<Float32Array>;
	/** Leave the state as if only the first j tokens had been fed (j < T, or j ≤ T with `rollsBackAll`). */
	rollback(j: number): Promise<void>;
	/** The state after feed() is not the state after the T tokens (a padded pass): keep(T) rolls back too. */
	rollsBackAll?: boolean;
	/** Give back what the pass kept for rolling back; runs once, whether feed, rollback or keep's check fails. */
	release(): void;
}

/** Run `pass.feed()`, then hand out keep(j): checked, once, rolling back unless all T tokens are kept (or always). */
export async function verifyPass(T: number, pass: VerifyPass): Promise<Verification> {
	let logits: Float32Array;
	try {
		logits = await pass.feed();
	} catch (e) {
		pass.release();
		throw e;
	}
	let kept = false;
	return {
		logits,
		keep: async (j: number) => {
			if (kept) throw new Error('internal: a verification is kept once');
			kept = true;
			try {
				if (!(j >= 0 && j <= T)) throw new RangeError(`keep ${j} of ${T} verified tokens`);
				if (j < T || pass.rollsBackAll) await pass.rollback(j);
			} finally {
				pass.release();
			}
		},
	};
}
