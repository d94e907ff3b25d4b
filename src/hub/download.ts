// HTTP with the hub (Node's fetch): the repo listing, a file's metadata (HEAD), and a resumable, verified download.
//   GET  {endpoint}/api/models/{repo}/revision/{rev}  → { sha, siblings: [{ rfilename }] }
//   HEAD {endpoint}/{repo}/resolve/{commit}/{file}     → ETag / X-Linked-Etag, X-Linked-Size / Content-Length,
//                                                         X-Repo-Commit; LFS files answer 302 to their storage
//   GET  the same URL (redirects followed), `Range: bytes=N-` to resume into blobs/ETAG.incomplete
// A file is verified before it enters the cache: the ETag of an LFS file is its sha256, of a small file its git
// blob sha1 (sha1 of "blob SIZE\0" + bytes). A mismatch deletes the partial file.
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, existsSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { UserError } from '../errors.js';

export interface HubClient {
	endpoint: string;
	token: string | null;
}

interface FileMeta {
	etag: string; // without quotes or W/
	size: number | null;
	commit: string | null;
}

const headers = (c: HubClient, extra: Record<string, string> = {}) => ({
	'user-agent': 'mambabyte',
	...(c.token ? { authorization: `Bearer ${c.token}` } : {}),
	...extra,
});

async function request(c: HubClient, url: string, init: RequestInit, what: string): Promise<Response> {
	let res: Response;
	try {
		res = await fetch(url, { ...init, headers: headers(c, (init.headers as Record<string, string>) ?? {}) });
	} catch (e) {
		const cause = (e as { cause?: { code?: string; message?: string } }).cause;
		throw new UserError(`${what}: cannot reach ${c.endpoint} (${cause?.code ?? cause?.message ?? String(e)}); set HF_ENDPOINT for a mirror, or HF_HUB_OFFLINE=1 to use only the cache`);
	}
	if (res.status === 401 || res.status === 403) {
		throw new UserError(`${what}: the hub refused access (${res.status}); ${c.token ? 'HF_TOKEN cannot read this repo' : 'set HF_TOKEN to a token that can read it (a private or gated repo)'}`);
	}
	if (res.status === 404) throw new UserError(`${what}: not found on ${c.endpoint} (check the repo name, the revision and the file)`);
	return res;
}

export async function listRepo(c: HubClient, repo: string, revision: string): Promise<{ commit: string; files: string[] }> {
	const what = `${repo}@${revision}`;
	const res = await request(c, `${c.endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}`, {}, what);
	if (!res.ok) throw new UserError(`${what}: the hub answered ${res.status} ${res.statusText} to the repo listing`);
	const body = (await res.json().catch(() => null)) as { sha?: unknown; siblings?: { rfilename?: unknown }[] } | null;
	if (!body || typeof body.sha !== 'string' || !Array.isArray(body.siblings)) throw new UserError(`${what}: the repo listing is not the hub's JSON (sha, siblings)`);
	return { commit: body.sha, files: body.siblings.map((s) => s.rfilename).filter((n): n is string => typeof n === 'string') };
}

export const resolveUrl = (c: HubClient, repo: string, rev: string, file: string) =>
	`${c.endpoint}/${repo}/resolve/${encodeURIComponent(rev)}/${file.split('/').map(encodeURIComponent).join('/')}`;

export async function fileMeta(c: HubClient, repo: string, commit: string, file: string): Promise<FileMeta> {
	const what = `${repo}/${file}`;
	// Not following the redirect: the hub's own answer carries the LFS file's sha256 (X-Linked-Etag).
	const res = await request(c, resolveUrl(c, repo, commit, file), { method: 'HEAD', redirect: 'manual' }, what);
	if (!res.ok && !(res.status >= 300 && res.status < 400)) throw new UserError(`${what}: the hub answered ${res.status} to HEAD`);
	const raw = res.headers.get('x-linked-etag') ?? res.headers.get('etag');
	if (!raw) throw new UserError(`${what}: the hub sent no ETag (cannot verify the download)`);
	const size = res.headers.get('x-linked-size') ?? (res.ok ? res.headers.get('content-length') : null);
	return { etag: raw.replace(/^W\//, '').replace(/"/g, ''), size: size === null ? null : Number(size), commit: res.headers.get('x-repo-commit') };
}

export type Progress = (file: string, done: number, total: number | null) => void;

/** Download into `blob` (via blob.incomplete, resuming it), verified against meta.etag. Retries a cut connection. */
export async function downloadBlob(c: HubClient, url: string, file: string, meta: FileMeta, blob: string, progress?: Progress): Promise<void> {
	const partial = `${blob}.incomplete`;
	for (let attempt = 1; ; attempt++) {
		try {
			await fetchInto(c, url, file, meta, partial, progress);
			break;
		} catch (e) {
			if (e instanceof UserError || attempt >= 3) {
				if (e instanceof UserError) throw e;
				throw new UserError(`${file}: the download broke off ${attempt} times (${(e as Error).message}); run again to resume from ${existsSync(partial) ? statSync(partial).size : 0} bytes`);
			}
		}
	}
	const got = await digest(partial, meta.etag);
	if (got !== null && got !== meta.etag) {
		rmSync(partial, { force: true });
		throw new UserError(`${file}: checksum mismatch (${meta.etag.length === 64 ? 'sha256' : 'git sha1'} ${got}, the hub's ETag says ${meta.etag}); the partial file was deleted, run again to retry`);
	}
	renameSync(partial, blob);
}

async function fetchInto(c: HubClient, url: string, file: string, meta: FileMeta, partial: string, progress?: Progress): Promise<void> {
	let have = existsSync(partial) ? statSync(partial).size : 0;
	if (meta.size !== null && have > meta.size) have = 0; // not this file: start over
	if (meta.size !== null && have === meta.size) return;
	const res = await request(c, url, { headers: have > 0 ? { range: `bytes=${have}-` } : {} }, `${file}`);
	if (res.status === 416) return; // the partial file is already whole
	if (!res.ok || !res.body) throw new UserError(`${file}: the hub answered ${res.status} ${res.statusText} to the download`);
	if (res.status !== 206) have = 0; // the server sent it all: start over
	const fd = openSync(partial, have > 0 ? 'a' : 'w');
	let done = have;
	try {
		for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
			writeSync(fd, chunk);
			done += chunk.length;
			progress?.(file, done, meta.size);
		}
	} finally {
		closeSync(fd);
	}
	if (meta.size !== null && done < meta.size) throw new Error(`got ${done} of ${meta.size} bytes`);
}

/** The file's hash in the ETag's kind (sha256 for 64 hex digits, git blob sha1 for 40); null for another kind. */
export async function digest(file: string, etag: string): Promise<string | null> {
	let h;
	if (/^[0-9a-f]{64}$/.test(etag)) h = createHash('sha256');
	else if (/^[0-9a-f]{40}$/.test(etag)) {
		h = createHash('sha1');
		h.update(`blob ${statSync(file).size}\0`);
	} else return null;
	for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
	return h.digest('hex');
}
