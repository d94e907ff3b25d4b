// The import graph has no loops: not between files, not between folders (src/<concern>, kernels/). cli/ and ui/ both
// sit on app/ and know nothing of each other; main.ts is the one place that wires them together.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cycles, fileGraph, folderGraph } from './helpers/import-graph.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const files = fileGraph(root);
const folders = folderGraph(files);
const folderEdges = new Map([...folders].map(([a, to]) => [a, [...to.keys()]]));

/** Each loop with one import per step that makes it, for the failure message. */
const explain = (loops: string[][]) => loops.map((l) => l.map((a) => [...(folders.get(a) ?? [])].filter(([b]) => l.includes(b)).map(([, w]) => w).join('; ')).join('; ')).join('\n');

test('the graph is read from the sources (imports, re-exports, dynamic and type imports)', () => {
	assert.ok(files.size > 80, `${files.size} files`);
	assert.ok(files.get('src/main.ts')!.has('src/ui/chat.tsx'), 'a dynamic import()');
	assert.ok(files.get('src/checkpoint/index.ts')!.has('src/checkpoint/load.ts'), 'export ... from');
	assert.ok(files.get('src/model/types.ts')!.has('src/backend/types.ts'), "an import('...') type expression");
});

test('cycles() finds a loop and only a loop', () => {
	assert.equal(cycles(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']]])), [['a', 'b', 'c']]);
	assert.equal(cycles(new Map([['a', ['b']], ['b', ['c']], ['d', ['a', 'c']]])), []);
});

test('no file imports itself back through other files', () => {
	assert.equal(cycles(files), []);
});

test('no folder imports itself back through other folders', () => {
	const loops = cycles(folderEdges);
	assert.equal(loops, [], explain(loops));
});

test('cli/ and ui/ depend on app/, not on each other', () => {
	for (const [a, b] of [['src/cli', 'src/ui'], ['src/ui', 'src/cli']]) {
		assert.not.ok(folders.get(a)?.has(b), `${a} imports ${b}: ${folders.get(a)?.get(b)}`);
		assert.ok(folders.get(a)?.has('src/app'), `${a} uses app/`);
	}
	for (const low of ['src/app', 'src/engine', 'src/model', 'src/checkpoint', 'src/backend', 'src/tensor']) {
		for (const high of ['src/cli', 'src/ui', 'src/main.ts', 'src/index.ts']) assert.not.ok(folders.get(low)?.has(high), `${low} imports ${high}`);
	}
});

test.run();
