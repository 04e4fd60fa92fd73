/**
 * Runs one stage atomically: skip when the artifact at `out` is already up to date, else build into
 * a temporary directory beside `out` (same file system) and rename it into place at the end, so an
 * interrupted stage never leaves something that looks complete. A resumable stage keeps its
 * temporary directory when interrupted and picks it up again when inputs and params are unchanged.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { InputError } from './errors.js';
import { hashFile, listFiles } from './hash.js';
import { fingerprint, MANIFEST_FILE, tryReadManifest, type FileEntry, type InputRef, type Manifest } from './manifest.js';
import { toolVersion } from './version.js';

export interface StageSpec<S> {
  out: string;
  kind: string;
  formatVersion: number;
  inputs: InputRef[];
  params: Record<string, unknown>;
  /** Rebuild even when up to date. */
  force?: boolean;
  /** Keep the work directory on failure and reuse it on the next identical run. */
  resumable?: boolean;
  /** Writes the artifact's files into `dir` and returns the stats recorded in the manifest. */
  build(dir: string): Promise<S>;
}

export interface StageResult<S> {
  manifest: Manifest<S>;
  skipped: boolean;
  /** Where the work happened (gone after success); tests use it to find resumable state. */
  workDir?: string;
}

const TMP_PREFIX = '.lory-tmp-';

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Removes temporary directories of exactly this output left by crashed runs of this machine (their
 * pid is gone). Resume directories (`-resume-<key>`) are never removed here: they hold finished work,
 * and may belong to a run elsewhere on a shared filesystem.
 */
async function removeStaleTemps(parent: string, name: string, keep: string | undefined): Promise<void> {
  if (!existsSync(parent)) return;
  const ours = new RegExp(`^${escapeRegExp(TMP_PREFIX + name)}-pid(\\d+)-[a-z0-9]+$`);
  for (const entry of readdirSync(parent)) {
    const pid = ours.exec(entry)?.[1];
    if (pid === undefined || join(parent, entry) === keep || pidAlive(Number(pid))) continue;
    await rm(join(parent, entry), { recursive: true, force: true });
  }
}

/** Is the artifact at `dir` exactly what this spec would build (and still whole)? */
export function upToDate(dir: string, wanted: string): Manifest | undefined {
  let manifest: Manifest | undefined;
  try {
    manifest = tryReadManifest(dir);
  } catch {
    return undefined;
  }
  if (!manifest || fingerprint(manifest) !== wanted) return undefined;
  for (const [name, entry] of Object.entries(manifest.files)) {
    const path = join(dir, name);
    if (!existsSync(path) || statSync(path).size !== entry.bytes) return undefined;
  }
  return manifest;
}

async function describeFiles(dir: string): Promise<Record<string, FileEntry>> {
  const files: Record<string, FileEntry> = {};
  for (const path of await listFiles(dir)) {
    const name = path.slice(dir.length + 1);
    if (name === MANIFEST_FILE) continue;
    files[name] = { bytes: statSync(path).size, sha256: await hashFile(path) };
  }
  return files;
}

function contentHash(files: Record<string, FileEntry>): string {
  const hash = createHash('sha256');
  for (const name of Object.keys(files).sort()) hash.update(`${name}\0${files[name]!.sha256}\n`);
  return hash.digest('hex');
}

export async function runStage<S>(spec: StageSpec<S>): Promise<StageResult<S>> {
  const out = resolve(spec.out);
  const tool = { name: 'lory' as const, version: toolVersion() };
  const wanted = fingerprint({ kind: spec.kind, formatVersion: spec.formatVersion, tool, inputs: spec.inputs, params: spec.params });

  if (existsSync(out)) {
    if (!statSync(out).isDirectory()) throw new InputError(`${spec.out}: exists and is a file; choose another output path`);
    const existing = tryReadManifest(out);
    if (!existing && readdirSync(out).length > 0) {
      throw new InputError(`${spec.out}: exists and is not a lory artifact; lory will not overwrite it (choose another output path)`);
    }
    if (existing && existing.kind !== spec.kind) {
      throw new InputError(`${spec.out}: holds a ${existing.kind}, not a ${spec.kind}; lory will not overwrite it (choose another output path)`);
    }
    const current = !spec.force ? upToDate(out, wanted) : undefined;
    if (current) return { manifest: current as Manifest<S>, skipped: true };
  }

  const parent = dirname(out);
  const name = basename(out);
  await mkdir(parent, { recursive: true });
  const key = createHash('sha256').update(wanted).digest('hex').slice(0, 12);
  const workDir = spec.resumable ? join(parent, `${TMP_PREFIX}${name}-resume-${key}`) : join(parent, `${TMP_PREFIX}${name}-pid${process.pid}-${Date.now().toString(36)}`);
  await removeStaleTemps(parent, name, spec.resumable ? workDir : undefined);
  if (spec.resumable && spec.force) await rm(workDir, { recursive: true, force: true });
  await mkdir(workDir, { recursive: true });

  let stats: S;
  try {
    stats = await spec.build(workDir);
  } catch (error) {
    if (!spec.resumable) await rm(workDir, { recursive: true, force: true });
    throw error;
  }
  const files = await describeFiles(workDir);
  const manifest: Manifest<S> = {
    kind: spec.kind,
    formatVersion: spec.formatVersion,
    tool,
    createdAt: new Date().toISOString(),
    inputs: spec.inputs,
    params: spec.params,
    files,
    contentHash: contentHash(files),
    stats,
  };
  // The manifest is written last: a directory without one is never taken for a finished artifact.
  await writeFile(join(workDir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  if (existsSync(out)) {
    const old = join(parent, `${TMP_PREFIX}${name}-pid${process.pid}-old`);
    await rename(out, old);
    await rename(workDir, out);
    await rm(old, { recursive: true, force: true });
  } else {
    await rename(workDir, out);
  }
  return { manifest, skipped: false, workDir };
}
