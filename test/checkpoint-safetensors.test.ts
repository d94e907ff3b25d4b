// Hostile and broken safetensors files: each ends in one clear UserError naming the file and the problem.
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadCheckpoint } from '../src/checkpoint/load.js';
import { openSafetensors, writeSafetensors } from '../src/checkpoint/safetensors.js';
import { folderWith, rawSafetensors, throwsUser, tinyTensors, tmpDir } from './helpers/checkpoint-fixtures.js';

const load = (bytes: Uint8Array) => () => loadCheckpoint(folderWith('model.safetensors', bytes));
const f32 = (n: number) => new Uint8Array(4 * n);

test('reader: metadata ignored, tensors read one by one', () => {
	const file = nodePath.join(tmpDir(), 'm.safetensors');
	writeSafetensors(file, [
		{ name: 'a', dtype: 'F16', shape: [3], data: new Float32Array([1, -2, 0.5]) },
		{ name: 'b', dtype: 'BF16', shape: [2, 1], data: new Float32Array([3, -4]) },
		{ name: 'c', dtype: 'F32', shape: [], data: new Float32Array([7]) },
	], { format: 'pt' });
	const st = openSafetensors(file);
	assert.equal(st.metadata, { format: 'pt' });
	assert.equal([...st.entries.keys()], ['a', 'b', 'c']);
	assert.equal(Array.from(st.read('a')), [1, -2, 0.5]);
	assert.equal(Array.from(st.read('b')), [3, -4]);
	assert.equal(Array.from(st.read('c')), [7]);
	st.close();
	// The data starts 8-byte aligned, as the reference writer does it.
	assert.is(Number(fs.readFileSync(file).readBigUInt64LE(0)) % 8, 0);
});

test('too short, enormous or lying header length', () => {
	throwsUser(load(new Uint8Array(3)), /model\.safetensors: not a safetensors file \(only 3 bytes/);
	throwsUser(load(rawSafetensors('{}', f32(0), 1n << 62n)), /header length field is over 100000000 bytes/);
	throwsUser(load(rawSafetensors('{}', f32(0), 200_000_000n)), /header length field is over 100000000 bytes/);
	throwsUser(load(rawSafetensors('{}', f32(0), 5000n)), /header length exceeds the file size 10/);
});

test('header not JSON, not an object, not UTF-8', () => {
	throwsUser(load(rawSafetensors('{"a": [1, 2')), /safetensors header is not valid JSON/);
	throwsUser(load(rawSafetensors('[1, 2, 3]')), /header is not a JSON object/);
	throwsUser(load(rawSafetensors('null')), /header is not a JSON object/);
	const bad = rawSafetensors('{"\xff": 1}');
	bad[10] = 0xff; // invalid UTF-8 byte inside the key
	throwsUser(load(bad), /not valid JSON/);
});

test('bad entries: not an object, dtype unknown or missing, bad shape, bad offsets', () => {
	const cases: [unknown, RegExp][] = [
		[{ x: 5 }, /tensor x: header entry is not an object/],
		[{ x: { shape: [1], data_offsets: [0, 4] } }, /tensor x: missing dtype/],
		[{ x: { dtype: 'Q7', shape: [1], data_offsets: [0, 4] } }, /tensor x: unknown dtype "Q7" \(expected F32, F16 or BF16\)/],
		[{ x: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, /shape must be a list of non-negative integers/],
		[{ x: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } }, /shape must be a list of non-negative integers/],
		[{ x: { dtype: 'F32', shape: '4', data_offsets: [0, 4] } }, /shape must be a list of non-negative integers/],
		[{ x: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, /data_offsets must be \[begin, end\]/],
		[{ x: { dtype: 'F32', shape: [1], data_offsets: [0, 4, 8] } }, /data_offsets must be \[begin, end\]/],
		[{ x: { dtype: 'F32', shape: [1], data_offsets: [-4, 0] } }, /data_offsets must be \[begin, end\]/],
		[{ 'a\nb': { dtype: 'F32', shape: [1], data_offsets: [0, 8] } }, /tensor "a\\nb": shape \[1\] F32 needs 4 bytes but data_offsets hold 8/],
	];
	for (const [header, re] of cases) throwsUser(load(rawSafetensors(header, f32(4))), re);
});

test('offsets out of range of the file', () => {
	throwsUser(load(rawSafetensors({ x: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, f32(3))), /tensor x: data_offsets \[0, 16\] run past the end of the data \(12 bytes; truncated file\?\)/);
	throwsUser(load(rawSafetensors({ x: { dtype: 'F32', shape: [1], data_offsets: [2 ** 50, 2 ** 50 + 4] } }, f32(3))), /run past the end of the data/);
});

test('overlapping tensors', () => {
	const header = {
		a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] },
		b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] },
	};
	throwsUser(load(rawSafetensors(header, f32(4))), /tensor b overlaps tensor a \(data_offsets collide\)/);
	// A tensor inside a bigger one that is not its neighbour in sort order.
	const nested = {
		big: { dtype: 'F32', shape: [8], data_offsets: [0, 32] },
		empty: { dtype: 'F32', shape: [0], data_offsets: [4, 4] },
		inner: { dtype: 'F32', shape: [1], data_offsets: [20, 24] },
	};
	throwsUser(load(rawSafetensors(nested, f32(8))), /tensor inner overlaps tensor big/);
});

