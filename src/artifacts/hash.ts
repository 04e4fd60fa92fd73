/** Content hashes: of files (streamed), folders (sorted file list) and parameter objects (canonical JSON). */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, realpath, stat } from 'node:fs/promises';
import { InputError } from './errors.js';
import { join, relative } from 'node:path';

export async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Every regular file under `dir`, sorted by relative path (so the order never depends on the file
 * system). Symbolic links are followed (a corpus folder of links is a corpus), each real folder
 * once, so a link cycle ends.
 */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const seen = new Set<string>();
  async function walk(d: string): Promise<void> {
    const real = await realpath(d);
    if (seen.has(real)) return;
    seen.add(real);
    const entries = await readdir(d, { withFileTypes: true });
    for (const e of entries) {
      if (e.name.startsWith('.')) continue; // hidden files and lory's own temp dirs
      const p = join(d, e.name);
      const target = e.isSymbolicLink() ? await stat(p).catch(() => undefined) : e;
      if (!target) throw new InputError(`${p}: broken symbolic link`);
      if (target.isDirectory()) await walk(p);
      else if (target.isFile()) out.push(p);
    }
  }
  await walk(dir);
  return out.sort((a, b) => (relative(dir, a) < relative(dir, b) ? -1 : 1));
}

/** A file's hash, or for a folder the hash of its files' relative paths and hashes. */
export async function hashPath(path: string): Promise<string> {
  if (!(await stat(path)).isDirectory()) return hashFile(path);
  const hash = createHash('sha256');
  for (const file of await listFiles(path)) hash.update(`${relative(path, file)}\0${await hashFile(file)}\n`);
  return hash.digest('hex');
}

/** JSON with object keys sorted, so equal values always serialise (and hash) the same. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = sortKeys(v);
    }
    return out;
  }
  return value;
}

export function hashString(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
