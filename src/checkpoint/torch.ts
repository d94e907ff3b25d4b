// pytorch_model.bin as written by torch.save (>= 1.6): a zip archive with `<top>/data.pkl` (a pickle of the state
// dict whose tensors point at storages by persistent id) and one `<top>/data/<key>` entry of raw bytes per storage.
// The pickle is read with the safe reader and an allowlist of the globals a state dict needs; storages are read
// lazily, tensor by tensor, honouring the storage offset.
import * as os from 'node:os';
import { UserError } from '../errors.js';
import { bf16ToF32, f16ToF32, isFloatDType } from '../tensor/dtypes.js';
import { fmtShape, itemSize, product, show, type TensorEntry, type TensorSource } from './io.js';
import { PDict, PGlobal, PObject, PTuple, unpickle, type PickleHooks, type PValue } from './pickle.js';
import { MAX_INFLATE_RATIO, ZipReader, type ZipEntry } from './zip.js';

const MAX_PICKLE_BYTES = 64_000_000; // a state dict pickle is a few KB per hundred tensors

/** torch storage classes (data-type markers in persistent ids, never called) and the dtype each one holds. */
const STORAGE_DTYPES: Record<string, string> = {
	FloatStorage: 'F32', HalfStorage: 'F16', BFloat16Storage: 'BF16', DoubleStorage: 'F64',
	LongStorage: 'I64', IntStorage: 'I32', ShortStorage: 'I16', CharStorage: 'I8', ByteStorage: 'U8', BoolStorage: 'BOOL',
};
const ALLOWED_GLOBALS = new Set([
	'collections.OrderedDict',
	'torch._utils._rebuild_tensor_v2',
	'torch._utils._rebuild_parameter',
	...Object.keys(STORAGE_DTYPES).map((s) => `torch.${s}`),
]);

class StorageRef {
	constructor(readonly key: string, readonly dtype: string, readonly numel: number) {}
}
class TensorRef {
	constructor(readonly storage: StorageRef, readonly offset: number, readonly shape: number[], readonly stride: number[]) {}
}
interface TorchEntry extends TensorEntry {
	zipEntry: ZipEntry;
	offset: number; // in elements
}

export function openTorchBin(path: string): TensorSource {
	const zip = new ZipReader(path);
	try {
		const entries = readStateDict(zip, path);
		return {
			path,
			entries,
			read(name: string): Float32Array {
				const e = entries.get(name);
				if (!e) throw new UserError(`${path}: no tensor ${show(name)}`);
				if (!isFloatDType(e.dtype)) throw new UserError(`${path}: tensor ${show(name)} has dtype ${e.dtype} (expected F32, F16 or BF16)`);
				const n = product(e.shape);
				const size = itemSize(e.dtype) as number;
				const out = new Float32Array(n);
				if (e.dtype === 'F32') {
					zip.readInto(e.zipEntry, e.offset * size, new Uint8Array(out.buffer));
					return out;
				}
				const half = new Uint16Array(n);
				zip.readInto(e.zipEntry, e.offset * size, new Uint8Array(half.buffer));
				if (e.dtype === 'F16') f16ToF32(half, out);
				else bf16ToF32(half, out);
				return out;
			},
			close: () => zip.close(),
		};
	} catch (err) {
		zip.close();
		throw err;
	}
}

