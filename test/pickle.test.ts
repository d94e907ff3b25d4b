// pytorch_model.bin: the torch zip archive, the safe pickle reader, and hostile archives and pickles.
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadCheckpoint } from '../src/checkpoint/load.js';
import { PDict, PGlobal, PObject, PTuple, unpickle, type PickleHooks } from '../src/checkpoint/pickle.js';
import { openTorchBin } from '../src/checkpoint/torch.js';
import { crc32, crc32Portable } from '../src/checkpoint/zip.js';
import {
	folderWith, PickleBuilder, throwsUser, tinyTensors, tmpDir, torchPickle, torchZip, writeTiny, zip, zipWithPickle,
} from './helpers/checkpoint-fixtures.js';

const loadBin = (bytes: Uint8Array) => () => loadCheckpoint(folderWith('pytorch_model.bin', bytes, { layout: 'ssm', norm: 'layer' }));
const ssmLN = { layout: 'ssm', norm: 'layer' } as const;

function sameAsSafetensors(opts: Parameters<typeof writeTiny>[1]): void {
	const a = tmpDir();
	const b = tmpDir();
	writeTiny(a, { ...ssmLN, ...opts });
	writeTiny(b, { ...ssmLN, ...opts, bin: true });
	const x = loadCheckpoint(a);
	const y = loadCheckpoint(b);
	assert.equal({ ...y, dir: '', name: '' }, { ...x, dir: '', name: '' });
}

test('torch.save-style archive (protocol 2) loads exactly like the safetensors file', () => {
	sameAsSafetensors({});
	sameAsSafetensors({ dtype: 'F16' });
	sameAsSafetensors({ dtype: 'BF16', untied: true });
});

test('variants torch writers produce: protocol 4, any top folder, one shared storage with offsets, deflate, zip64', () => {
	sameAsSafetensors({ torch: { proto4: true } });
	sameAsSafetensors({ torch: { top: 'pytorch_model' } });
	sameAsSafetensors({ torch: { oneStorage: true }, dtype: 'F16' });
	sameAsSafetensors({ torch: { deflate: true } });
	sameAsSafetensors({ torch: { zip64: true } });
});

test('tied head stored as lm_head.weight sharing the embedding storage (mamba_ssm torch.save)', () => {
	// tinyTensors has no lm_head unless untied: add one that shares the embedding's storage.
	const tensors = tinyTensors(ssmLN);
	tensors.push({ ...tensors[0], name: 'lm_head.weight' });
	const c = loadCheckpoint(folderWith('pytorch_model.bin', torchZip(tensors, { tieHead: true }), ssmLN));
	assert.is(c.config.tied, true);
	assert.is(c.weights.lmHead, undefined);
});

test('state dict nested under "model" and non-tensor values are accepted', () => {
	const { pkl, storages } = torchPickle(tinyTensors(ssmLN));
	// {'epoch': 3, 'model': <state dict>}: wrap the original pickle's value
	const p = new PickleBuilder().op(0x80, 2, 0x7d).str('epoch').int(3).op(0x73).str('model');
	const body = Array.from(pkl.subarray(2, pkl.length - 1)); // without PROTO and STOP
	const wrapped = Uint8Array.from([...p.bytes(), ...body, 0x73, 0x2e]);
	const c = loadCheckpoint(folderWith('pytorch_model.bin', zipWithPickle(wrapped, storages), ssmLN));
	assert.is(c.config.norm, 'layer');
});

// ---- hostile pickles, built byte by byte ----

const marker = nodePath.join(tmpDir(), 'pwned');

/** GLOBAL module\nname + one string argument + REDUCE: what `pickle.loads` would turn into a call. */
function callPickle(mod: string, name: string, arg: string): Uint8Array {
	return new PickleBuilder().op(0x80, 2).global(mod, name).str(arg).op(0x85, 0x52, 0x2e).bytes();
}

test('a pickle calling os.system (and friends) is refused and nothing runs', () => {
	for (const [mod, name] of [['os', 'system'], ['posix', 'system'], ['builtins', 'eval'], ['subprocess', 'Popen'], ['__builtin__', 'exec'], ['torch', 'load']]) {
		const bin = zipWithPickle(callPickle(mod, name, `touch ${marker}`));
		throwsUser(loadBin(bin), new RegExp(`^refusing to load .*pytorch_model\\.bin: pickle references global ${mod}\\.${name} \\(only tensor state dicts are allowed\\)$`));
	}
	// protocol 4 spelling (STACK_GLOBAL), hidden inside an otherwise valid state dict
	const p = new PickleBuilder(true).op(0x80, 4).str('os').str('system').op(0x93).str(`touch ${marker}`).op(0x85, 0x52, 0x2e);
	throwsUser(loadBin(zipWithPickle(p.bytes())), /pickle references global os\.system/);
	assert.not.ok(fs.existsSync(marker), 'nothing was executed');
});

