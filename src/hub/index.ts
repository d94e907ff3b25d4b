// `--model ORG/NAME[/FILE.gguf][@REVISION]`: the local path of a Hugging Face Hub checkpoint, downloaded into the
// standard cache (name.ts) the first time. Once refs/REVISION (or the commit's snapshot) holds a complete checkpoint,
// later runs use it without touching the network (to pick up a newer commit of a branch, name the commit or remove
// the repo's cache folder). HF_HUB_OFFLINE=1 never touches the network; HF_ENDPOINT picks a mirror; HF_TOKEN (or the
// token file huggingface-cli login writes) is sent as a bearer token.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, copyFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { downloadBlob, fileMeta, listRepo, resolveUrl, type HubClient, type Progress } from './download.js';
import { hubCacheDir, hubEndpoint, hubOffline, isCommitHash, parseHubName, repoCacheDir } from './name.js';
import { selectFiles, type Selection } from './select.js';

export { parseHubName, hubCacheDir, repoCacheDir } from './name.js';
export { selectFiles } from './select.js';

interface HubOptions {
	file?: string; // --model-file: the .gguf to take
	progress?: boolean; // a progress bar per file on stderr
	log?: (message: string) => void;
	env?: NodeJS.ProcessEnv;
}

function token(env: NodeJS.ProcessEnv): string | null {
	if (env.HF_TOKEN) return env.HF_TOKEN;
	const file = path.join(env.HF_HOME ?? path.join(path.dirname(hubCacheDir(env))), 'token');
	try {
		return readFileSync(file, 'utf8').trim() || null;
	} catch {
		return null;
	}
}

/** The files of a snapshot folder (recursively, as repo paths). */
function snapshotFiles(dir: string, prefix = ''): string[] {
	if (!existsSync(dir)) return [];
	return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
		e.isDirectory() ? snapshotFiles(path.join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`]);
}

/** The checkpoint in the cache for this revision, or null when it is not complete there. */
function cached(repo: string, revision: string, wanted: string | null, env: NodeJS.ProcessEnv): { commit: string; sel: Selection } | null {
	const dir = repoCacheDir(repo, env);
	const ref = path.join(dir, 'refs', revision);
	const commit = isCommitHash(revision) ? revision : existsSync(ref) ? readFileSync(ref, 'utf8').trim() : null;
	if (!commit) return null;
	const files = snapshotFiles(path.join(dir, 'snapshots', commit));
	try {
		const sel = selectFiles(repo, files, wanted);
		return sel.files.every((f) => existsSync(path.join(dir, 'snapshots', commit, f))) ? { commit, sel } : null;
	} catch {
		return null;
	}
}

const localPath = (repo: string, commit: string, sel: Selection, env: NodeJS.ProcessEnv) => {
	const snap = path.join(repoCacheDir(repo, env), 'snapshots', commit);
	return sel.gguf ? path.join(snap, sel.gguf) : snap;
};

export async function resolveHubModel(spec: string, o: HubOptions = {}): Promise<string> {
	const env = o.env ?? process.env;
	const name = parseHubName(spec);
	const wanted = name.file ?? o.file ?? null;
	const hit = cached(name.repo, name.revision, wanted, env);
	if (hit) {
		o.log?.(`${spec}: from the cache (${localPath(name.repo, hit.commit, hit.sel, env)})`);
		return localPath(name.repo, hit.commit, hit.sel, env);
	}
	if (hubOffline(env)) {
		throw new UserError(`${spec}: not in the hub cache ${hubCacheDir(env)} and HF_HUB_OFFLINE is set (download it once without HF_HUB_OFFLINE)`);
	}
	const client: HubClient = { endpoint: hubEndpoint(env), token: token(env) };
	const listing = await listRepo(client, name.repo, name.revision);
	const sel = selectFiles(name.repo, listing.files, wanted);
	const dir = repoCacheDir(name.repo, env);
	const snap = path.join(dir, 'snapshots', listing.commit);
	mkdirSync(path.join(dir, 'blobs'), { recursive: true });
	const bar = o.progress ? progressBar() : undefined;
	for (const file of sel.files) {
		const target = path.join(snap, file);
		if (existsSync(target)) continue;
		const meta = await fileMeta(client, name.repo, listing.commit, file);
		const blob = path.join(dir, 'blobs', meta.etag);
		if (!existsSync(blob)) {
			o.log?.(`${name.repo}: downloading ${file}${meta.size !== null ? ` (${meta.size} bytes)` : ''}`);
			await downloadBlob(client, resolveUrl(client, name.repo, listing.commit, file), file, meta, blob, bar?.update);
			bar?.end();
		}
		link(blob, target);
	}
	// Written last: a ref means a complete checkpoint under it.
	if (!isCommitHash(name.revision)) {
		mkdirSync(path.dirname(path.join(dir, 'refs', name.revision)), { recursive: true });
		writeFileSync(path.join(dir, 'refs', name.revision), listing.commit);
	}
	return localPath(name.repo, listing.commit, sel, env);
}

/** snapshots/COMMIT/FILE → ../../blobs/ETAG, as huggingface_hub links it; a copy where symlinks are not allowed. */
function link(blob: string, target: string): void {
	mkdirSync(path.dirname(target), { recursive: true });
	rmSync(target, { force: true });
	try {
		symlinkSync(path.relative(path.dirname(target), blob), target);
	} catch {
		copyFileSync(blob, target);
	}
}

/** One line per file on stderr, redrawn in place: name, bar, percent, megabytes, speed. */
function progressBar(): { update: Progress; end: () => void } {
	let last = 0;
	let started = 0;
	let line = false;
	return {
		update(file, done, total) {
			const now = Date.now();
			if (started === 0) started = now;
			if (now - last < 100 && (total === null || done < total)) return;
			last = now;
			const mb = (n: number) => (n / 1e6).toFixed(1);
			const rate = done / Math.max(0.001, (now - started) / 1000);
			const frac = total ? Math.min(1, done / total) : 0;
			const bar = total ? `[${'#'.repeat(Math.round(frac * 24)).padEnd(24, '.')}] ${(100 * frac).toFixed(0).padStart(3)}% ` : '';
			process.stderr.write(`\r\x1b[2K${file}  ${bar}${mb(done)}${total ? `/${mb(total)}` : ''} MB  ${mb(rate)} MB/s`);
			line = true;
		},
		end() {
			if (line) process.stderr.write('\n');
			line = false;
			started = 0;
		},
	};
}
