// Mutated GGUF files: truncations, byte flips, and targeted header edits (huge counts and lengths, bad types,
// bad alignment and offsets, dimension overflow). Each must end in a one-line UserError (or, for flips inside the
// tensor data, a load of the declared shapes) quickly, allocating nothing in proportion to the absurd values.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ggufTensors } from '../src/checkpoint/gguf-model.js';
import { ggufHeader } from '../src/checkpoint/gguf-write.js';
import { loadModel } from '../src/checkpoint/load.js';
import { UserError } from '../src/errors.js';
import { randomCheckpoint, rng, shapeConfig } from '../src/model/random.js';

const CASE_MS = 2000; // a generous bound on one load of a ~60 KB file: "quickly", not a speed measurement
const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'mambabyte-gguf-fuzz-'));
const file = nodePath.join(dir, 'm.gguf');

// A valid file: d 32, 1 layer, q8_0 matrices (dt_proj's 2 columns fall back to f16), F32 vectors.
const ckpt = randomCheckpoint({ ...shapeConfig(32, 1), dtRank: 2 }, 3);
const { tensors, metadata } = ggufTensors(ckpt, 'q8_0');
const header = ggufHeader(metadata, tensors);
const pad = (b: Uint8Array) => Buffer.concat([b, Buffer.alloc((32 - (b.length % 32)) % 32)]);
const valid = Buffer.concat([header, ...tensors.map((t) => pad(t.data))]);

function load(bytes: Uint8Array, label: string): 'error' | 'loaded' {
	fs.writeFileSync(file, bytes);
	const t0 = Date.now();
	try {
		const c = loadModel(file);
		assert.is(c.config.dModel, 32, label);
		return 'loaded';
	} catch (err) {
		if (!(err instanceof UserError)) throw new Error(`${label}: ${(err as Error)?.stack ?? String(err)}`);
		assert.not.match(err.message, /\n/, `${label}: one line`);
		assert.ok(err.message.length < 400, `${label}: short: ${err.message}`);
		return 'error';
	} finally {
		assert.ok(Date.now() - t0 < CASE_MS, `${label}: took ${Date.now() - t0} ms`);
	}
}

const expectError = (bytes: Uint8Array, label: string, pattern: RegExp) => {
	fs.writeFileSync(file, bytes);
	try {
		loadModel(file);
		assert.unreachable(`${label}: loaded`);
	} catch (err) {
		assert.instance(err, UserError, label);
		assert.match((err as Error).message, pattern, `${label}: ${(err as Error).message}`);
		assert.not.match((err as Error).message, /\n/);
	}
};

/** Position just after the length-prefixed string `s` in the header (key or tensor name). */
function after(s: string): number {
	const at = valid.indexOf(Buffer.from(s, 'utf8'));
	assert.ok(at > 8 && valid.readBigUInt64LE(at - 8) === BigInt(Buffer.byteLength(s)), `found ${s}`);
	return at + Buffer.byteLength(s);
}
const edit = (f: (b: Buffer) => void) => {
	const b = Buffer.from(valid);
	f(b);
	return b;
};

test('the unmutated file loads', () => {
	assert.is(load(valid, 'valid'), 'loaded');
});

test('every truncation inside the header, and sampled ones in the data, is a UserError', () => {
	const cuts = new Set<number>();
	for (let n = 0; n <= header.length; n += 1) cuts.add(n);
	const r = rng(11);
	for (let i = 0; i < 100; i++) cuts.add(Math.floor(r() * valid.length));
	for (const n of cuts) assert.is(load(valid.subarray(0, n), `truncated at ${n}`), 'error', `truncated at ${n}`);
});

test('random byte flips in the header and the data: UserError or a consistent load', () => {
	const r = rng(12);
	let errors = 0;
	for (let i = 0; i < 400; i++) {
		const b = Buffer.from(valid);
		const k = 1 + Math.floor(r() * 4);
		for (let j = 0; j < k; j++) {
			const at = i % 2 ? Math.floor(r() * header.length) : Math.floor(r() * b.length);
			b[at] = Math.floor(r() * 256);
		}
		if (load(b, `flips case ${i}`) === 'error') errors++;
	}
	assert.ok(errors > 50, `${errors} of 400 flipped files refused`);
});

const HUGE = 0x7fff_ffff_ffff_ffffn;
const ssmIn = after('blk.0.ssm_in.weight'); // then u32 n_dims, u64 dims[2], u32 type, u64 offset
const tokens = after('tokenizer.ggml.tokens'); // then u32 type (array), u32 element type, u64 count