test('shape disagrees with byte count', () => {
	throwsUser(load(rawSafetensors({ x: { dtype: 'F16', shape: [2, 3], data_offsets: [0, 24] } }, f32(6))), /tensor x: shape \[2, 3\] F16 needs 12 bytes but data_offsets hold 24/);
	// the model's own tensor: declared shape right, bytes short
	const t = tinyTensors();
	const file = nodePath.join(tmpDir(), 'x.safetensors');
	writeSafetensors(file, t);
	const bytes = fs.readFileSync(file);
	const len = Number(bytes.readBigUInt64LE(0));
	const header = JSON.parse(bytes.subarray(8, 8 + len).toString());
	header['backbone.norm_f.weight'].shape = [9];
	throwsUser(load(rawSafetensors(header, bytes.subarray(8 + len))), /tensor backbone\.norm_f\.weight: shape \[9\] F32 needs 36 bytes but data_offsets hold 32/);
});

test('a known but unsupported dtype is refused for a needed tensor and ignored for an extra one', () => {
	const t = tinyTensors();
	const file = nodePath.join(tmpDir(), 'x.safetensors');
	writeSafetensors(file, t);
	const bytes = fs.readFileSync(file);
	const len = Number(bytes.readBigUInt64LE(0));
	const header = JSON.parse(bytes.subarray(8, 8 + len).toString());
	const d = header['backbone.layers.0.mixer.D'];
	header['backbone.layers.0.mixer.D'] = { ...d, dtype: 'I64', shape: [8] }; // same 64 bytes, read as int64
	throwsUser(load(rawSafetensors(header, bytes.subarray(8 + len))), /tensor backbone\.layers\.0\.mixer\.D has shape \[8\]/);
	header['backbone.layers.0.mixer.D'] = { ...d, dtype: 'I32' };
	throwsUser(load(rawSafetensors(header, bytes.subarray(8 + len))), /tensor backbone\.layers\.0\.mixer\.D has dtype I32 \(expected F32, F16 or BF16\)/);
	header['backbone.layers.0.mixer.D'] = d;
	const data = Buffer.concat([bytes.subarray(8 + len), Buffer.alloc(16)]);
	const end = data.length;
	header.step = { dtype: 'I64', shape: [2], data_offsets: [end - 16, end] };
	assert.is(loadCheckpoint(folderWith('model.safetensors', rawSafetensors(header, data))).config.dModel, 8);
});

test('truncated file', () => {
	const file = nodePath.join(tmpDir(), 'x.safetensors');
	writeSafetensors(file, tinyTensors());
	const bytes = fs.readFileSync(file);
	throwsUser(load(bytes.subarray(0, bytes.length - 1)), /run past the end of the data/);
	throwsUser(load(bytes.subarray(0, 20)), /exceeds the file size/);
});

test.run();
