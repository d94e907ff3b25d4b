// Seeded fuzzing of the checkpoint readers: valid files mutated by truncation, bit flips and header/pickle/config
// edits. Every case must end in a one-line UserError or a load whose weights have the declared shapes — never
// another exception, never a hang (each case is timed).
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UserError } from '../src/errors.js';
import { expectedTensors, loadCheckpoint } from '../src/checkpoint/load.js';
import type { Checkpoint } from '../src/model/types.js';
import { rawSafetensors, rng, tinyConfig, tmpDir, torchPickle, tinyTensors, writeTiny, zipWithPickle } from './helpers/checkpoint-fixtures.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20240521);
const CASES = Number(process.env.FUZZ_CASES ?? 300);
const CASE_MS = 2000;

interface Stats {
	errors: number;
	loads: number;
}

/** Load one mutated folder; anything but a UserError or a consistent checkpoint fails the test. */
function check(dir: string, label: string, stats: Stats): void {
	const t0 = Date.now();
	let ckpt: Checkpoint | undefined;
	try {
		ckpt = loadCheckpoint(dir);
	} catch (err) {
		if (!(err instanceof UserError)) {
			throw new Error(`${label}: ${(err as Error)?.stack ?? String(err)}`);
		}
		assert.not.match(err.message, /\n/, `${label}: one-line message`);
		assert.ok(err.message.length < 600, `${label}: short message: ${err.message}`);
		stats.errors++;
	}
	assert.ok(Date.now() - t0 < CASE_MS, `${label}: took ${Date.now() - t0} ms`);
	if (ckpt) {
		stats.loads++;
		const c = ckpt.config;
		const shapes = expectedTensors(c, 'emb');
		const len = (name: string) => shapes.get(name)!.reduce((a, b) => a * b, 1);
		assert.is(ckpt.weights.embedding.length, c.vocabSize * c.dModel, label);
		assert.is(ckpt.weights.layers.length, c.nLayer, label);
		ckpt.weights.layers.forEach((l, i) => {
			assert.is(l.inProj.length, len(`backbone.layers.${i}.mixer.in_proj.weight`), label);
			assert.is(l.xProj.length, len(`backbone.layers.${i}.mixer.x_proj.weight`), label);
			assert.ok(l.aLog.every(Number.isFinite), label);
		});
	}
}

function mutateBytes(src: Uint8Array, r: () => number, hot: [number, number]): Uint8Array {
	const pick = (n: number) => Math.floor(r() * n);
	const kind = pick(6);
	if (kind === 0) return src.slice(0, pick(src.length)); // truncate anywhere
	const b = Uint8Array.from(src);
	if (kind === 1) {
		for (let i = 0, n = 1 + pick(8); i < n; i++) b[pick(b.length)] ^= 1 << pick(8); // bit flips anywhere
		return b;
	}
	if (kind === 2 || kind === 3) {
		// bit flips and byte overwrites in the structural part (safetensors header, zip directory, pickle)
		const [lo, hi] = hot;
		for (let i = 0, n = 1 + pick(4); i < n; i++) {
			const at = lo + pick(hi - lo);
			if (kind === 2) b[at] ^= 1 << pick(8);
			else b[at] = [0, 0xff, 0x7f, 0x80, 0x30 + pick(10), pick(256)][pick(6)];
		}
		return b;
	}
	if (kind === 4) {
		const at = pick(b.length); // delete a run of bytes
		return Uint8Array.from([...b.subarray(0, at), ...b.subarray(Math.min(b.length, at + 1 + pick(16)))]);
	}
	const at = pick(b.length); // insert junk
	return Uint8Array.from([...b.subarray(0, at), ...Array.from({ length: 1 + pick(16) }, () => pick(256)), ...b.subarray(at)]);
}

const WEIRD = [0, -1, 1, 2, 7, 3.5, 1e12, 2 ** 53, -(2 ** 31), '4', null, true, [], {}, 'F32', 'BF16', 'I64', 'Q9', [1, 2], [0, 2 ** 40]];

/** Edit the parsed safetensors header: a field of a random tensor gets a weird value, or an entry goes away. */
function mutateHeader(file: Uint8Array, r: () => number): Uint8Array {
	const view = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
	const len = Number(view.readBigUInt64LE(0));
	const header = JSON.parse(view.subarray(8, 8 + len).toString()) as Record<string, Record<string, unknown>>;
	const names = Object.keys(header);
	const name = names[Math.floor(r() * names.length)];
	const field = ['dtype', 'shape', 'data_offsets'][Math.floor(r() * 3)];
	const choice = Math.floor(r() * 5);
	if (choice === 0) delete header[name];
	else if (choice === 1 && Array.isArray(header[name][field])) {
		const arr = header[name][field] as unknown[];
		arr[Math.floor(r() * arr.length)] = WEIRD[Math.floor(r() * WEIRD.length)];
	} else if (choice === 2) header[name] = WEIRD[Math.floor(r() * WEIRD.length)] as Record<string, unknown>;
	else header[name][field] = WEIRD[Math.floor(r() * WEIRD.length)];
	const declared = r() < 0.1 ? BigInt(Math.floor(r() * 2 ** 40)) : undefined;
	return rawSafetensors(header, view.subarray(8 + len), declared);
}

