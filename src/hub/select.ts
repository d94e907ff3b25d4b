// Which files of a hub repo make a checkpoint this runtime reads (and nothing else is downloaded):
//   config.json + *.safetensors (+ the shard index), else config.json + pytorch_model.bin (mamba_ssm's layout, as
//   the published MambaByte models are), else one .gguf (or the one the user named). tokenizer.json comes along when
//   present (a subword drafter needs it). Top-level files only, except a .gguf named explicitly.
import { UserError } from '../errors.js';

export interface Selection {
	files: string[];
	gguf: string | null; // the .gguf to open, when the checkpoint is one file
}

export function selectFiles(repo: string, names: readonly string[], wanted: string | null): Selection {
	const top = names.filter((n) => !n.includes('/'));
	const has = (n: string) => names.includes(n);
	if (wanted !== null) {
		if (!has(wanted)) throw new UserError(`${repo}: no file ${wanted} in the repo (files: ${summary(names)})`);
		if (!wanted.toLowerCase().endsWith('.gguf')) throw new UserError(`${repo}/${wanted}: only a .gguf file can be named (a folder checkpoint is chosen from the repo)`);
		return { files: [wanted], gguf: wanted };
	}
	const extras = has('tokenizer.json') ? ['tokenizer.json'] : [];
	const safetensors = top.filter((n) => n.endsWith('.safetensors'));
	if (has('config.json') && safetensors.length > 0) {
		const index = has('model.safetensors.index.json') ? ['model.safetensors.index.json'] : [];
		return { files: ['config.json', ...index, ...safetensors, ...extras], gguf: null };
	}
	if (has('config.json') && has('pytorch_model.bin')) return { files: ['config.json', 'pytorch_model.bin', ...extras], gguf: null };
	const ggufs = top.filter((n) => n.toLowerCase().endsWith('.gguf'));
	if (ggufs.length === 1) return { files: ggufs, gguf: ggufs[0] };
	if (ggufs.length > 1) {
		throw new UserError(`${repo}: ${ggufs.length} .gguf files; name one as ${repo}/FILE.gguf or with --model-file (${summary(ggufs)})`);
	}
	throw new UserError(`${repo}: no checkpoint this runtime reads (expected config.json with *.safetensors or pytorch_model.bin, or a .gguf; files: ${summary(names)})`);
}

const summary = (names: readonly string[]) => (names.length > 8 ? [...names.slice(0, 8), `… ${names.length - 8} more`] : names).join(', ') || 'none';