test('allowed globals cannot be abused: storages are not callable, OrderedDict takes no arguments', () => {
	const callStorage = new PickleBuilder().op(0x80, 2).global('torch', 'FloatStorage').op(0x29, 0x52, 0x2e).bytes();
	throwsUser(loadBin(zipWithPickle(callStorage)), /REDUCE of something that is not an allowed function/);
	const odArgs = new PickleBuilder().op(0x80, 2).global('collections', 'OrderedDict').op(0x5d).op(0x85, 0x52, 0x2e).bytes();
	throwsUser(loadBin(zipWithPickle(odArgs)), /OrderedDict with arguments/);
	const fakeStorage = new PickleBuilder().op(0x80, 2).global('torch._utils', '_rebuild_tensor_v2').op(0x28).str('x').int(0).tuple([1]).tuple([1]).op(0x74, 0x52, 0x2e).bytes();
	throwsUser(loadBin(zipWithPickle(fakeStorage)), /_rebuild_tensor_v2 with bad arguments/);
});

test('unsupported opcodes, truncation, bad memo, bad protocol', () => {
	const cases: [number[], RegExp][] = [
		[[0x80, 2, 0x81, 0x2e], /unsupported opcode 0x81/], // NEWOBJ
		[[0x80, 2, 0x69, 0x2e], /unsupported opcode 0x69/], // INST
		[[0x80, 2, 0x53], /unsupported opcode 0x53/], // STRING (text protocol 0)
		[[0x80, 9, 0x2e], /unsupported pickle protocol 9/],
		[[0x80, 2, 0x58, 0xff, 0xff, 0xff, 0x7f], /bad pickle at byte 2: truncated/],
		[[0x80, 2, 0x68, 7, 0x2e], /memo 7 missing/],
		[[0x80, 2, 0x2e], /stack underflow/],
		[[0x80, 2, 0x4b, 1, 0x4b, 2, 0x2e], /values left on the stack/],
		[[0x80, 2, 0x8b, 0, 0, 0, 1], /integer of 16777216 bytes is absurd/],
		[[0x80, 2, 0x4b, 1], /truncated/],
		[[0x80, 2, 0x4b, 1, 0x2e], /holds no state dict/],
	];
	for (const [bytes, re] of cases) throwsUser(loadBin(zipWithPickle(Uint8Array.from(bytes))), /pytorch_model\.bin/, re);
});

test('generic reader: values, memo, lists and dicts', () => {
	const hooks: PickleHooks = {
		global: (m, n) => new PGlobal(m, n),
		reduce: (fn, args) => new PObject({ fn, args }),
		build: (o) => o,
		persistentLoad: (pid) => new PObject(pid),
	};
	const p = new PickleBuilder().op(0x80, 2, 0x5d).put().op(0x28).int(-5).int(70000).int(2 ** 40).op(0x88, 0x89, 0x4e)
		.op(0x47, 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18).str('héllo').op(0x55, 2, 0x41, 0x42).op(0x65)
		.op(0x68, 0).op(0x61).op(0x2e);
	const v = unpickle(p.bytes(), hooks, 'x.pkl') as unknown[];
	assert.equal(v.slice(0, 9), [-5, 70000, 2 ** 40, true, false, null, Math.PI, 'héllo', 'AB']);
	assert.is(v[9], v, 'memo returns the same list');
	const d = unpickle(Uint8Array.from([0x80, 2, 0x7d, 0x28, 0x4b, 1, 0x29, 0x75, 0x2e]), hooks, 'x') as PDict;
	assert.ok(d.map.get(1) instanceof PTuple);
});

// ---- hostile zips ----

const good = () => torchPickle(tinyTensors(ssmLN));

test('zip path traversal and absolute names are refused', () => {
	const { pkl } = good();
	for (const name of ['../../etc/passwd', 'archive/../../x', '/etc/passwd', 'C:\\x', 'archive\\..\\x']) {
		const bin = zip([{ name: 'archive/data.pkl', data: pkl }, { name, data: Buffer.from('x') }]);
		throwsUser(loadBin(bin), /refusing zip entry with unsafe path/);
	}
});

