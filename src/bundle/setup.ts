/**
 * The install step that runs after install.sh has unpacked the bundle, with the bundled Node:
 * finds the CUDA libraries on this machine, builds the CUDA op library where nvcc exists, and writes
 * <dir>/env.sh and the <dir>/bin/lory wrapper.
 *   node <dir>/lory/dist/src/bundle/setup.js --root <dir> [--install-dir <final dir>] [--no-cuda-build]
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { InputError } from '../artifacts/errors.js';
import { cudaToolkitLibDirs, findLibrariesHere, parseLdconfig, type FoundLibraries } from './cuda-libs.js';
import { writeAtomic } from './parts.js';

export const BUNDLE_INFO_FILE = 'bundle.json';

/** What the builder records inside the payload for this step. */
export interface BundleInfo {
  /** Sonames libonnxruntime_providers_cuda.so links (from its DT_NEEDED entries). */
  cudaRequired: string[];
  /** Sonames it opens at run time when present (cuDNN) and those multi-GPU work wants (NCCL). */
  cudaOptional: string[];
  /** Libraries shipped in lib/ for machines without them (FAISS's OpenBLAS and its runtime). */
  fallbackLibraries: string[];
  [key: string]: unknown;
}

export interface Layout {
  node: string;
  ortLibrary: string;
  ortLibDir: string;
  ortInclude: string;
  lory: string;
  fallbackLibDir: string;
}

export function layout(dir: string): Layout {
  return {
    node: join(dir, 'node', 'bin', 'node'),
    ortLibrary: join(dir, 'ort', 'lib', 'libonnxruntime.so'),
    ortLibDir: join(dir, 'ort', 'lib'),
    ortInclude: join(dir, 'ort', 'include'),
    lory: join(dir, 'lory'),
    fallbackLibDir: join(dir, 'lib'),
  };
}

/** Shell single-quoting; the paths come from the user's install folder. */
function q(text: string): string {
  if (text.includes("'") || text.includes('\n')) throw new InputError(`install folder path must not contain quotes or newlines: ${text}`);
  return `'${text}'`;
}

/** env.sh: LD_LIBRARY_PATH (bundled ORT, then the CUDA folders found), LORY_ORT_LIBRARY, PATH. */
export function envScript(dir: string, libraryPath: readonly string[]): string {
  const l = layout(dir);
  const ld = [l.ortLibDir, ...libraryPath].join(':');
  return [
    '# Written by the lory bundle installer; `source` it to run lory with the bundled Node.js and ONNX Runtime.',
    `export LORY_BUNDLE_HOME=${q(dir)}`,
    `export LORY_ORT_LIBRARY=${q(l.ortLibrary)}`,
    `export LD_LIBRARY_PATH=${q(ld)}"\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"`,
    `export PATH=${q(`${join(dir, 'bin')}:${join(dir, 'node', 'bin')}`)}"\${PATH:+:\$PATH}"`,
    '',
  ].join('\n');
}

/** bin/lory: the environment, then lory's own entry point under the bundled Node. */
export function wrapperScript(dir: string): string {
  const l = layout(dir);
  return ['#!/bin/sh', `. ${q(join(dir, 'env.sh'))}`, `exec ${q(l.node)} ${q(join(l.lory, 'bin', 'lory'))} "$@"`, ''].join('\n');
}

/** bin/gpu-check: the environment (PATH gets the bundled Node), then lory's GPU check script. */
export function gpuCheckWrapperScript(dir: string): string {
  return ['#!/bin/sh', `. ${q(join(dir, 'env.sh'))}`, `exec ${q(join(layout(dir).lory, 'bin', 'gpu-check'))} "$@"`, ''].join('\n');
}

/** nvcc on PATH, else the newest /usr/local/cuda*\/bin/nvcc. */
export function findNvcc(): string | undefined {
  const which = spawnSync('sh', ['-c', 'command -v nvcc'], { encoding: 'utf8' });
  if (which.status === 0 && which.stdout.trim()) return which.stdout.trim();
  for (const lib of cudaToolkitLibDirs()) {
    const nvcc = resolve(lib, '..', 'bin', 'nvcc');
    if (existsSync(nvcc)) return nvcc;
  }
  return undefined;
}

function lastLines(text: string, n: number): string {
  return text.trimEnd().split('\n').slice(-n).join('\n');
}

/** Builds liblory_ops_cuda.so as kernels/build.mjs does, against the bundled ORT headers. */
export function buildCudaOps(dir: string, nvcc: string): { ok: boolean; detail: string } {
  const l = layout(dir);
  const build = join(l.lory, 'kernels', 'build', 'lory-ops');
  const steps: string[][] = [
    ['-S', join(l.lory, 'kernels', 'lory-ops'), '-B', build, '-DCMAKE_BUILD_TYPE=Release', `-DORT_INCLUDE_DIR=${l.ortInclude}`, `-DLORY_NVCC=${nvcc}`],
    ['--build', build, '-j4'],
  ];
  for (const args of steps) {
    const r = spawnSync('cmake', args, { encoding: 'utf8' });
    if (r.error) return { ok: false, detail: `cmake not found (${r.error.message}): install cmake ≥ 3.22 and g++, then rerun this step` };
    if (r.status !== 0) return { ok: false, detail: `cmake ${args.join(' ')} failed:\n${lastLines((r.stdout ?? '') + (r.stderr ?? ''), 30)}` };
  }
  const lib = join(build, 'liblory_ops_cuda.so');
  return existsSync(lib) ? { ok: true, detail: lib } : { ok: false, detail: `cmake ran but ${lib} was not built (CUDA runtime headers not found?)` };
}

