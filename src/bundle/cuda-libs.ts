/**
 * Finds the CUDA libraries ONNX Runtime's CUDA provider needs on a machine that already has them:
 * the bundle ships none (cuBLAS, cuRAND, cuDNN, NCCL are large and the GPU machine has its own,
 * from the CUDA toolkit or from a Python installation such as PyTorch's nvidia/* packages).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** Where each directory came from, in the order they are searched. */
export type LibrarySource = 'LD_LIBRARY_PATH' | 'system' | 'cuda-toolkit' | 'python';

export interface SearchDir {
  dir: string;
  source: LibrarySource;
}

export interface FoundLibraries {
  /** soname → the file that provides it. */
  found: Record<string, { path: string; source: LibrarySource }>;
  missing: string[];
  /** Directories that must go on LD_LIBRARY_PATH (those the dynamic loader would not search itself). */
  libraryPath: string[];
}

/** `ldconfig -p` output → soname → path, x86-64 entries only (the cache also lists 32-bit copies). */
export function parseLdconfig(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\s*(\S+)\s+\(([^)]*)\)\s+=>\s+(\S+)\s*$/.exec(line);
    if (!m || !m[2]!.includes('x86-64')) continue;
    if (!out.has(m[1]!)) out.set(m[1]!, m[3]!);
  }
  return out;
}

function subdirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory() || e.isSymbolicLink())
      .map((e) => e.name)
      .sort();
  } catch {
    return [];
  }
}

/** /usr/local/cuda*\/lib64 and …/targets/x86_64-linux/lib; the unversioned `cuda` link first. */
export function cudaToolkitLibDirs(prefix = '/usr/local'): string[] {
  const roots = subdirs(prefix)
    .filter((n) => n === 'cuda' || n.startsWith('cuda-'))
    .sort((a, b) => (a === 'cuda' ? -1 : b === 'cuda' ? 1 : b.localeCompare(a, undefined, { numeric: true })));
  return roots.flatMap((r) => [join(prefix, r, 'lib64'), join(prefix, r, 'targets', 'x86_64-linux', 'lib')]).filter((d) => existsSync(d));
}

/** <site-packages>/nvidia/*\/lib: the layout of the pip wheels PyTorch pulls in (cublas, cudnn, nccl, cu13, …). */
export function pythonNvidiaLibDirs(sitePackages: readonly string[]): string[] {
  return sitePackages.flatMap((sp) => subdirs(join(sp, 'nvidia')).map((n) => join(sp, 'nvidia', n, 'lib'))).filter((d) => existsSync(d));
}

/** The site-packages folders of python3 (system and user), or none when there is no python3. */
export function pythonSitePackages(python = 'python3'): string[] {
  const code = 'import site,sys\nprint("\\n".join(site.getsitepackages()+[site.getusersitepackages()]+sys.path))';
  const r = spawnSync(python, ['-c', code], { encoding: 'utf8' });
  if (r.status !== 0 || !r.stdout) return [];
  return [...new Set(r.stdout.split('\n').filter((p) => p.endsWith('-packages')))];
}

/**
 * Looks each soname up: LD_LIBRARY_PATH first (what the loader itself tries first), then the
 * system's loader cache, then the CUDA toolkit, then Python's nvidia packages.
 */
export function findLibraries(
  sonames: readonly string[],
  options: { ldLibraryPath: readonly string[]; ldconfig: ReadonlyMap<string, string>; cudaDirs: readonly string[]; pythonDirs: readonly string[] },
): FoundLibraries {
  const dirs: SearchDir[] = [
    ...options.ldLibraryPath.filter((d) => d !== '').map((dir) => ({ dir, source: 'LD_LIBRARY_PATH' as const })),
    ...options.cudaDirs.map((dir) => ({ dir, source: 'cuda-toolkit' as const })),
    ...options.pythonDirs.map((dir) => ({ dir, source: 'python' as const })),
  ];
  const result: FoundLibraries = { found: {}, missing: [], libraryPath: [] };
  for (const soname of sonames) {
    const hit = lookup(soname, dirs, options.ldconfig);
    if (!hit) {
      result.missing.push(soname);
      continue;
    }
    result.found[soname] = hit;
    const dir = dirname(hit.path);
    if (hit.source !== 'system' && !result.libraryPath.includes(dir)) result.libraryPath.push(dir);
  }
  return result;
}

function lookup(soname: string, dirs: readonly SearchDir[], ldconfig: ReadonlyMap<string, string>): { path: string; source: LibrarySource } | undefined {
  const first = dirs.filter((d) => d.source === 'LD_LIBRARY_PATH');
  const rest = dirs.filter((d) => d.source !== 'LD_LIBRARY_PATH');
  for (const d of first) if (existsSync(join(d.dir, soname))) return { path: join(d.dir, soname), source: d.source };
  const system = ldconfig.get(soname);
  if (system) return { path: system, source: 'system' };
  for (const d of rest) if (existsSync(join(d.dir, soname))) return { path: join(d.dir, soname), source: d.source };
  return undefined;
}

/** The same search on this machine: its LD_LIBRARY_PATH, `ldconfig -p`, /usr/local/cuda*, python3. */
export function findLibrariesHere(sonames: readonly string[]): FoundLibraries {
  const ldconfig = spawnSync('ldconfig', ['-p'], { encoding: 'utf8' });
  const ldconfigAlt = ldconfig.status === 0 ? ldconfig : spawnSync('/sbin/ldconfig', ['-p'], { encoding: 'utf8' });
  return findLibraries(sonames, {
    ldLibraryPath: (process.env.LD_LIBRARY_PATH ?? '').split(':'),
    ldconfig: parseLdconfig(ldconfigAlt.stdout ?? ''),
    cudaDirs: cudaToolkitLibDirs(),
    pythonDirs: pythonNvidiaLibDirs(pythonSitePackages()),
  });
}
