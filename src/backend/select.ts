// Choosing a backend. `auto` tries the accelerated ones and keeps the first that actually works, saying why each
// other one was skipped (printed under --verbose): webgpu (Dawn, the npm `webgpu` package) needs a GPU adapter and a
// libstdc++ with GLIBCXX_3.4.32; native (C kernels, src/backend/native.ts) needs the optional addon that the install
// step builds with node-gyp when a C compiler is present; headlessgl needs the optional `gl` package, which does not
// build without X11 headers. Without any of them `auto` lands on gpu.js's `cpu` backend, which is faster than
// `webasm` on CPUs: webasm's SIMD path gathers lane by lane and calls Math.exp through JS (docs/backends.md).
import { createRequire } from 'node:module';
import { UsageError, UserError } from '../errors.js';
import { GpuJsKernels } from './gpujs.js';
import { NativeKernels } from './native.js';
import { BACKEND_CHOICES, type BackendChoice, type Kernels } from './types.js';

interface Selected {
	kernels: Kernels;
	notes: string[]; // one line per backend tried and skipped
}

const firstLine = (e: unknown) => String(e instanceof Error ? e.message : e).split('\n')[0];

/** Load Dawn and expose navigator.gpu; resolves when an adapter answers, else throws why not. */
async function enableWebGPU(): Promise<void> {
	const g = globalThis as { navigator?: { gpu?: unknown } };
	if (!g.navigator?.gpu) {
		const dawn = (await import('webgpu')) as { create: (flags: string[]) => unknown; globals: object };
		Object.assign(globalThis, dawn.globals);
		const gpu = dawn.create([]) as { requestAdapter: () => Promise<unknown> };
		Object.defineProperty(globalThis, 'navigator', { value: { ...(g.navigator ?? {}), gpu }, configurable: true });
	}
	const gpu = (globalThis as unknown as { navigator: { gpu: GpuLike } }).navigator.gpu;
	const adapter = await gpu.requestAdapter();
	if (!adapter) throw new Error('no WebGPU adapter');
	// gpu.js assigns device.onuncapturederror, which Dawn's binding rejects ("object is not of the correct
	// interface type") unless the device has its own writable property first (docs/backends.md).
	const request = gpu.requestAdapter.bind(gpu);
	gpu.requestAdapter = async (...a: unknown[]) => {
		const ad = (await request(...a)) as AdapterLike | null;
		if (!ad) return ad;
		const requestDevice = ad.requestDevice.bind(ad);
		ad.requestDevice = async (...b: unknown[]) => {
			const device = await requestDevice(...b);
			Object.defineProperty(device, 'onuncapturederror', { value: null, writable: true, configurable: true });
			return device;
		};
		return ad;
	};
}
interface GpuLike { requestAdapter: (...a: unknown[]) => Promise<unknown> }
interface AdapterLike { requestDevice: (...a: unknown[]) => Promise<object> }

async function tryBackend(name: Exclude<BackendChoice, 'auto'>): Promise<Kernels> {
	if (name === 'webgpu') await enableWebGPU();
	if (name === 'headlessgl') createRequire(import.meta.url)('gl');
	const kernels = name === 'native' ? NativeKernels.create() : GpuJsKernels.create(name);
	// A tiny projection proves the backend compiles and runs kernels here, not just that it loads.
	const y = await kernels.linear({ data: Float32Array.of(1, 2, 3, 4), rows: 1, cols: 4 }, Float32Array.of(1, 1, 1, 1), 1);
	if (Math.abs(y[0] - 10) > 1e-4) throw new Error(`self-test gave ${y[0]}, expected 10`);
	return kernels;
}

export async function selectBackend(choice: BackendChoice): Promise<Selected> {
	if (choice !== 'auto') {
		try {
			return { kernels: await tryBackend(choice), notes: [] };
		} catch (e) {
			throw new UserError(`backend ${choice} is not available here: ${firstLine(e)}`);
		}
	}
	const notes: string[] = [];
	for (const name of ['webgpu', 'native', 'headlessgl'] as const) {
		try {
			return { kernels: await tryBackend(name), notes };
		} catch (e) {
			notes.push(`backend ${name} skipped: ${firstLine(e)}`);
		}
	}
	notes.push('backend webasm skipped: slower than cpu on CPUs (Math.exp is a JS call per lane); pass --backend webasm to use it');
	return { kernels: await tryBackend('cpu'), notes };
}

export function parseBackend(value: string): BackendChoice {
	const choices: readonly string[] = BACKEND_CHOICES;
	if (!choices.includes(value)) throw new UsageError(`--backend ${value}: expected one of ${choices.join(', ')}`);
	return value as BackendChoice;
}
