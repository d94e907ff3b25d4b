// `mambabyte perplexity FILE... --model Q --kl-divergence BASE`: KL(base ‖ Q) per byte and top-1 agreement.
import { readFileSync, statSync } from 'node:fs';
import { UserError, UsageError } from '../errors.js';
import { openModel } from '../app/open.js';
import { formatKl, klDivergence } from '../engine/kl.js';
import type { PerplexityOptions } from './options.js';

/** Files are read whole (KL needs every position's value for the percentiles anyway); refuse what cannot fit. */
const MAX_FILE = 256 * 1024 * 1024;

export async function runKlDivergence(files: string[], o: PerplexityOptions, baseModel: string): Promise<void> {
	if (o.window !== null || o.curve) throw new UserError('--kl-divergence scores one full pass: --window and --curve do not apply');
	if (o.limit !== null || o.noise.length > 0) throw new UsageError('--kl-divergence compares the models on the files as they are: --limit and --noise do not apply');
	for (const f of files) {
		if (f === '-') throw new UserError("--kl-divergence reads files, not stdin ('-')");
		let size: number;
		try {
			const st = statSync(f);
			if (!st.isFile()) throw new UserError(`${f}: not a file`);
			size = st.size;
		} catch (e) {
			throw e instanceof UserError ? e : new UserError(`${f}: no such file`);
		}
		if (size > MAX_FILE) throw new UserError(`${f}: ${size} bytes is more than --kl-divergence reads (at most ${MAX_FILE})`);
	}
	const q = await openModel(o.model, o.backend);
	const base = await openModel(baseModel, q.kernels);
	if (base.model.config.vocabSize !== q.model.config.vocabSize) {
		throw new UserError(`--kl-divergence ${baseModel}: vocabulary of ${base.model.config.vocabSize} differs from --model's ${q.model.config.vocabSize}`);
	}
	if (o.verbose) for (const n of [...q.notes, ...base.notes, `backend ${q.kernels.name} chosen`]) process.stderr.write(`mambabyte: ${n}\n`);
	for (const f of files) {
		const r = await klDivergence(base.model, q.model, f, readFileSync(f));
		if (r.scored === 0) throw new UserError(`${f}: ${r.bytes} byte${r.bytes === 1 ? '' : 's'}, nothing to score (the first byte is only context)`);
		process.stdout.write((o.json ? JSON.stringify(r) : formatKl(r)) + '\n');
	}
}
