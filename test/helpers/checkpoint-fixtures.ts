// Builders for checkpoint tests: tiny random models in either layout and dtype, written as safetensors or as a
// torch.save-style zip (pickle built byte by byte the way torch's protocol-2 pickler writes it), plus raw writers
// for hand-made bad files.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import * as zlib from 'node:zlib';
import * as assert from 'uvu/assert';
import { UserError } from '../../src/errors.js';
import { decodeFloats, encodeFloats, type FloatDType } from '../../src/tensor/dtypes.js';
import { writeSafetensors, type TensorToWrite } from '../../src/checkpoint/safetensors.js';
import { crc32 } from '../../src/checkpoint/zip.js';

import { rng } from '../../src/model/random.js';
export { rng };

const made: string[] = [];
// Tests leave nothing in the temp folder: every folder made here goes when the test process ends.
process.on('exit', () => {
	for (const dir of made) fs.rmSync(dir, { recursive: true, force: true });
});

export function tmpDir(tag = 'ckpt'): string {
	const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), `mambabyte-${tag}-`));
	made.push(dir);
	return dir;
}

export interface TinyOpts {
	layout?: 'hf' | 'ssm';
	norm?: 'rms' | 'layer';
	untied?: boolean;
	dtype?: FloatDType;
	d?: number;
	layers?: number;
	vocab?: number; // rows of the embedding
	seed?: number;
}

export const TINY = { d: 8, layers: 2, vocab: 256, dState: 4, dConv: 4 };

export function tinyConfig(o: TinyOpts = {}): Record<string, unknown> {
	const d = o.d ?? TINY.d;
	if ((o.layout ?? 'hf') === 'hf') {
		return {
			architectures: ['MambaForCausalLM'], model_type: 'mamba', hidden_size: d, num_hidden_layers: o.layers ?? TINY.layers,
			state_size: TINY.dState, expand: 2, conv_kernel: TINY.dConv, time_step_rank: 'auto', layer_norm_epsilon: 1e-5,
			vocab_size: o.vocab ?? TINY.vocab, tie_word_embeddings: !o.untied,
		};
	}
	// As the published MambaByte configs: rms_norm true even with LayerNorm weights, and a stray pad_id.
	return {
		d_model: d, n_layer: o.layers ?? TINY.layers, vocab_size: o.vocab ?? TINY.vocab, ssm_cfg: { d_state: TINY.dState },
		rms_norm: true, residual_in_fp32: true, fused_add_norm: true, pad_vocab_size_multiple: 8, tie_embeddings: !o.untied, pad_id: 0,
	};
}

/** Random weights (exactly representable in `dtype`) under the names of the chosen layout. */
export function tinyTensors(o: TinyOpts = {}): TensorToWrite[] {
	const d = o.d ?? TINY.d, L = o.layers ?? TINY.layers, V = o.vocab ?? TINY.vocab;
	const e = 2 * d, n = TINY.dState, k = TINY.dConv, r = Math.ceil(d / 16);
	const dtype = o.dtype ?? 'F32';
	const rand = rng(o.seed ?? 1);
	const out: TensorToWrite[] = [];
	const add = (name: string, shape: number[], scale = 0.5, bias = 0) => {
		const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
		for (let i = 0; i < data.length; i++) data[i] = bias + (rand() * 2 - 1) * scale;
		out.push({ name, dtype, shape, data: decodeFloats(encodeFloats(data, dtype), dtype) });
	};
	add(o.layout === 'ssm' ? 'backbone.embedding.weight' : 'backbone.embeddings.weight', [V, d]);
	for (let i = 0; i < L; i++) {
		const p = `backbone.layers.${i}.`;
		add(`${p}norm.weight`, [d], 0.1, 1);
		if (o.norm === 'layer') add(`${p}norm.bias`, [d], 0.1);
		add(`${p}mixer.in_proj.weight`, [2 * e, d]);
		add(`${p}mixer.conv1d.weight`, [e, 1, k]);
		add(`${p}mixer.conv1d.bias`, [e]);
		add(`${p}mixer.x_proj.weight`, [r + 2 * n, e]);
		add(`${p}mixer.dt_proj.weight`, [e, r]);
		add(`${p}mixer.dt_proj.bias`, [e]);
		add(`${p}mixer.A_log`, [e, n], 0.5, 1);
		add(`${p}mixer.D`, [e], 0.5, 1);
		add(`${p}mixer.out_proj.weight`, [d, e]);
	}
	add('backbone.norm_f.weight', [d], 0.1, 1);
	if (o.norm === 'layer') add('backbone.norm_f.bias', [d], 0.1);
	if (o.untied) add('lm_head.weight', [V, d]);
	return out;
}

