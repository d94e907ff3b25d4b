// The import graph of src/ and kernels/, read from the sources (static imports, `export ... from`, dynamic
// import() and `import('...')` type expressions: a type-only import still ties two files together for a reader).
// Nodes are files; a folder is a file's concern: src/<dir> for everything under it, a file at src/'s root is its own.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

export type Graph = Map<string, Set<string>>;

const SOURCE = /\.(ts|tsx)$/;
const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm;

function sources(dir: string): string[] {
	return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
		const p = path.join(dir, e.name);
		return e.isDirectory() ? sources(p) : SOURCE.test(e.name) && !e.name.endsWith('.d.ts') ? [p] : [];
	});
}

/** File → files it imports, paths relative to root (`.js` specifiers mapped back to their .ts/.tsx source). */
export function fileGraph(root: string, dirs = ['src', 'kernels']): Graph {
	const files = dirs.flatMap((d) => sources(path.join(root, d))).map((f) => path.relative(root, f));
	const known = new Set(files);
	const graph: Graph = new Map();
	for (const f of files) {
		const to = new Set<string>();
		for (const m of readFileSync(path.join(root, f), 'utf8').matchAll(IMPORT)) {
			const target = path.normalize(path.join(path.dirname(f), m[1])).replace(/\.js$/, '');
			const hit = [`${target}.ts`, `${target}.tsx`].find((c) => known.has(c));
			if (hit) to.add(hit);
		}
		graph.set(f, to);
	}
	return graph;
}

export const folderOf = (file: string): string => {
	const parts = file.split(path.sep);
	return parts[0] === 'src' && parts.length > 2 ? `src/${parts[1]}` : parts[0] === 'src' ? file : parts[0];
};

/** The folder graph: an edge A → B when a file in A imports one in B (A ≠ B), with one file pair as the witness. */
export function folderGraph(files: Graph): Map<string, Map<string, string>> {
	const out = new Map<string, Map<string, string>>();
	for (const [from, tos] of files) {
		for (const to of tos) {
			const a = folderOf(from), b = folderOf(to);
			if (a === b) continue;
			if (!out.has(a)) out.set(a, new Map());
			if (!out.get(a)!.has(b)) out.get(a)!.set(b, `${from} -> ${to}`);
		}
	}
	return out;
}

/** Strongly connected components with more than one node (Tarjan): each is a loop. */
export function cycles(edges: Map<string, Iterable<string>>): string[][] {
	const index = new Map<string, number>(), low = new Map<string, number>();
	const stack: string[] = [], on = new Set<string>(), found: string[][] = [];
	let n = 0;
	const visit = (v: string) => {
		index.set(v, n); low.set(v, n); n++;
		stack.push(v); on.add(v);
		for (const w of edges.get(v) ?? []) {
			if (!index.has(w)) { visit(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); }
			else if (on.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
		}
		if (low.get(v) === index.get(v)) {
			const scc: string[] = [];
			let w: string;
			do { w = stack.pop()!; on.delete(w); scc.push(w); } while (w !== v);
			if (scc.length > 1) found.push(scc.sort());
		}
	};
	for (const v of edges.keys()) if (!index.has(v)) visit(v);
	return found;
}
