// Hub repo names and the cache layout huggingface_hub uses, so a model downloaded here or by `huggingface-cli`
// is found by both:  $HF_HUB_CACHE (default $HF_HOME/hub, HF_HOME default ~/.cache/huggingface)
//   models--ORG--NAME/blobs/ETAG             the file's bytes, named by its ETag (sha256 for LFS, git sha1 else)
//   models--ORG--NAME/blobs/ETAG.incomplete  a download in progress (resumed with a Range request)
//   models--ORG--NAME/refs/REVISION          the commit a branch or tag named when it was downloaded
//   models--ORG--NAME/snapshots/COMMIT/FILE  a relative symlink to ../../blobs/ETAG
import os from 'node:os';
import path from 'node:path';
import { UsageError } from '../errors.js';

interface HubName {
	repo: string; // ORG/NAME
	file: string | null; // a file named in the spec (ORG/NAME/file.gguf)
	revision: string; // branch, tag or commit (default main)
}

/** ORG/NAME[/FILE][@REVISION]. */
export function parseHubName(spec: string): HubName {
	const at = spec.lastIndexOf('@');
	const revision = at >= 0 ? spec.slice(at + 1) : 'main';
	const parts = (at >= 0 ? spec.slice(0, at) : spec).split('/');
	if (parts.length < 2 || parts.some((p) => p === '' || p === '.' || p === '..') || revision === '' || revision.includes('..')) {
		throw new UsageError(`${spec}: expected a hub repo as ORG/NAME[/FILE][@REVISION]`);
	}
	return { repo: `${parts[0]}/${parts[1]}`, file: parts.length > 2 ? parts.slice(2).join('/') : null, revision };
}

export const isCommitHash = (rev: string) => /^[0-9a-f]{40}$/.test(rev);

export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
	if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
	const home = env.HF_HOME ?? path.join(env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'huggingface');
	return path.join(home, 'hub');
}

export function repoCacheDir(repo: string, env: NodeJS.ProcessEnv = process.env): string {
	return path.join(hubCacheDir(env), `models--${repo.replace(/\//g, '--')}`);
}

export const hubEndpoint = (env: NodeJS.ProcessEnv = process.env) => (env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, '');

export const hubOffline = (env: NodeJS.ProcessEnv = process.env) => /^(1|true|yes|on)$/i.test(env.HF_HUB_OFFLINE ?? '');
