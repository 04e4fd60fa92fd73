#!/usr/bin/env node
// Builds lory's native parts; run by `npm ci`/`npm install` (the package's install script) and by
// bin/setup. Usage: node kernels/build.mjs [--if-stale] [part ...]
//   runtime   kernels/runtime: the N-API addon over ONNX Runtime (node-gyp)
//   test-ops  kernels/test-ops: the small custom-op library the runtime tests register (make)
//   lory-ops  kernels/lory-ops (+ kernels/cuda): the merged-expert FFN custom ops, their native tests
//             and benchmark (cmake); the CUDA library only where nvcc exists
//   faiss     kernels/faiss: the N-API binding over FAISS (Debian libfaiss-dev + OpenBLAS; node-gyp)
//   mpi       kernels/mpi: the N-API binding over MPI (Debian libopenmpi-dev; node-gyp)
// ORT headers come from the com.github.asus4.onnxruntime package; nothing third-party is vendored.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export const ortIncludeDir = join(
  root,
  'node_modules/com.github.asus4.onnxruntime/Plugins/iOS~/onnxruntime.xcframework/ios-arm64/onnxruntime.framework/Headers',
);

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
  // npm passes its bundled node-gyp to install scripts; otherwise use the one inside npm itself.
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp)) return process.env.npm_config_node_gyp;
  const beside = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (existsSync(beside)) return beside;
  console.error('lory: cannot find node-gyp (it ships with npm); run the build through `npm ci`');
  process.exit(1);
}

// Build against the installed Node headers (npm here sets nodedir=/usr); node-gyp would otherwise
// download them, and there may be no network for that.
function nodedirArgs() {
  const dir = process.env.npm_config_nodedir || (existsSync('/usr/include/node/node_api.h') ? '/usr' : '');
  return dir ? [`--nodedir=${dir}`] : [];
}

function newestMtime(path) {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = 0;
  for (const name of readdirSync(path)) {
    if (name === 'build') continue;
    newest = Math.max(newest, newestMtime(join(path, name)));
  }
  return newest;
}

const parts = [
  {
    name: 'runtime',
    what: 'runtime addon (kernels/runtime)',
    sources: ['kernels/runtime'],
    output: 'kernels/runtime/build/Release/lory_runtime.node',
    build: () => run(process.execPath, [nodeGyp(), 'rebuild', '--directory', 'kernels/runtime', ...nodedirArgs(), `--ort_include_dir=${ortIncludeDir}`]),
  },
  {
    name: 'test-ops',
    what: 'test custom-op library (kernels/test-ops)',
    sources: ['kernels/test-ops'],
    output: 'kernels/build/test-ops/liblory_test_ops.so',
    build: () => run('make', ['-B', '-C', 'kernels/test-ops', `ORT_INCLUDE_DIR=${ortIncludeDir}`, '--no-print-directory', '-s']),
  },
  {
    name: 'lory-ops',
    what: 'merged-expert FFN ops (kernels/lory-ops, kernels/cuda)',
    sources: ['kernels/lory-ops', 'kernels/cuda'],
    output: 'kernels/build/lory-ops/liblory_ops.so',
    build: () => {
      run('cmake', ['-S', 'kernels/lory-ops', '-B', 'kernels/build/lory-ops', '-DCMAKE_BUILD_TYPE=Release', `-DORT_INCLUDE_DIR=${ortIncludeDir}`]);
      run('cmake', ['--build', 'kernels/build/lory-ops', '-j2']);
    },
  },
  {
    name: 'faiss',
    what: 'FAISS binding (kernels/faiss)',
    sources: ['kernels/faiss'],
    output: 'kernels/faiss/build/Release/lory_faiss.node',
    check: () =>
      existsSync('/usr/include/faiss/Index.h') ? undefined : 'FAISS headers not found (/usr/include/faiss): install libfaiss-dev and libopenblas-openmp-dev (bin/setup does)',
    build: () => run(process.execPath, [nodeGyp(), 'rebuild', '--directory', 'kernels/faiss', ...nodedirArgs()]),
  },
  {
    name: 'mpi',
    what: 'MPI binding (kernels/mpi)',
    sources: ['kernels/mpi'],
    output: 'kernels/mpi/build/Release/lory_mpi.node',
    check: () => (hasMpicc() ? undefined : 'Open MPI not found (mpicc): install libopenmpi-dev and openmpi-bin (bin/setup does)'),
    build: () => run(process.execPath, [nodeGyp(), 'rebuild', '--directory', 'kernels/mpi', ...nodedirArgs()]),
  },
];

function hasMpicc() {
  try {
    execFileSync('mpicc', ['--showme:version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const args = process.argv.slice(2);
const ifStale = args.includes('--if-stale');
const only = args.filter((a) => !a.startsWith('--'));
for (const name of only) {
  if (!parts.some((p) => p.name === name)) {
    console.error(`lory: unknown native part '${name}'; parts: ${parts.map((p) => p.name).join(', ')}`);
    process.exit(2);
  }
}
if (!existsSync(join(ortIncludeDir, 'onnxruntime_c_api.h'))) {
  console.error(`lory: ONNX Runtime headers not found at ${ortIncludeDir}; run npm ci first`);
  process.exit(1);
}

for (const part of parts) {
  if (only.length > 0 && !only.includes(part.name)) continue;
  const output = join(root, part.output);
  if (ifStale && existsSync(output)) {
    const sourceTime = Math.max(...part.sources.map((s) => newestMtime(join(root, s))));
    if (sourceTime <= statSync(output).mtimeMs) continue;
  }
  const missing = part.check?.();
  if (missing) {
    console.error(`lory: cannot build the ${part.what}: ${missing}`);
    process.exit(1);
  }
  const start = Date.now();
  process.stdout.write(`lory: building ${part.what} ... `);
  part.build();
  process.stdout.write(`done (${((Date.now() - start) / 1000).toFixed(1)} s)\n`);
}
