// A SAFE pickle reader. A pickle is a program for a stack machine whose GLOBAL/REDUCE opcodes import and call
// arbitrary Python; this reader interprets only the data-building opcodes a tensor state dict uses and hands every
// global to the caller's allowlist (`hooks.global`), which refuses anything it does not know. Nothing is ever
// imported or executed: "calls" (REDUCE) of allowed globals are answered by the caller with plain data.
import { UserError } from '../errors.js';

/** A Python tuple (arrays stand for lists). */
export class PTuple {
	constructor(readonly items: PValue[]) {}
}
/** A dict or OrderedDict: insertion-ordered, keys compared by value for strings and numbers. */
export class PDict {
	readonly map = new Map<unknown, PValue>();
}
/** A reference to an allowed global (e.g. collections.OrderedDict), never resolved to code. */
export class PGlobal {
	constructor(readonly module: string, readonly name: string) {}
	get full(): string {
		return `${this.module}.${this.name}`;
	}
}
/** A value the caller's hooks produced (tensor references, storages); opaque to the reader. */
export class PObject {
	constructor(readonly value: unknown) {}
}
export type PValue = null | boolean | number | bigint | string | Uint8Array | PValue[] | PTuple | PDict | PGlobal | PObject;

export interface PickleHooks {
	/** Allow or refuse a global (throw UserError to refuse). */
	global(module: string, name: string): PGlobal;
	/** Answer `callable(*args)` for an allowed global, with data. */
	reduce(callable: PValue, args: PTuple): PValue;
	/** Answer BUILD (object.__setstate__(state)); return the object. */
	build(obj: PValue, state: PValue): PValue;
	/** Answer a persistent id (torch: storage references). */
	persistentLoad(pid: PValue): PValue;
}

const MARK = Symbol('mark');
type Slot = PValue | typeof MARK;

/** Limits no state dict comes near: memo entries and stack depth. */
export const MAX_MEMO = 1 << 22;
const MAX_STACK = 1 << 22;

