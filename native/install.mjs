// npm's install hook: build the optional native CPU backend (native/binding.gyp) with node-gyp.
// The install never fails because of it: without a C compiler, Python or Node headers the package still works
// through gpu.js. A failed build prints one line saying that the native backend was skipped, why (the first error
// line of the build), and where the full log is; `npm run build:native` rebuilds it with the whole output shown.
// MAMBABYTE_SKIP_NATIVE=1 skips the build.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const say = (msg) => process.stderr.write(`mambabyte: ${msg}\n`);
const skipped = (why) => say(`native CPU backend skipped: ${why}; the gpu.js backends still work`);

/** The most telling line of a failed build. */
function reason(output, status) {
	const lines = output.split('\n').map((l) => l.trim()).filter(Boolean);
	const pick = (re) => lines.find((l) => re.test(l));
	const python = pick(/gyp ERR! find Python/);
	if (python) return 'node-gyp found no usable Python';
	const compiler = pick(/(^|\s)(fatal )?error:|: not found$|No such file or directory|command not found/);
	if (compiler) return compiler.replace(/^gyp ERR! /, '');
	const stack = pick(/gyp ERR! stack Error:/);
	if (stack) return stack.replace(/^gyp ERR! stack /, '');
	return `node-gyp exited with status ${status}`;
}

if (process.env.MAMBABYTE_SKIP_NATIVE) {
	skipped('MAMBABYTE_SKIP_NATIVE is set');
} else if (process.platform === 'win32') {
	skipped('not supported on Windows yet (it needs pthreads)');
} else {
	// npm runs install scripts with npm_config_node_gyp pointing at its own bundled node-gyp.
	const gyp = process.env.npm_config_node_gyp;
	const [cmd, args] = gyp ? [process.execPath, [gyp, 'rebuild']] : ['node-gyp', ['rebuild']];
	const r = spawnSync(cmd, args, { cwd: here, encoding: 'utf8', maxBuffer: 64 << 20 });
	const output = `$ ${[cmd, ...args].join(' ')}\n${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) + '\n' : ''}`;
	try {
		writeFileSync(join(here, 'build.log'), output);
	} catch {
		// a read-only install folder: the one-line reason below is all there is
	}
	if (r.error) skipped(`could not run node-gyp (${r.error.code ?? r.error.message}); full log: native/build.log`);
	else if (r.status !== 0) skipped(`${reason(output, r.status)} (full log: native/build.log)`);
	else say('native CPU backend built (native/build/Release/mambabyte.node)');
}