test(`fuzz model.safetensors (${CASES} mutations, seed ${SEED})`, () => {
	const r = rng(SEED);
	const base = tmpDir('fuzz');
	writeTiny(base, { dtype: 'F16' });
	const valid = fs.readFileSync(nodePath.join(base, 'model.safetensors'));
	const headerEnd = 8 + Number(valid.readBigUInt64LE(0));
	const dir = tmpDir('fuzz');
	fs.copyFileSync(nodePath.join(base, 'config.json'), nodePath.join(dir, 'config.json'));
	const stats: Stats = { errors: 0, loads: 0 };
	for (let i = 0; i < CASES; i++) {
		const bytes = r() < 0.3 ? mutateHeader(valid, r) : mutateBytes(valid, r, [0, headerEnd]);
		fs.writeFileSync(nodePath.join(dir, 'model.safetensors'), bytes);
		check(dir, `safetensors case ${i}`, stats);
	}
	assert.ok(stats.errors > CASES / 4 && stats.loads > 0, JSON.stringify(stats));
});

test(`fuzz pytorch_model.bin: zip bytes (${CASES} mutations)`, () => {
	const r = rng(SEED + 1);
	const tensors = tinyTensors({ layout: 'ssm', norm: 'layer' });
	const { pkl, storages } = torchPickle(tensors);
	const valid = zipWithPickle(pkl, storages);
	const dir = tmpDir('fuzz');
	fs.writeFileSync(nodePath.join(dir, 'config.json'), JSON.stringify(tinyConfig({ layout: 'ssm' })));
	const stats: Stats = { errors: 0, loads: 0 };
	// the hot regions: the pickle's local header and bytes at the start, the central directory at the end
	const cd = valid.readUInt32LE(valid.length - 22 + 16);
	for (let i = 0; i < CASES; i++) {
		const hot: [number, number] = r() < 0.5 ? [0, 64 + pkl.length] : [cd, valid.length];
		fs.writeFileSync(nodePath.join(dir, 'pytorch_model.bin'), mutateBytes(valid, r, hot));
		check(dir, `zip case ${i}`, stats);
	}
	assert.ok(stats.errors > CASES / 4, JSON.stringify(stats));
});

test(`fuzz pytorch_model.bin: pickle program (${CASES} mutations, valid zip around it)`, () => {
	const r = rng(SEED + 2);
	const tensors = tinyTensors({ layout: 'ssm', norm: 'layer', dtype: 'BF16' });
	const { pkl, storages } = torchPickle(tensors, { proto4: r() < 0.5 });
	const dir = tmpDir('fuzz');
	fs.writeFileSync(nodePath.join(dir, 'config.json'), JSON.stringify(tinyConfig({ layout: 'ssm' })));
	const stats: Stats = { errors: 0, loads: 0 };
	for (let i = 0; i < CASES; i++) {
		// re-zipped with correct CRCs, so the pickle reader itself sees the mutation
		const bytes = mutateBytes(pkl, r, [0, pkl.length]);
		fs.writeFileSync(nodePath.join(dir, 'pytorch_model.bin'), zipWithPickle(bytes, storages));
		check(dir, `pickle case ${i}`, stats);
	}
	assert.ok(stats.errors > CASES / 4, JSON.stringify(stats)); // few pickle mutations leave a loadable state dict
});

test(`fuzz config.json (${CASES / 3} edits)`, () => {
	const r = rng(SEED + 3);
	const dir = tmpDir('fuzz');
	writeTiny(dir, { layout: 'ssm', norm: 'layer' });
	const cfg = tinyConfig({ layout: 'ssm' });
	const keys = [...Object.keys(cfg), 'ssm_cfg.d_state', 'ssm_cfg.expand', 'ssm_cfg.dt_rank', 'training_context_length', 'norm_epsilon'];
	const stats: Stats = { errors: 0, loads: 0 };
	for (let i = 0; i < CASES / 3; i++) {
		const c = JSON.parse(JSON.stringify(cfg));
		const key = keys[Math.floor(r() * keys.length)];
		const value = WEIRD[Math.floor(r() * WEIRD.length)];
		if (key.startsWith('ssm_cfg.')) c.ssm_cfg[key.slice(8)] = value;
		else c[key] = value;
		const text = JSON.stringify(c);
		fs.writeFileSync(nodePath.join(dir, 'config.json'), r() < 0.2 ? text.slice(0, Math.floor(r() * text.length)) : text);
		check(dir, `config case ${i} (${key} = ${JSON.stringify(value)})`, stats);
	}
	assert.ok(stats.errors > 0 && stats.loads > 0, JSON.stringify(stats));
});

test.run();
