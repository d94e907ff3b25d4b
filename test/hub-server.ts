// A local stand-in for the Hugging Face Hub (node:http on 127.0.0.1), implementing what src/hub uses the way the
// Hub answers: the revision listing (/api/models/ORG/NAME/revision/REV), resolve URLs whose HEAD carries ETag /
// X-Linked-Etag / X-Linked-Size / X-Repo-Commit, a 302 redirect for LFS files to a storage URL with Range support,
// and 401 for a private repo without the right bearer token. Faults on demand: cut connections, wrong bytes.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RepoFixture {
	files: Record<string, Uint8Array>;
	lfs?: string[]; // files served as LFS (sha256 ETag, redirect); others are small git files (git sha1 ETag)
	privateToken?: string; // 401 unless Authorization: Bearer <token>
	commit?: string;
}

export interface Faults {
	cutAfter?: number; // storage answers send at most this many bytes, then drop the connection
	cutTimes?: number; // ... for this many answers (default: every one)
	corrupt?: boolean; // flip a byte of every LFS file served
}

export interface Seen {
	method: string;
	url: string;
	range?: string;
	auth?: string;
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const gitSha1 = (b: Uint8Array) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

export class HubServer {
	readonly seen: Seen[] = [];
	faults: Faults = {};
	private server!: Server;
	endpoint = '';

	constructor(readonly repos: Record<string, RepoFixture>) {}

	commitOf(repo: string): string {
		return this.repos[repo].commit ?? createHash('sha1').update(repo).digest('hex');
	}

	async start(): Promise<this> {
		this.server = createServer((req, res) => this.handle(req, res));
		await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
		this.endpoint = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
		return this;
	}

	async stop(): Promise<void> {
		this.server.closeAllConnections();
		await new Promise((resolve) => this.server.close(resolve));
	}

	private handle(req: IncomingMessage, res: ServerResponse): void {
		const url = decodeURIComponent(req.url ?? '/');
		this.seen.push({ method: req.method ?? '', url, range: req.headers.range, auth: req.headers.authorization });
		const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(url);
		const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url);
		const storage = /^\/storage\/([^/]+\/[^/]+)\/(.+)$/.exec(url);
		const repoName = api?.[1] ?? resolve?.[1] ?? storage?.[1];
		const repo = repoName ? this.repos[repoName] : undefined;
		if (!repo) return void res.writeHead(404, { 'x-error-code': 'RepoNotFound' }).end('Repository not found');
		if (repo.privateToken && req.headers.authorization !== `Bearer ${repo.privateToken}`) {
			return void res.writeHead(401, { 'x-error-code': 'GatedRepo' }).end('Access to this repo is restricted');
		}
		const commit = this.commitOf(repoName!);
		if (api) {
			if (api[2] !== 'main' && api[2] !== commit) return void res.writeHead(404, { 'x-error-code': 'RevisionNotFound' }).end('Revision not found');
			res.writeHead(200, { 'content-type': 'application/json' });
			return void res.end(JSON.stringify({ id: repoName, sha: commit, siblings: Object.keys(repo.files).map((rfilename) => ({ rfilename })) }));
		}
		if (resolve) {
			const [, , rev, file] = resolve;
			const body = repo.files[file];
			if (!body || (rev !== 'main' && rev !== commit)) return void res.writeHead(404, { 'x-error-code': 'EntryNotFound' }).end('Entry not found');
			if (repo.lfs?.includes(file)) {
				res.writeHead(302, {
					location: `/storage/${repoName}/${file}`, 'x-repo-commit': commit, etag: `"${gitSha1(new TextEncoder().encode('pointer ' + file))}"`,
					'x-linked-etag': `"${sha256(body)}"`, 'x-linked-size': String(body.length),
				});
				return void res.end();
			}
			res.writeHead(200, { etag: `"${gitSha1(body)}"`, 'x-repo-commit': commit, 'content-length': String(body.length) });
			return void res.end(req.method === 'HEAD' ? undefined : body);
		}
		let body = repo.files[storage![2]];
		if (!body) return void res.writeHead(404).end();
		if (this.faults.corrupt) {
			body = body.slice();
			body[body.length >> 1] ^= 0xff;
		}
		const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
		const from = m ? Number(m[1]) : 0;
		if (from >= body.length && m) return void res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
		const part = body.subarray(from);
		res.writeHead(m ? 206 : 200, {
			'content-length': String(part.length), 'accept-ranges': 'bytes',
			...(m ? { 'content-range': `bytes ${from}-${body.length - 1}/${body.length}` } : {}),
		});
		const f = this.faults;
		if (f.cutAfter !== undefined && (f.cutTimes === undefined || f.cutTimes > 0)) {
			if (f.cutTimes !== undefined) f.cutTimes--;
			res.write(part.subarray(0, f.cutAfter), () => res.destroy());
			return;
		}
		res.end(part);
	}
}