/** Run a pickle over `data` and return the value STOP leaves; `file` names the source in errors. */
export function unpickle(data: Uint8Array, hooks: PickleHooks, file: string): PValue {
	const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
	const utf8 = new TextDecoder('utf-8', { fatal: true });
	const stack: Slot[] = [];
	const memo = new Map<number, PValue>();
	let pos = 0;
	let opAt = 0; // start of the opcode being run, for error messages

	const fail = (why: string): never => {
		throw new UserError(`${file}: bad pickle at byte ${opAt}: ${why}`);
	};
	const need = (n: number): number => {
		if (n < 0 || pos + n > data.length) fail('truncated');
		const at = pos;
		pos += n;
		return at;
	};
	const u8 = (): number => data[need(1)];
	const u16 = (): number => view.getUint16(need(2), true);
	const u32 = (): number => view.getUint32(need(4), true);
	const u64 = (): number => {
		const v = view.getBigUint64(need(8), true);
		return v > BigInt(data.length) ? fail(`length ${v} is beyond the data`) : Number(v);
	};
	const str = (n: number): string => {
		const at = need(n);
		try {
			return utf8.decode(data.subarray(at, at + n));
		} catch {
			return fail('invalid UTF-8 string');
		}
	};
	const line = (): string => {
		const end = data.indexOf(0x0a, pos);
		if (end < 0 || end - pos > 256) fail('bad GLOBAL name');
		const s = String.fromCharCode(...data.subarray(pos, end));
		pos = end + 1;
		return s;
	};
	const pop = (): PValue => {
		const v = stack.pop();
		if (v === undefined || v === MARK) fail('stack underflow');
		return v as PValue;
	};
	const top = (): PValue => {
		const v = stack[stack.length - 1];
		if (v === undefined || v === MARK) fail('stack underflow');
		return v as PValue;
	};
	const popMark = (): PValue[] => {
		const at = stack.lastIndexOf(MARK);
		if (at < 0) fail('MARK missing');
		const items = stack.splice(at) as PValue[];
		items.shift();
		return items;
	};
	const put = (i: number): void => {
		// A state dict memoizes a few values per tensor; millions mean a hostile file (a Map stops at 2^24).
		if (memo.size >= MAX_MEMO && !memo.has(i)) fail(`more than ${MAX_MEMO} memo entries (not a state dict)`);
		memo.set(i, top());
	};
	const get = (i: number): void => {
		if (!memo.has(i)) fail(`memo ${i} missing`);
		stack.push(memo.get(i) as PValue);
	};
	const setItems = (dict: PValue, items: PValue[]): void => {
		if (!(dict instanceof PDict)) fail('SETITEM on a non-dict');
		if (items.length % 2) fail('odd number of dict items');
		for (let i = 0; i < items.length; i += 2) (dict as PDict).map.set(key(items[i]), items[i + 1]);
	};
	const key = (k: PValue): unknown => {
		if (typeof k === 'string' || typeof k === 'number' || typeof k === 'bigint' || typeof k === 'boolean' || k === null) return k;
		return fail('unsupported dict key type');
	};
	const append = (list: PValue, items: PValue[]): void => {
		if (!Array.isArray(list)) fail('APPEND on a non-list');
		for (const it of items) (list as PValue[]).push(it);
	};

	while (true) {
		opAt = pos;
		if (stack.length > MAX_STACK) fail(`stack deeper than ${MAX_STACK} values (not a state dict)`);
		const op = u8();
		switch (op) {
			case 0x80: { // PROTO
				const v = u8();
				if (v < 2 || v > 5) fail(`unsupported pickle protocol ${v}`);
				break;
			}
			case 0x95: u64(); break; // FRAME: a length hint only
			case 0x2e: { // STOP
				const v = pop();
				if (stack.length) fail('values left on the stack at STOP');
				return v;
			}
			case 0x28: stack.push(MARK); break; // MARK
			case 0x30: pop(); break; // POP
			case 0x31: popMark(); break; // POP_MARK
			case 0x32: stack.push(top()); break; // DUP
			case 0x4e: stack.push(null); break; // NONE
			case 0x88: stack.push(true); break; // NEWTRUE
			case 0x89: stack.push(false); break; // NEWFALSE
			case 0x4a: stack.push(view.getInt32(need(4), true)); break; // BININT
			case 0x4b: stack.push(u8()); break; // BININT1
			case 0x4d: stack.push(u16()); break; // BININT2
			case 0x8a: case 0x8b: { // LONG1, LONG4: little-endian two's complement
				const n = op === 0x8a ? u8() : u32();
				if (n > 64) fail(`integer of ${n} bytes is absurd`);
				const at = need(n);
				let v = 0n;
				for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(data[at + i]);
				if (n && data[at + n - 1] & 0x80) v -= 1n << BigInt(8 * n);
				stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
				break;
			}
			case 0x47: stack.push(view.getFloat64(need(8), false)); break; // BINFLOAT (big-endian)
			case 0x58: stack.push(str(u32())); break; // BINUNICODE
			case 0x8c: stack.push(str(u8())); break; // SHORT_BINUNICODE
			case 0x8d: stack.push(str(u64())); break; // BINUNICODE8
			case 0x54: case 0x55: { // BINSTRING, SHORT_BINSTRING (Python 2 str): latin-1
				const n = op === 0x54 ? u32() : u8();
				const at = need(n);
				let s = '';
				for (let i = at; i < at + n; i++) s += String.fromCharCode(data[i]);
				stack.push(s);
				break;
			}
			case 0x42: case 0x43: { // BINBYTES, SHORT_BINBYTES
				const n = op === 0x42 ? u32() : u8();
				const at = need(n);
				stack.push(data.slice(at, at + n));
				break;
			}
			case 0x29: stack.push(new PTuple([])); break; // EMPTY_TUPLE
			case 0x74: stack.push(new PTuple(popMark())); break; // TUPLE
			case 0x85: stack.push(new PTuple([pop()])); break; // TUPLE1
			case 0x86: { const b = pop(); const a = pop(); stack.push(new PTuple([a, b])); break; } // TUPLE2
			case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push(new PTuple([a, b, c])); break; } // TUPLE3
			case 0x5d: stack.push([]); break; // EMPTY_LIST
			case 0x6c: stack.push(popMark()); break; // LIST
			case 0x61: { const v = pop(); append(top(), [v]); break; } // APPEND
			case 0x65: { const items = popMark(); append(top(), items); break; } // APPENDS
			case 0x7d: stack.push(new PDict()); break; // EMPTY_DICT
			case 0x64: { const d = new PDict(); setItems(d, popMark()); stack.push(d); break; } // DICT
			case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
			case 0x75: { const items = popMark(); setItems(top(), items); break; } // SETITEMS
			case 0x63: { const mod = line(); const name = line(); stack.push(hooks.global(mod, name)); break; } // GLOBAL
			case 0x93: { // STACK_GLOBAL
				const name = pop();
				const mod = pop();
				if (typeof mod !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
				stack.push(hooks.global(mod as string, name as string));
				break;
			}
			case 0x52: { // REDUCE
				const args = pop();
				const fn = pop();
				if (!(args instanceof PTuple)) fail('REDUCE arguments are not a tuple');
				stack.push(hooks.reduce(fn, args as PTuple));
				break;
			}
			case 0x62: { const state = pop(); const obj = pop(); stack.push(hooks.build(obj, state)); break; } // BUILD
			case 0x51: stack.push(hooks.persistentLoad(pop())); break; // BINPERSID
			case 0x71: put(u8()); break; // BINPUT
			case 0x72: put(u32()); break; // LONG_BINPUT
			case 0x94: put(memo.size); break; // MEMOIZE
			case 0x68: get(u8()); break; // BINGET
			case 0x6a: get(u32()); break; // LONG_BINGET
			default:
				fail(`unsupported opcode 0x${op.toString(16).padStart(2, '0')} (only tensor state dicts are allowed)`);
		}
	}
}
