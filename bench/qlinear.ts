// CPU time of one fused forward of T tokens (native/src/step.c: every layer's quantized projections, the conv, the
// scan, the head) as speculative decoding runs it: `model.verify(tokens, state)` then `keep(0)`, so the state never
// moves and every repetition does the same work. The T values are interleaved round by round (the machine is
// shared: neighbouring rounds see the same load) and timed with process.cpuUsage (user + system of all threads,
// so run it with MAMBABYTE_THREADS=1 for one thread's cost). Prints per T the median ms per forward over the rounds
// (min, max), and the marginal ms per token against T = 1 ((ms(T) − ms(1)) / (T − 1)).
//   MAMBABYTE_THREADS=1 node dist/bench/qlinear.js [--model DIR] [--T 1,2,4,...] [--rounds R] [--ms M] [--isa I]
//                                                  [--json FILE]
// --ms: CPU milliseconds each (round, T) measurement lasts at least (default 20: cpuUsage counts microseconds).
// --json FILE: also writes {label, isa, T: {T: median ms}} there, for comparing builds run one after the other.
import { writeFileSync } from 'node:fs';
import { NativeKernels } from '../src/backend/native.js';
import { loadModel } from '../src/checkpoint/index.js';
import { Mamba } from '../src/model/mamba.js';

const args = process.argv.slice(2);
const opt = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const modelDir = opt('--model') ?? 'checkpoints/byte-model';
const Ts = (opt('--T') ?? '1,2,4,6,8,12,16,64').split(',').map(Number);
const rounds = Number(opt('--rounds') ?? 15), minMs = Number(opt('--ms') ?? 20), isa = opt('--isa'), json = opt('--json');
const fail = (msg: string): never => {
	console.error(`bench/qlinear: ${msg}`);
	process.exit(1);
};
for (const T of Ts) if (!(Number.isInteger(T) && T >= 1 && T <= 64)) fail(`--T: ${T} is not a whole number in 1..64`);
if (!(Number.isInteger(rounds) && rounds >= 1 && minMs > 0)) fail('--rounds must be a whole number >= 1 and --ms positive');

const setup = () => {
	try {
		const k = NativeKernels.create(isa ? { isa } : {});
		return { kernels: k, model: new Mamba(loadModel(modelDir), k) };
	} catch (e) {
		return fail(e instanceof Error ? e.message : String(e));
	}
};
const { kernels, model } = setup();
const V = model.config.vocabSize;
const text = Array.from(new TextEncoder().encode('It was a dark and stormy night; the rain fell in torrents, except at occasional intervals. '));
const tokens = (T: number) => Array.from({ length: T }, (_, i) => text[i % text.length] % V);
const state = model.newState();
await model.forward(tokens(16), state); // a state that has seen text

const cpuMs = () => {
	const u = process.cpuUsage();
	return (u.user + u.system) / 1000;
};

/** CPU ms per forward of T tokens: repeats until minMs of CPU time has passed. */
async function measure(T: number): Promise<number> {
	const toks = tokens(T);
	let n = 0;
	const c0 = cpuMs();
	let c = c0;
	do {
		const v = await model.verify(toks, state);
		await v.keep(0);
		n++;
		c = cpuMs();
	} while (c - c0 < minMs);
	return (c - c0) / n;
}

const samples = new Map<number, number[]>(Ts.map((T) => [T, []]));
for (const T of Ts) await measure(T); // warm-up: page in, size the native buffers
for (let r = 0; r < rounds; r++) for (const T of Ts) samples.get(T)!.push(await measure(T));

const median = (xs: number[]) => {
	const s = [...xs].sort((a, b) => a - b);
	return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const info = kernels.info;
console.log(`${modelDir}: isa ${info.isa}, ${info.threads} thread(s), ${rounds} rounds of >= ${minMs} CPU ms each`);
console.log('    T   ms/forward   (min .. max)      ms/token   marginal ms/token vs T=1');
const med = new Map(Ts.map((T) => [T, median(samples.get(T)!)]));
const one = med.get(1);
for (const T of Ts) {
	const xs = samples.get(T)!, m = med.get(T)!;
	const marginal = one !== undefined && T > 1 ? ((m - one) / (T - 1)).toFixed(3) : '';
	console.log(`${String(T).padStart(5)} ${m.toFixed(3).padStart(12)}   (${Math.min(...xs).toFixed(3)} .. ${Math.max(...xs).toFixed(3)})   ${(m / T).toFixed(3).padStart(8)}   ${marginal.padStart(8)}`);
}
if (json) writeFileSync(json, JSON.stringify({ model: modelDir, isa: info.isa, threads: info.threads, ms: Object.fromEntries(med) }) + '\n');
