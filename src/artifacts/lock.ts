/**
 * One writer per output folder, and the folder bookkeeping every writer shares: a lock file beside
 * the output (created exclusively, holding the writer's pid), the parent made with the reason in
 * words when it cannot be, and the listing used to refuse deleting what lory did not write.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from './errors.js';

export const LOCK_PREFIX = '.lory-lock-';

/** Whether a process with this pid exists (EPERM: it does, owned by someone else). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * One writer per output: a lock file beside it, created exclusively, holding the writer's pid. A lock
 * whose process is gone (a crash, kill -9) is taken over.
 */
export function acquireLock(parent: string, name: string, shown: string): () => void {
  const path = join(parent, `${LOCK_PREFIX}${name}`);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(path, `${process.pid}\n`, { flag: 'wx' });
      return () => rmSync(path, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    let holder = NaN;
    try {
      holder = Number.parseInt(readFileSync(path, 'utf8'), 10);
    } catch {
      // removed meanwhile: try again
    }
    if (Number.isInteger(holder) && holder > 0 && pidAlive(holder)) {
      throw new InputError(`another lory process (pid ${holder}) is writing ${shown}; wait for it to finish or choose another output path`);
    }
    rmSync(path, { force: true });
  }
  throw new InputError(`another lory process is writing ${shown}; wait for it to finish or choose another output path`);
}

/** Every entry under `dir` (hidden ones too), relative, files only, sorted. */
export function allFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...allFiles(dir, rel));
    else out.push(rel);
  }
  return out.sort();
}

/** Up to three names for a message, with the count when there are more. */
/** Replace a small text file atomically: a temporary file beside it, then a rename. */
export function writeTextAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

export const nameSome = (names: string[]) => names.slice(0, 3).join(', ') + (names.length > 3 ? `, … (${names.length} in all)` : '');

export function makeParent(parent: string, shown: string): void {
  try {
    mkdirSync(parent, { recursive: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTDIR') throw new InputError(`${shown}: cannot write: a part of the path is a file, not a folder`);
    throw error;
  }
}