test('zip entries with sizes beyond the file, compressed bombs, unknown methods, duplicates', () => {
	const { pkl } = good();
	throwsUser(loadBin(zip([{ name: 'archive/data.pkl', data: pkl, declaredSize: 4_000_000_000 }])), /declares an impossible size 4000000000/);
	throwsUser(loadBin(zip([{ name: 'archive/data.pkl', data: pkl, method: 8, declaredSize: 2 ** 31 }])), /impossible size/);
	throwsUser(loadBin(zip([{ name: 'archive/data.pkl', data: pkl, method: 12 }])), /compression method 12 \(only stored and deflate are supported\)/);
	throwsUser(loadBin(zip([{ name: 'archive/data.pkl', data: pkl }, { name: 'archive/data.pkl', data: pkl }])), /appears twice/);
	const bin = zip([{ name: 'archive/data.pkl', data: pkl }]);
	const cd = bin.length - 22 - 46 - 'archive/data.pkl'.length;
	bin.writeUInt32LE(2 ** 31, cd + 20); // compressed size far beyond the file
	bin.writeUInt32LE(2 ** 31, cd + 24);
	throwsUser(loadBin(bin), /declares 2147483648 bytes at offset 0, beyond the file size/);
	const big = zip([{ name: 'archive/data.pkl', data: pkl }]);
	big.writeUInt16LE(0xffff, big.length - 22 + 10); // count says zip64 but there is no zip64 record
	throwsUser(loadBin(big), /zip64 locator missing/);
	const many = zip([{ name: 'archive/data.pkl', data: pkl }]);
	many.writeUInt16LE(5000, many.length - 22 + 10);
	throwsUser(loadBin(many), /declares 5000 entries but holds only/);
});

test('not a zip, no data.pkl, missing storage, storage size mismatch, corrupt bytes (CRC)', () => {
	throwsUser(loadBin(Buffer.from('\x80\x02}q\x00.')), /not a zip archive/);
	throwsUser(loadBin(Buffer.alloc(100)), /not a zip archive \(no end-of-central-directory record; the legacy torch\.save format/);
	throwsUser(loadBin(zip([{ name: 'x/y', data: Buffer.from('x') }])), /expected one <name>\/data\.pkl in the archive, found 0/);
	const { pkl, storages } = good();
	const dropped = new Map(storages);
	dropped.delete('5');
	throwsUser(loadBin(zipWithPickle(pkl, dropped)), /tensor backbone\.layers\.0\.mixer\.conv1d\.bias: storage data\/5 is missing from the archive/);
	const short = new Map(storages);
	short.set('5', storages.get('5')!.subarray(4));
	throwsUser(loadBin(zipWithPickle(pkl, short)), /storage data\/5 holds 60 bytes but the pickle says 16 F32 elements/);
	const bin = zipWithPickle(pkl, storages);
	const at = bin.indexOf(Buffer.from(storages.get('3')!.subarray(0, 16)));
	bin[at + 5] ^= 0x10;
	throwsUser(loadBin(bin), /entry archive\/data\/3: CRC-32 mismatch \(corrupt file\)/);
});

test('tensor views: offset past the storage, non-contiguous strides', () => {
	const t = tinyTensors(ssmLN);
	throwsUser(loadBin(torchZip(t, { strides: { 'backbone.layers.1.mixer.in_proj.weight': [1, 32] } })), /tensor backbone\.layers\.1\.mixer\.in_proj\.weight: non-contiguous strides \[1, 32\] for shape \[32, 8\] \(save with tensor\.contiguous\(\)\)/);
	const { pkl, storages } = torchPickle(t);
	// Rewrite one tensor's storage offset (BININT1 0 right after its persistent id) to 1: one element too far.
	const bytes = Buffer.from(pkl);
	const key = bytes.indexOf(Buffer.from('backbone.norm_f.weight'));
	const persid = bytes.indexOf(0x51, key); // BINPERSID
	const off = bytes.indexOf(Buffer.from([0x4b, 0x00]), persid);
	bytes[off + 1] = 1;
	throwsUser(loadBin(zipWithPickle(bytes, storages)), /tensor backbone\.norm_f\.weight: shape \[8\] at storage offset 1 runs past its storage of 8 elements/);
});

test('openTorchBin lists dtypes and shapes before reading any data', () => {
	const file = nodePath.join(tmpDir(), 'pytorch_model.bin');
	fs.writeFileSync(file, torchZip(tinyTensors({ ...ssmLN, dtype: 'BF16' })));
	const src = openTorchBin(file);
	assert.equal(src.entries.get('backbone.layers.1.mixer.conv1d.weight'), { ...src.entries.get('backbone.layers.1.mixer.conv1d.weight')!, dtype: 'BF16', shape: [16, 1, 4] });
	src.close();
});

test('the portable CRC-32 (Node < 20.15) agrees with the native one', () => {
	const data = Buffer.from(torchZip(tinyTensors(ssmLN)));
	assert.is(crc32Portable(data), crc32(data));
	assert.is(crc32Portable(Buffer.from('123456789')), 0xcbf43926);
});

test.run();