function readStateDict(zip: ZipReader, path: string): Map<string, TorchEntry> {
	// The top folder is named after the file torch.save wrote (it varies); data.pkl is the one file directly in it.
	const pkls = [...zip.entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
	if (pkls.length !== 1) throw new UserError(`${path}: not a torch checkpoint (expected one <name>/data.pkl in the archive, found ${pkls.length})`);
	const top = pkls[0].slice(0, -'data.pkl'.length);
	const order = zip.entries.get(`${top}byteorder`);
	if (order && order.size < 16 && zip.read(order).toString('latin1') !== 'little') {
		throw new UserError(`${path}: big-endian torch archives are not supported`);
	}
	const pkl = zip.entries.get(pkls[0]) as ZipEntry;
	if (pkl.size > MAX_PICKLE_BYTES) throw new UserError(`${path}: ${pkls[0]} is ${pkl.size} bytes (a state dict pickle is far smaller; refusing)`);
	const root = unpickle(zip.read(pkl), torchHooks(path), path);

	let dict = root instanceof PDict ? root : undefined;
	// Training scripts often save {'model': state_dict} or {'state_dict': ...}: look one level down when needed.
	if (dict && ![...dict.map.values()].some(isTensor)) {
		const inner = ['state_dict', 'model', 'module'].map((k) => dict?.map.get(k)).find((v) => v instanceof PDict);
		if (inner instanceof PDict) dict = inner;
	}
	if (!dict) throw new UserError(`${path}: the pickle holds no state dict (expected a dict of tensors)`);

	const entries = new Map<string, TorchEntry>();
	for (const [name, value] of dict.map) {
		if (typeof name !== 'string' || !isTensor(value)) continue; // non-tensor values (e.g. step counters) are ignored
		const t = (value as PObject).value as TensorRef;
		const where = `${path}: tensor ${show(name)}`;
		const zipEntry = zip.entries.get(`${top}data/${t.storage.key}`);
		if (!zipEntry) throw new UserError(`${where}: storage data/${t.storage.key} is missing from the archive`);
		const size = itemSize(t.storage.dtype) as number;
		if (zipEntry.size !== t.storage.numel * size) {
			throw new UserError(`${where}: storage data/${t.storage.key} holds ${zipEntry.size} bytes but the pickle says ${t.storage.numel} ${t.storage.dtype} elements`);
		}
		if (t.offset + product(t.shape) > t.storage.numel) {
			throw new UserError(`${where}: shape ${fmtShape(t.shape)} at storage offset ${t.offset} runs past its storage of ${t.storage.numel} elements`);
		}
		// Only row-major contiguous tensors are read (what state_dict() holds); dims of size 1 may have any stride.
		let expect = 1;
		for (let i = t.shape.length - 1; i >= 0; i--) {
			if (t.shape[i] !== 1 && t.stride[i] !== expect && product(t.shape) > 0) {
				throw new UserError(`${where}: non-contiguous strides ${fmtShape(t.stride)} for shape ${fmtShape(t.shape)} (save with tensor.contiguous())`);
			}
			expect *= t.shape[i];
		}
		entries.set(name, { dtype: t.storage.dtype, shape: t.shape, zipEntry, offset: t.offset });
	}
	checkDeclaredBytes(entries, path);
	const uses = new Map<ZipEntry, number>();
	for (const e of entries.values()) uses.set(e.zipEntry, (uses.get(e.zipEntry) ?? 0) + 1);
	for (const [z, n] of uses) zip.shareEntry(z, n);
	return entries;
}

/**
 * What the tensors declare must be justified by what the archive stores: tensors may view shared storages (a tied
 * head, views of one buffer), but their bytes together beyond MAX_INFLATE_RATIO times the stored bytes mean a file
 * built to make the loader allocate (many views of one storage, or a small deflated storage declaring gigabytes).
 */
function checkDeclaredBytes(entries: Map<string, TorchEntry>, path: string): void {
	let declared = 0;
	const stored = new Map<ZipEntry, number>();
	for (const e of entries.values()) {
		declared += product(e.shape) * (itemSize(e.dtype) as number);
		stored.set(e.zipEntry, e.zipEntry.compressedSize);
	}
	const storedBytes = [...stored.values()].reduce((a, b) => a + b, 0);
	if (declared > storedBytes * MAX_INFLATE_RATIO + (1 << 20)) {
		throw new UserError(`${path}: tensors declare ${declared} bytes but the archive stores only ${storedBytes} (over ${MAX_INFLATE_RATIO}x; refusing before allocating)`);
	}
	if (declared > os.totalmem()) {
		throw new UserError(`${path}: tensors declare ${(declared / 2 ** 30).toFixed(1)} GiB, more than this machine's ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB of memory`);
	}
}

function isTensor(v: PValue | undefined): boolean {
	return v instanceof PObject && v.value instanceof TensorRef;
}

function torchHooks(path: string): PickleHooks {
	const fail = (why: string): never => {
		throw new UserError(`${path}: bad state dict pickle: ${why}`);
	};
	const storages = new Map<string, StorageRef>();
	const int = (v: PValue, what: string): number =>
		typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : fail(`${what} is not a non-negative integer`);
	const ints = (v: PValue, what: string): number[] => {
		if (!(v instanceof PTuple) || v.items.length > 8) return fail(`${what} is not a tuple of at most 8 integers`);
		return v.items.map((x) => int(x, what));
	};
	return {
		global(module, name) {
			const full = `${module}.${name}`;
			if (!ALLOWED_GLOBALS.has(full)) {
				const shown = full.replace(/[^\x20-\x7e]/g, '?').slice(0, 120);
				throw new UserError(`refusing to load ${path}: pickle references global ${shown} (only tensor state dicts are allowed)`);
			}
			return new PGlobal(module, name);
		},
		reduce(fn, args) {
			if (!(fn instanceof PGlobal) || fn.name.endsWith('Storage')) return fail('REDUCE of something that is not an allowed function');
			const a = args.items;
			if (fn.full === 'collections.OrderedDict') {
				if (a.length === 0) return new PDict();
				return fail('OrderedDict with arguments');
			}
			if (fn.full === 'torch._utils._rebuild_parameter') {
				return a.length >= 1 && isTensor(a[0]) ? a[0] : fail('_rebuild_parameter without a tensor');
			}
			// _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
			if (a.length < 4 || !(a[0] instanceof PObject) || !(a[0].value instanceof StorageRef)) return fail('_rebuild_tensor_v2 with bad arguments');
			const shape = ints(a[2], 'tensor size');
			const stride = ints(a[3], 'tensor stride');
			if (stride.length !== shape.length) fail('tensor stride and size differ in length');
			return new PObject(new TensorRef(a[0].value, int(a[1], 'storage offset'), shape, stride));
		},
		build(obj, _state) {
			// OrderedDict state is the state dict's `_metadata` (module versions): not needed.
			if (obj instanceof PDict || isTensor(obj)) return obj;
			return fail('BUILD on an unexpected object');
		},
		persistentLoad(pid) {
			// ('storage', <torch.XStorage>, key, location, numel)
			if (!(pid instanceof PTuple) || pid.items.length !== 5 || pid.items[0] !== 'storage') return fail('unexpected persistent id');
			const [, type, key, , numelV] = pid.items;
			if (!(type instanceof PGlobal) || !(type.name in STORAGE_DTYPES)) return fail('persistent id without a storage type');
			if (typeof key !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(key)) return fail('bad storage key');
			const ref = new StorageRef(key, STORAGE_DTYPES[type.name], int(numelV, 'storage size'));
			const seen = storages.get(key);
			if (seen && (seen.dtype !== ref.dtype || seen.numel !== ref.numel)) fail(`storage ${key} declared twice with different types`);
			if (!seen) storages.set(key, ref);
			return new PObject(seen ?? ref);
		},
	};
}