/** Folders of fallback libraries to add: only when this machine's loader lacks one of them. */
export function fallbackPath(dir: string, info: BundleInfo, ldconfig: ReadonlyMap<string, string>): string[] {
  const lacking = info.fallbackLibraries.filter((so) => !ldconfig.has(so));
  return lacking.length > 0 ? [layout(dir).fallbackLibDir] : [];
}

export interface SetupReport {
  libraries: FoundLibraries;
  cudaBuild: { ok: boolean; detail: string } | 'skipped' | 'no nvcc';
  envFile: string;
  wrapper: string;
}

/**
 * Runs the install step in `root` (where the bundle is unpacked now), writing paths for
 * `installDir` (where it will live: install.sh unpacks into a temp folder and renames at the end).
 */
export function setup(root: string, installDir: string, options: { cudaBuild: boolean }): SetupReport {
  const infoPath = join(root, BUNDLE_INFO_FILE);
  if (!existsSync(infoPath)) throw new InputError(`${infoPath} not found: --root must be an unpacked lory bundle`);
  const info = JSON.parse(readFileSync(infoPath, 'utf8')) as BundleInfo;
  const libraries = findLibrariesHere([...info.cudaRequired, ...info.cudaOptional]);
  const nvcc = options.cudaBuild ? findNvcc() : undefined;
  const built = nvcc ? buildCudaOps(root, nvcc) : undefined;
  // Report the library where it will live, not in install.sh's temp folder.
  const cudaBuild = !options.cudaBuild ? 'skipped' : built ? { ...built, detail: built.detail.split(root).join(installDir) } : 'no nvcc';
  const ldconfig = parseLdconfig(spawnSync('sh', ['-c', 'ldconfig -p 2>/dev/null || /sbin/ldconfig -p'], { encoding: 'utf8' }).stdout ?? '');
  const libraryPath = [...libraries.libraryPath, ...fallbackPath(installDir, info, ldconfig)];
  mkdirSync(join(root, 'bin'), { recursive: true });
  const envFile = join(root, 'env.sh');
  const wrapper = join(root, 'bin', 'lory');
  writeAtomic(envFile, envScript(installDir, libraryPath));
  writeAtomic(wrapper, wrapperScript(installDir));
  chmodSync(wrapper, 0o755);
  const gpuCheck = join(root, 'bin', 'gpu-check');
  writeAtomic(gpuCheck, gpuCheckWrapperScript(installDir));
  chmodSync(gpuCheck, 0o755);
  return { libraries, cudaBuild, envFile, wrapper };
}

export function formatSetup(report: SetupReport, info: Pick<BundleInfo, 'cudaRequired'>): string {
  const lines = ['CUDA libraries (for the ONNX Runtime CUDA provider):'];
  for (const [so, hit] of Object.entries(report.libraries.found)) lines.push(`  ${so.padEnd(22)} ${hit.path} (${hit.source})`);
  for (const so of report.libraries.missing) {
    lines.push(`  ${so.padEnd(22)} NOT FOUND${info.cudaRequired.includes(so) ? ' (required: the CUDA provider will not load)' : ' (optional)'}`);
  }
  const b = report.cudaBuild;
  lines.push(
    `CUDA op library: ${b === 'skipped' ? 'build skipped (--no-cuda-build)' : b === 'no nvcc' ? 'not built: no nvcc on PATH or in /usr/local/cuda*/bin (CPU ops only)' : b.ok ? `built (${b.detail})` : `NOT BUILT: ${b.detail}`}`,
  );
  return lines.join('\n');
}

function parseArgs(argv: string[]): { root: string; installDir: string; cudaBuild: boolean } {
  let root: string | undefined;
  let installDir: string | undefined;
  let cudaBuild = true;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--root' || a === '--install-dir') {
      const v = argv[++i];
      if (!v) throw new InputError(`${a}: expected a folder`);
      if (a === '--root') root = resolve(v);
      else installDir = resolve(v);
    } else if (a === '--no-cuda-build') cudaBuild = false;
    else throw new InputError(`unknown option ${a} (known: --root DIR, --install-dir DIR, --no-cuda-build)`);
  }
  if (!root) throw new InputError('--root DIR is required (the unpacked bundle)');
  return { root, installDir: installDir ?? root, cudaBuild };
}

export function main(argv: string[]): number {
  try {
    const args = parseArgs(argv);
    const report = setup(args.root, args.installDir, { cudaBuild: args.cudaBuild });
    const info = JSON.parse(readFileSync(join(args.root, BUNDLE_INFO_FILE), 'utf8')) as BundleInfo;
    process.stdout.write(`${formatSetup(report, info)}\n`);
    return 0;
  } catch (error) {
    if (error instanceof InputError) {
      process.stderr.write(`lory bundle setup: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) process.exitCode = main(process.argv.slice(2));