/** A checkpoint folder with config.json and model.safetensors (or pytorch_model.bin when `bin`). */
export function writeTiny(dir: string, o: TinyOpts & { bin?: boolean; torch?: TorchOpts } = {}): TensorToWrite[] {
	fs.mkdirSync(dir, { recursive: true });
	fs.writeFileSync(nodePath.join(dir, 'config.json'), JSON.stringify(tinyConfig(o)));
	const tensors = tinyTensors(o);
	if (o.bin) fs.writeFileSync(nodePath.join(dir, 'pytorch_model.bin'), torchZip(tensors, o.torch));
	else writeSafetensors(nodePath.join(dir, 'model.safetensors'), tensors);
	return tensors;
}

/** A safetensors file from a raw header (object or string) and raw data bytes, for malformed cases. */
export function rawSafetensors(header: unknown, data: Uint8Array = new Uint8Array(0), declaredLength?: bigint): Buffer {
	const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
	const len = Buffer.alloc(8);
	len.writeBigUInt64LE(declaredLength ?? BigInt(json.length));
	return Buffer.concat([len, json, data]);
}

// ---- pickles, as torch.save (protocol 2) writes a state dict ----

export class PickleBuilder {
	private out: number[] = [];
	private memo = new Map<string, number>();
	private next = 0;
	constructor(readonly proto4 = false) {}
	op(...b: number[]): this {
		this.out.push(...b);
		return this;
	}
	u32(n: number): this {
		return this.op(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);
	}
	str(s: string): this {
		const b = Buffer.from(s, 'utf8');
		if (this.proto4 && b.length < 256) return this.op(0x8c, b.length, ...b);
		return this.op(0x58).u32(b.length).op(...b);
	}
	int(n: number): this {
		if (n >= 0 && n < 256) return this.op(0x4b, n);
		if (n >= 0 && n < 65536) return this.op(0x4d, n & 0xff, n >> 8);
		if (n >= -(2 ** 31) && n < 2 ** 31) return this.op(0x4a).u32(n);
		const bytes: number[] = [];
		let v = BigInt(n);
		for (let i = 0; i < 8; i++, v >>= 8n) bytes.push(Number(v & 0xffn));
		return this.op(0x8a, 8, ...bytes);
	}
	put(): this {
		if (this.proto4) return this.op(0x94);
		return this.op(0x71, this.next++ & 0xff);
	}
	/** GLOBAL, memoised like pickle does (the second use is a BINGET). */
	global(mod: string, name: string): this {
		const key = `${mod}\n${name}`;
		const at = this.memo.get(key);
		if (at !== undefined && !this.proto4) return this.op(0x68, at);
		if (this.proto4) this.str(mod).str(name).op(0x93);
		else this.op(0x63, ...Buffer.from(`${mod}\n${name}\n`, 'latin1'));
		if (!this.proto4) this.memo.set(key, this.next);
		return this.put();
	}
	tuple(items: number[]): this {
		if (items.length === 0) return this.op(0x29);
		if (items.length <= 3 && !this.proto4) {
			for (const i of items) this.int(i);
			return this.op(0x84 + items.length);
		}
		this.op(0x28);
		for (const i of items) this.int(i);
		return this.op(0x74);
	}
	bytes(): Uint8Array {
		return Uint8Array.from(this.out);
	}
}

export interface TorchOpts {
	top?: string; // top folder name inside the zip
	proto4?: boolean;
	/** All tensors of one dtype in a single storage, each at its own storage offset. */
	oneStorage?: boolean;
	/** lm_head.weight shares the embedding's storage (as torch.save of a tied mamba_ssm model does). */
	tieHead?: boolean;
	deflate?: boolean;
	zip64?: boolean;
	strides?: Record<string, number[]>; // override strides per tensor (non-contiguous tests)
}

const STORAGE: Record<FloatDType, string> = { F32: 'FloatStorage', F16: 'HalfStorage', BF16: 'BFloat16Storage' };

