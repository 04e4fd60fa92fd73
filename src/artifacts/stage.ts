/**
 * Runs one stage atomically: skip when the artifact at `out` is already up to date, else build into
 * a temporary directory beside `out` (same file system) and rename it into place at the end, so an
 * interrupted stage never leaves something that looks complete. A resumable stage keeps its
 * temporary directory when interrupted and picks it up again when inputs and params are unchanged.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { asEnvironmentError, InputError } from './errors.js';
import { hashFile, listFiles } from './hash.js';
import { contentHash, describeKind, fingerprint, MANIFEST_FILE, recordedInputs, tryReadManifest, type FileEntry, type InputRef, type Manifest } from './manifest.js';
import { toolVersion } from './version.js';
import { acquireLock, allFiles, makeParent, nameSome, pidAlive } from './lock.js';

export { pidAlive };

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

/**
 * Rebuilding replaces the whole folder: refuse when it holds anything its manifest does not list
 * (the user's notes, a nested artifact), which would otherwise be deleted without a word.
 */
function refuseUnlistedFiles(out: string, shown: string, manifest: Manifest): void {
  const listed = new Set([MANIFEST_FILE, ...Object.keys(manifest.files ?? {})]);
  const extra = allFiles(out).filter((f) => !listed.has(f));
  if (extra.length === 0) return;
  throw new InputError(`${shown}: holds files its manifest does not list (${nameSome(extra)}); rebuilding would delete them — move them out or choose another output path`);
}

export async function runStage<S>(spec: StageSpec<S>): Promise<StageResult<S>> {
  const out = resolve(spec.out);
  // Input paths as the manifest records them, settled before any await (relative ones mean this call's working directory).
  const inputs = recordedInputs(spec.inputs, out);
  const tool = { name: 'lory' as const, version: toolVersion() };
  const wanted = fingerprint({ kind: spec.kind, formatVersion: spec.formatVersion, tool, inputs: spec.inputs, params: spec.params });
  const parent = dirname(out);
  const name = basename(out);
  const environment = (error: unknown) => asEnvironmentError(error, { out: spec.out, tempPrefix: join(parent, '.lory-') });
  try {
    if (existsSync(out)) {
      if (!statSync(out).isDirectory()) throw new InputError(`${spec.out}: exists and is a file; choose another output path`);
      let existing: Manifest | undefined;
      try {
        existing = tryReadManifest(out);
      } catch (error) {
        // Not knowing what the folder holds, lory cannot tell what a rebuild would delete.
        throw new InputError(`${spec.out}: ${(error as Error).message.replace(/^.*?: (malformed manifest \(.*\)); remove .*$/, '$1')}; lory will not overwrite it — remove the folder or choose another output path`);
      }
      if (!existing && readdirSync(out).length > 0) {
        throw new InputError(`${spec.out}: exists and is not a lory artifact; lory will not overwrite it (choose another output path)`);
      }
      if (existing && existing.kind !== spec.kind) {
        throw new InputError(`${spec.out}: holds ${describeKind(String(existing.kind))}, not ${describeKind(spec.kind)}; lory will not overwrite it (choose another output path)`);
      }
      const current = !spec.force ? upToDate(out, wanted) : undefined;
      if (current) return { manifest: current as Manifest<S>, skipped: true };
      if (existing) refuseUnlistedFiles(out, spec.out, existing);
    }
    makeParent(parent, spec.out);
  } catch (error) {
    throw environment(error);
  }
  const release = (() => {
    try {
      return acquireLock(parent, name, spec.out);
    } catch (error) {
      throw environment(error);
    }
  })();
  try {
    return await buildAndSwap({ ...spec, inputs }, out, parent, name, wanted, tool);
  } catch (error) {
    throw environment(error);
  } finally {
    release();
  }
}

async function buildAndSwap<S>(spec: StageSpec<S>, out: string, parent: string, name: string, wanted: string, tool: Manifest['tool']): Promise<StageResult<S>> {
  const key = createHash('sha256').update(wanted).digest('hex').slice(0, 12);
  const workDir = spec.resumable ? join(parent, `${TMP_PREFIX}${name}-resume-${key}`) : join(parent, `${TMP_PREFIX}${name}-pid${process.pid}-${Date.now().toString(36)}`);
  await removeStaleTemps(parent, name, spec.resumable ? workDir : undefined);
  // --force starts over: no resume directory of this output survives it, whatever its params.
  if (spec.resumable && spec.force) await removeResumeDirs(parent, name, undefined);
  await mkdir(workDir, { recursive: true });
  let stats: S;
  try {
    stats = await spec.build(workDir);
  } catch (error) {
    // A resumable stage keeps its work directory only when it holds finished work to resume from.
    if (!spec.resumable || readdirSync(workDir).length === 0) await rm(workDir, { recursive: true, force: true });
    throw error;
  }
  let manifest: Manifest<S>;
  try {
    const files = await describeFiles(workDir);
    manifest = {
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
  } catch (error) {
    // A full disk while finishing: the finished files are whole, but nothing here is worth resuming.
    if (!spec.resumable) await rm(workDir, { recursive: true, force: true });
    throw error;
  }
  if (existsSync(out)) {
    const old = join(parent, `${TMP_PREFIX}${name}-pid${process.pid}-old`);
    await rename(out, old);
    try {
      await rename(workDir, out);
    } catch (error) {
      await rename(old, out); // put the previous artifact back
      throw error;
    }
    await rm(old, { recursive: true, force: true });
  } else {
    await rename(workDir, out);
  }
  // Resume directories of other params are stale now that the output is rebuilt.
  if (spec.resumable) await removeResumeDirs(parent, name, undefined);
  return { manifest, skipped: false, workDir };
}

async function removeResumeDirs(parent: string, name: string, keep: string | undefined): Promise<void> {
  const prefix = `${TMP_PREFIX}${name}-resume-`;
  for (const entry of readdirSync(parent)) {
    if (entry.startsWith(prefix) && /^[0-9a-f]{12}$/.test(entry.slice(prefix.length)) && join(parent, entry) !== keep) {
      await rm(join(parent, entry), { recursive: true, force: true });
    }
  }
}