const cases: [string, Buffer, RegExp][] = [
	['bad magic', edit((b) => b.write('GGUX', 0)), /not a GGUF file/],
	['version 1', edit((b) => b.writeUInt32LE(1, 4)), /GGUF version 1 is not supported/],
	['version 4', edit((b) => b.writeUInt32LE(4, 4)), /GGUF version 4 is not supported/],
	['huge tensor count', edit((b) => b.writeBigUInt64LE(HUGE, 8)), /tensor count is \d+, more than/],
	['huge metadata count', edit((b) => b.writeBigUInt64LE(HUGE, 16)), /metadata count is \d+, more than/],
	['huge key length', edit((b) => b.writeBigUInt64LE(HUGE, 24)), /length of metadata key 0 is \d+, more than/],
	['huge array count', edit((b) => b.writeBigUInt64LE(HUGE, tokens + 8)), /element count of metadata tokenizer\.ggml\.tokens is/],
	['unknown value type', edit((b) => b.writeUInt32LE(99, tokens)), /unknown value type 99/],
	['unknown array element type', edit((b) => b.writeUInt32LE(77, tokens + 4)), /array of unknown value type 77/],
	['0 dimensions', edit((b) => b.writeUInt32LE(0, ssmIn)), /has 0 dimensions \(expected 1\.\.4\)/],
	['5 dimensions', edit((b) => b.writeUInt32LE(5, ssmIn)), /has 5 dimensions/],
	['a dimension of 0', edit((b) => b.writeBigUInt64LE(0n, ssmIn + 4)), /has a dimension of 0/],
	['dimension overflow', edit((b) => { b.writeBigUInt64LE(1n << 40n, ssmIn + 4); b.writeBigUInt64LE(1n << 40n, ssmIn + 12); }), /more elements than the file has bytes/],
	['unknown ggml type', edit((b) => b.writeUInt32LE(99, ssmIn + 20)), /unknown ggml type 99/],
	['unsupported type IQ4_NL', edit((b) => b.writeUInt32LE(20, ssmIn + 20)), /tensor blk\.0\.ssm_in\.weight has type IQ4_NL, which is not supported/],
	['cols not whole blocks', edit((b) => b.writeBigUInt64LE(33n, ssmIn + 4)), /33 columns, not a multiple of its block size 32/],
	['unaligned offset', edit((b) => b.writeBigUInt64LE(b.readBigUInt64LE(ssmIn + 24) + 4n, ssmIn + 24)), /not a multiple of the alignment 32/],
	['offset past the end', edit((b) => b.writeBigUInt64LE(HUGE - 31n, ssmIn + 24)), /runs past the end of the file/],
	['overlapping tensors', edit((b) => b.writeBigUInt64LE(0n, ssmIn + 24)), /overlaps tensor/],
	['wrong shape', edit((b) => { b.writeBigUInt64LE(128n, ssmIn + 4); b.writeBigUInt64LE(32n, ssmIn + 12); }), /blk\.0\.ssm_in\.weight has GGUF shape \[128, 32\] \(expected \[32, 128\]/],
	['wrong architecture', edit((b) => b.write('mambo', after('general.architecture') + 12)), /general\.architecture is "mambo"; only "mamba"/],
];

for (const [label, bytes, pattern] of cases) test(`header edit: ${label}`, () => expectError(bytes, label, pattern));

test('bad alignment and a missing required key are one line each', () => {
	// Rewrite the metadata through the writer: alignment 3, then a file without mamba.ssm.state_size.
	const withAlign = Buffer.concat([ggufHeader([...metadata, { key: 'general.alignment', type: 4, value: 3 }], tensors), ...tensors.map((t) => pad(t.data))]);
	expectError(withAlign, 'alignment 3', /general\.alignment is 3 \(expected a power of two/);
	const noState = Buffer.concat([ggufHeader(metadata.filter((m) => m.key !== 'mamba.ssm.state_size'), tensors), ...tensors.map((t) => pad(t.data))]);
	expectError(noState, 'no state size', /missing metadata mamba\.ssm\.state_size/);
	const falcon = Buffer.concat([ggufHeader(metadata.map((m) => (m.key === 'mamba.ssm.dt_b_c_rms' ? { ...m, value: true } : m)), tensors), ...tensors.map((t) => pad(t.data))]);
	expectError(falcon, 'dt_b_c_rms', /Falcon-Mamba/);
	const extra = Buffer.concat([ggufHeader(metadata, [...tensors, { ...tensors[1], name: 'blk.0.ssm_norm.weight' }]), ...[...tensors, tensors[1]].map((t) => pad(t.data))]);
	expectError(extra, 'unexpected tensor', /unexpected tensor blk\.0\.ssm_norm\.weight/);
});

test('memory stays bounded over all the cases above', () => {
	// Every absurd count above was refused before allocating: the process holds no buffer anywhere near their size.
	assert.ok(process.memoryUsage().arrayBuffers < 256 * 2 ** 20, `arrayBuffers ${process.memoryUsage().arrayBuffers}`);
	fs.rmSync(dir, { recursive: true, force: true });
});

test.run();