/** The pickle and storage files torch.save would write for these tensors. */
export function torchPickle(tensors: TensorToWrite[], o: TorchOpts = {}): { pkl: Uint8Array; storages: Map<string, Uint8Array> } {
	const storages = new Map<string, Uint8Array>();
	const place = new Map<string, { key: string; offset: number; numel: number }>();
	if (o.oneStorage) {
		const parts: Uint8Array[] = [];
		let offset = 0;
		for (const t of tensors) {
			place.set(t.name, { key: '0', offset, numel: 0 });
			parts.push(encodeFloats(t.data, t.dtype));
			offset += t.data.length;
		}
		storages.set('0', Buffer.concat(parts));
		for (const p of place.values()) p.numel = offset;
	} else {
		tensors.forEach((t, i) => {
			const emb = tensors.find((x) => x.name.startsWith('backbone.embedding'));
			if (o.tieHead && t.name === 'lm_head.weight' && emb) return;
			place.set(t.name, { key: String(i), offset: 0, numel: t.data.length });
			storages.set(String(i), encodeFloats(t.data, t.dtype).slice());
		});
		const emb = tensors.find((x) => x.name.startsWith('backbone.embedding'));
		if (o.tieHead && emb) place.set('lm_head.weight', place.get(emb.name)!);
	}
	const p = new PickleBuilder(o.proto4);
	p.op(0x80, o.proto4 ? 4 : 2);
	p.global('collections', 'OrderedDict').op(0x29, 0x52).put().op(0x28);
	for (const t of tensors) {
		const at = place.get(t.name)!;
		p.str(t.name).put();
		p.global('torch._utils', '_rebuild_tensor_v2');
		p.op(0x28); // args
		p.op(0x28).str('storage').global('torch', STORAGE[t.dtype]).str(at.key).str('cpu').int(at.numel).op(0x74, 0x51).put();
		p.int(at.offset);
		p.tuple(t.shape);
		const stride = t.shape.map((_, i) => t.shape.slice(i + 1).reduce((a, b) => a * b, 1));
		p.tuple(o.strides?.[t.name] ?? stride);
		p.op(0x89); // requires_grad False
		p.global('collections', 'OrderedDict').op(0x29, 0x52).put();
		p.op(0x74, 0x52).put();
	}
	p.op(0x75); // SETITEMS
	// state = {'_metadata': OrderedDict({'': {'version': 1}})}, applied by BUILD
	p.op(0x7d).put().str('_metadata').put().global('collections', 'OrderedDict').op(0x29, 0x52).put();
	p.str('').op(0x7d).put().str('version').int(1).op(0x73, 0x73);
	p.op(0x73, 0x62, 0x2e); // SETITEM, BUILD, STOP
	return { pkl: p.bytes(), storages };
}

export function torchZip(tensors: TensorToWrite[], o: TorchOpts = {}): Buffer {
	const { pkl, storages } = torchPickle(tensors, o);
	return zipWithPickle(pkl, storages, o);
}

export function zipWithPickle(pkl: Uint8Array, storages = new Map<string, Uint8Array>(), o: TorchOpts = {}): Buffer {
	const top = o.top ?? 'archive';
	const entries: ZipIn[] = [
		{ name: `${top}/data.pkl`, data: pkl, method: o.deflate ? 8 : 0 },
		{ name: `${top}/byteorder`, data: Buffer.from('little') },
		...[...storages].map(([k, data]) => ({ name: `${top}/data/${k}`, data, method: (o.deflate ? 8 : 0) as 0 | 8 })),
		{ name: `${top}/version`, data: Buffer.from('3\n') },
	];
	return zip(entries, o.zip64);
}

// ---- zip ----

export interface ZipIn {
	name: string;
	data: Uint8Array;
	method?: number; // 0 stored, 8 deflate, others written as-is (stored bytes) for refusal tests
	declaredSize?: number; // lie about the uncompressed size
}

