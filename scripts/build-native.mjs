#!/usr/bin/env node
// Builds lory's native parts; run by `npm ci`/`npm install` (the package's install script).
//   1. kernels/runtime: the N-API addon over ONNX Runtime (node-gyp, required).
//   2. kernels/test-ops: the small custom-op library the runtime tests register (required).
// Headers for ORT come from the com.github.asus4.onnxruntime package; nothing third-party is vendored.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));

export const ortIncludeDir = join(
  root,
  'node_modules/com.github.asus4.onnxruntime/Plugins/iOS~/onnxruntime.xcframework/ios-arm64/onnxruntime.framework/Headers',
);

function step(name, fn) {
  const start = Date.now();
  process.stdout.write(`lory: building ${name} ... `);
  fn();
  process.stdout.write(`done (${((Date.now() - start) / 1000).toFixed(1)} s)\n`);
}

// Quiet on success; on failure print the tool's whole output, then stop the install.
function run(cmd, args, options = {}) {
  try {
    execFileSync(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], ...options });
  } catch (error) {
    process.stdout.write('FAILED\n');
    process.stderr.write(String(error.stdout ?? '') + String(error.stderr ?? ''));
    console.error(`lory: native build failed: ${cmd} ${args.join(' ')}`);
    process.exit(1);
  }
}

function nodeGyp() {
  // npm passes its bundled node-gyp to install scripts; fall back to the one beside npm.
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp)) return process.env.npm_config_node_gyp;
  const npmDir = dirname(dirname(require.resolve('npm/package.json', { paths: [dirname(process.execPath) + '/../lib/node_modules'] })));
  return join(npmDir, 'npm/node_modules/node-gyp/bin/node-gyp.js');
}

if (!existsSync(join(ortIncludeDir, 'onnxruntime_c_api.h'))) {
  console.error(`lory: ONNX Runtime headers not found at ${ortIncludeDir}; run npm ci first`);
  process.exit(1);
}

const only = process.argv.slice(2);
const wanted = (name) => only.length === 0 || only.includes(name);

// Build against the installed Node headers (this machine's npm sets nodedir=/usr); node-gyp would
// otherwise try to download them, and there is no network for that.
function nodedirArgs() {
  const dir = process.env.npm_config_nodedir || (existsSync('/usr/include/node/node_api.h') ? '/usr' : '');
  return dir ? [`--nodedir=${dir}`] : [];
}

if (wanted('runtime')) {
  step('runtime addon (kernels/runtime)', () =>
    run(process.execPath, [nodeGyp(), 'rebuild', '--directory', 'kernels/runtime', ...nodedirArgs(), `--ort_include_dir=${ortIncludeDir}`]),
  );
}
if (wanted('test-ops')) {
  step('test custom-op library (kernels/test-ops)', () =>
    run('make', ['-C', 'kernels/test-ops', `ORT_INCLUDE_DIR=${ortIncludeDir}`, '--no-print-directory', '-s']),
  );
}
