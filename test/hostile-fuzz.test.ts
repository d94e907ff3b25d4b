// Seeded fuzz of chat saves and tokenizer.json files (helpers/hostile-fuzz-worker.ts), each batch in a child under
// a heap cap and a wall-clock limit. Every case must load cleanly or be refused with one UserError line; no case
// may take more than CASE_MS (a hang bound, far above the milliseconds a case needs) or push the heap past the cap.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CASE_HEAP_MB, CASE_TIMEOUT_MS } from './helpers/hostile.js';

const WORKER = path.resolve('dist/test/helpers/hostile-fuzz-worker.js');
const CASE_MS = 5000;

function fuzz(kind: 'save' | 'tokenizer', seed: number, count: number) {
	const r = spawnSync(process.execPath, [`--max-old-space-size=${CASE_HEAP_MB}`, WORKER, kind, String(seed), String(count)], {
		encoding: 'utf8', timeout: CASE_TIMEOUT_MS * 2, killSignal: 'SIGKILL',
	});
	assert.is(r.signal, null, `fuzz ${kind} seed ${seed} killed (hang or memory): ${r.stderr}`);
	assert.is(r.status, 0, r.stderr);
	const rep = JSON.parse(r.stdout);
	console.log(`  fuzz ${kind} seed ${seed}: ${rep.tried} tried, ${rep.handled} handled (${rep.loaded} loaded), slowest case ${Math.round(rep.maxCaseMs)} ms, heap <= ${Math.round(rep.maxHeapMb)} MB`);
	assert.equal(rep.failures, []);
	assert.is(rep.handled, rep.tried);
	assert.ok(rep.maxCaseMs < CASE_MS, `a case took ${rep.maxCaseMs} ms`);
	assert.ok(rep.loaded > 0 && rep.loaded < rep.tried, 'the fuzz exercises both accepted and refused files');
	return rep;
}

test('seeded fuzz of chat saves: every case loads well-formed or is one line', () => {
	fuzz('save', 17, 3000);
});

test('seeded fuzz of tokenizer.json: every case loads and round-trips or is one line', () => {
	fuzz('tokenizer', 17, 400);
});

test.run();