/** A zip archive like torch's writer makes: data aligned to 64 bytes through a padding extra field. */
export function zip(entries: ZipIn[], zip64 = false): Buffer {
	const parts: Buffer[] = [];
	const central: Buffer[] = [];
	let offset = 0;
	for (const e of entries) {
		const name = Buffer.from(e.name, 'utf8');
		const method = e.method ?? 0;
		const body = method === 8 ? zlib.deflateRawSync(e.data) : Buffer.from(e.data);
		const crc = crc32(e.data);
		const size = e.declaredSize ?? e.data.length;
		const pad = (64 - ((offset + 30 + name.length + 4) % 64)) % 64;
		const extra = Buffer.alloc(4 + pad);
		extra.writeUInt16LE(0x4346, 0); // "FB", torch's padding field
		extra.writeUInt16LE(pad, 2);
		const local = Buffer.alloc(30);
		local.writeUInt32LE(0x04034b50, 0);
		local.writeUInt16LE(20, 4);
		local.writeUInt16LE(method, 8);
		local.writeUInt16LE(0x21, 12);
		local.writeUInt32LE(crc, 14);
		local.writeUInt32LE(body.length, 18);
		local.writeUInt32LE(size >>> 0 === size ? size : 0xffffffff, 22);
		local.writeUInt16LE(name.length, 26);
		local.writeUInt16LE(extra.length, 28);
		parts.push(local, name, extra, body);
		const z64 = Buffer.alloc(zip64 ? 28 : 0);
		if (zip64) {
			z64.writeUInt16LE(1, 0);
			z64.writeUInt16LE(24, 2);
			z64.writeBigUInt64LE(BigInt(size), 4);
			z64.writeBigUInt64LE(BigInt(body.length), 12);
			z64.writeBigUInt64LE(BigInt(offset), 20);
		}
		const c = Buffer.alloc(46);
		c.writeUInt32LE(0x02014b50, 0);
		c.writeUInt16LE(zip64 ? 45 : 20, 4);
		c.writeUInt16LE(zip64 ? 45 : 20, 6);
		c.writeUInt16LE(method, 10);
		c.writeUInt16LE(0x21, 14);
		c.writeUInt32LE(crc, 16);
		c.writeUInt32LE(zip64 ? 0xffffffff : body.length, 20);
		c.writeUInt32LE(zip64 ? 0xffffffff : Math.min(size, 0xffffffff), 24);
		c.writeUInt16LE(name.length, 28);
		c.writeUInt16LE(z64.length, 30);
		c.writeUInt32LE(zip64 ? 0xffffffff : offset, 42);
		central.push(c, name, z64);
		offset += 30 + name.length + extra.length + body.length;
	}
	const cd = Buffer.concat(central);
	const tail: Buffer[] = [];
	if (zip64) {
		const rec = Buffer.alloc(56);
		rec.writeUInt32LE(0x06064b50, 0);
		rec.writeBigUInt64LE(44n, 4);
		rec.writeUInt16LE(45, 12);
		rec.writeUInt16LE(45, 14);
		rec.writeBigUInt64LE(BigInt(entries.length), 24);
		rec.writeBigUInt64LE(BigInt(entries.length), 32);
		rec.writeBigUInt64LE(BigInt(cd.length), 40);
		rec.writeBigUInt64LE(BigInt(offset), 48);
		const loc = Buffer.alloc(20);
		loc.writeUInt32LE(0x07064b50, 0);
		loc.writeBigUInt64LE(BigInt(offset + cd.length), 8);
		loc.writeUInt32LE(1, 16);
		tail.push(rec, loc);
	}
	const end = Buffer.alloc(22);
	end.writeUInt32LE(0x06054b50, 0);
	end.writeUInt16LE(zip64 ? 0xffff : entries.length, 8);
	end.writeUInt16LE(zip64 ? 0xffff : entries.length, 10);
	end.writeUInt32LE(zip64 ? 0xffffffff : cd.length, 12);
	end.writeUInt32LE(zip64 ? 0xffffffff : offset, 16);
	return Buffer.concat([...parts, cd, ...tail, end]);
}

/** A folder with a valid tiny config and the given raw bytes as its weights file. */
export function folderWith(file: 'model.safetensors' | 'pytorch_model.bin', bytes: Uint8Array, o: TinyOpts = {}, dir = tmpDir()): string {
	fs.writeFileSync(nodePath.join(dir, 'config.json'), JSON.stringify(tinyConfig(o)));
	fs.writeFileSync(nodePath.join(dir, file), bytes);
	return dir;
}

/** Assert `fn` throws a one-line UserError whose message matches every pattern; returns the message. */
export function throwsUser(fn: () => unknown, ...patterns: RegExp[]): string {
	try {
		fn();
	} catch (err) {
		if (!(err instanceof UserError)) throw new Error(`expected a UserError, got ${(err as Error)?.stack ?? String(err)}`);
		assert.not.match(err.message, /\n/, 'one line');
		for (const p of patterns) assert.match(err.message, p);
		return err.message;
	}
	throw new Error(`expected a UserError matching ${patterns.join(', ')}`);
}
