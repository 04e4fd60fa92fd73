/**
 * Helpers for the table-driven tests of each command: run `bin/lory`, snapshot an output location
 * byte for byte, and mount the small file systems (read-only, nearly full) that the environment rows
 * need. A row passes when the exit code and a message fragment match, the message is one line with
 * no stack, and the output location holds afterwards exactly what it held before.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { PROJECT_ROOT } from '../../artifacts/index.js';

const LORY = join(PROJECT_ROOT, 'bin', 'lory');
const env = { ...process.env, LORY_OPENBLAS_CORETYPE: undefined };

export function lory(...args: string[]): SpawnSyncReturns<string> {
  return spawnSync(LORY, args, { encoding: 'utf8', env });
}

export function loryAsync(...args: string[]): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(LORY, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (status) => resolve({ status, stderr }));
  });
}

/** Every file under `path` (hidden ones too) with its sha256; undefined when nothing is there. */
export function snapshot(path: string): Record<string, string> | undefined {
  if (!existsSync(path)) return undefined;
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    const full = join(path, rel);
    if (statSync(full).isDirectory()) for (const name of readdirSync(full).sort()) walk(rel ? `${rel}/${name}` : name);
    else out[rel] = createHash('sha256').update(readFileSync(full)).digest('hex');
  };
  walk('');
  return out;
}

export interface Row {
  /** What the row tries, as the test output names it. */
  name: string;
  /** Arguments after `lory`; a function when they depend on the row's own setup. */
  args: string[] | (() => string[]);
  code: number;
  /** A fragment of stderr. */
  message: string | RegExp;
  /** Runs before the row (damages an input, makes a folder read-only, ...). */
  setup?: () => void;
  /** Runs after the row, whatever happened (unmounts, restores). */
  cleanup?: () => void;
  /** A reason to skip this row on this machine (e.g. not root: no mounts). */
  skip?: string | false;
}

/**
 * Runs the rows one by one against `out`; after each, `out` must hold what it held before (nothing,
 * or the previous good artifact byte for byte) and no temporary or resume directory or lock may be left beside it.
 */
export function checkRows(rows: Row[], out: string, it: (name: string, options: { skip?: string | false }, fn: () => void) => void): void {
  for (const row of rows) {
    it(`${row.name}: exit ${row.code}, "${String(row.message)}", the output untouched`, { skip: row.skip }, () => {
      const lorySide = () => (existsSync(dirname(out)) ? readdirSync(dirname(out)).filter((n) => n.startsWith(`.lory-tmp-${basename(out)}-`) || n === `.lory-lock-${basename(out)}`).sort() : []);
      const sideBefore = lorySide();
      try {
        row.setup?.();
        const before = snapshot(out);
        const r = lory(...(typeof row.args === 'function' ? row.args() : row.args));
        assert.equal(r.status, row.code, r.stderr);
        if (typeof row.message === 'string') assert.ok(r.stderr.includes(row.message), `stderr lacks ${JSON.stringify(row.message)}:\n${r.stderr}`);
        else assert.match(r.stderr, row.message);
        assert.equal(r.stderr.trim().split('\n').length, 1, `one line expected:\n${r.stderr}`);
        assert.doesNotMatch(r.stderr, /internal error|\n\s+at /);
        assert.deepEqual(snapshot(out), before, `${out} changed`);
      } finally {
        row.cleanup?.();
      }
      assert.deepEqual(lorySide(), sideBefore, 'temporary or resume directories, or a lock, left beside the output');
    });
  }
}

export const isRoot = process.getuid?.() === 0;

/** Why this machine cannot mount a tmpfs (tried once), or undefined when it can. */
export const mountProblem: string | undefined = (() => {
  if (!isRoot) return 'not root: cannot mount a small or read-only file system (and a chmod does not stop root)';
  const dir = mkdtempSync(join(tmpdir(), 'lory-mount-probe-'));
  const problem = mountTmpfs(dir, 'size=16k');
  if (!problem) unmount(dir);
  rmSync(dir, { recursive: true, force: true });
  return problem;
})();

/** Mounts a tmpfs at `dir` (root only); returns why it cannot, or undefined when mounted. */
export function mountTmpfs(dir: string, options: string): string | undefined {
  if (!isRoot) return 'not root: cannot mount a small or read-only file system (and a chmod does not stop root)';
  mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { encoding: 'utf8' });
  return r.status === 0 ? undefined : `cannot mount a tmpfs here (${r.stderr.trim() || `exit ${r.status}`})`;
}

export function unmount(dir: string): void {
  spawnSync('umount', [dir]);
}

/**
 * A copy of the artifact `source` as `<root>/<name>`, with `damage` applied to one file in place (same
 * size). With `rehash`, the manifest's sha256 and contentHash are recomputed here (independently of
 * lory's own hashing) to match the damaged bytes, so only a structural check can notice the damage.
 */
export function damagedCopy(root: string, source: string, name: string, file: string, damage: (bytes: Buffer) => void, rehash = false): string {
  const copy = join(root, name);
  rmSync(copy, { recursive: true, force: true });
  cpSync(source, copy, { recursive: true });
  const bytes = readFileSync(join(copy, file));
  damage(bytes);
  writeFileSync(join(copy, file), bytes);
  if (rehash) {
    const m = JSON.parse(readFileSync(join(copy, 'manifest.json'), 'utf8'));
    m.files[file].sha256 = createHash('sha256').update(bytes).digest('hex');
    const h = createHash('sha256');
    for (const n of Object.keys(m.files).sort()) h.update(`${n}\0${m.files[n].sha256}\n`);
    m.contentHash = h.digest('hex');
    writeFileSync(join(copy, 'manifest.json'), JSON.stringify(m));
  }
  return copy;
}
