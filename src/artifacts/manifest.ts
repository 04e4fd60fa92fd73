/**
 * The manifest every artifact directory carries: what it is (kind, format version), what it was
 * made from (inputs with content hashes), how (params, tool version), what it holds (files with
 * sizes and hashes, summed up in one contentHash that downstream stages record as their input).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { InputError } from './errors.js';
import { canonicalJson, hashPath } from './hash.js';

export const MANIFEST_FILE = 'manifest.json';

export interface InputRef {
  /** What the input is for, e.g. 'corpus', 'tokens', 'embeddings'. */
  role: string;
  /**
   * Where it is: in memory absolute; in a manifest relative to the artifact's own directory (so the
   * artifact works from any working directory, and moves with its inputs). Read it back with inputPath.
   */
  path: string;
  /** The artifact kind when the input is a lory artifact. */
  kind?: string;
  /** sha256 of the file or folder, or the contentHash of an artifact. */
  hash: string;
}

export interface FileEntry {
  bytes: number;
  sha256: string;
}

export interface Manifest<S = Record<string, unknown>> {
  kind: string;
  formatVersion: number;
  tool: { name: 'lory'; version: string };
  createdAt: string;
  inputs: InputRef[];
  params: Record<string, unknown>;
  files: Record<string, FileEntry>;
  /** sha256 over the files' names and hashes: equal content, equal hash, whenever it was made. */
  contentHash: string;
  stats: S;
}

/** sha256 over the files' names and hashes, in name order: a manifest's `contentHash`. */
export function contentHash(files: Record<string, Pick<FileEntry, 'sha256'>>): string {
  const hash = createHash('sha256');
  for (const name of Object.keys(files).sort()) hash.update(`${name}\0${files[name]!.sha256}\n`);
  return hash.digest('hex');
}

/** Human names for error messages: which command makes which kind. */
const MADE_BY: Record<string, string> = {
  'token-store': 'lory prepare',
  embeddings: 'lory embed',
  'embeddings-shard': 'lory embed --shard',
  batches: 'lory build-batches',
  'training-report': 'lory report',
  'task-set': 'lory make-tasks',
};

export function describeKind(kind: string): string {
  const by = MADE_BY[kind];
  const article = /^[aeiou]/i.test(kind) ? 'an' : 'a';
  return by ? `${article} ${kind} (made by \`${by}\`)` : `${article} ${kind}`;
}

/** Reads a manifest without judging it; undefined when the folder holds none. */
export function tryReadManifest(dir: string): Manifest | undefined {
  const path = join(dir, MANIFEST_FILE);
  if (!existsSync(path)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new InputError(`${path}: malformed manifest (${(error as Error).message}); remove the folder and rerun the command that made it`);
  }
  const problem = manifestProblem(parsed);
  if (problem) throw new InputError(`${path}: malformed manifest (${problem}); remove the folder and rerun the command that made it`);
  return parsed as Manifest;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** What is wrong with a parsed manifest's shape, or undefined when every field lory relies on is there. */
function manifestProblem(m: unknown): string | undefined {
  if (!isObject(m)) return 'not a JSON object';
  if (typeof m.kind !== 'string' || m.kind === '') return '"kind" is missing or not a string';
  if (typeof m.formatVersion !== 'number') return '"formatVersion" is missing or not a number';
  if (!isObject(m.tool) || typeof m.tool.version !== 'string') return '"tool.version" is missing';
  if (!Array.isArray(m.inputs)) return '"inputs" is missing or not a list';
  if (!isObject(m.params)) return '"params" is missing or not an object';
  if (!isObject(m.files)) return '"files" is missing or not an object';
  for (const [name, entry] of Object.entries(m.files)) {
    if (!isObject(entry) || !Number.isSafeInteger(entry.bytes) || (entry.bytes as number) < 0 || typeof entry.sha256 !== 'string') return `"files.${name}" needs bytes and sha256`;
    if (name.startsWith('/') || name.split('/').includes('..')) return `"files" names a path outside the artifact: ${name}`;
  }
  if (typeof m.contentHash !== 'string') return '"contentHash" is missing';
  if (!isObject(m.stats)) return '"stats" is missing or not an object';
  return undefined;
}

/** Reads an artifact's manifest and refuses a wrong kind or an unsupported format version. */
export function readManifest<S = Record<string, unknown>>(dir: string, kind: string, formatVersion: number): Manifest<S> {
  if (!existsSync(dir)) throw new InputError(`${dir}: not found; expected ${describeKind(kind)}`);
  if (!statSync(dir).isDirectory()) throw new InputError(`${dir}: is a file; expected ${describeKind(kind)} directory`);
  const manifest = tryReadManifest(dir);
  if (!manifest) throw new InputError(`${dir}: not a lory artifact (no ${MANIFEST_FILE}); expected ${describeKind(kind)}`);
  if (manifest.kind !== kind) throw new InputError(`${dir}: is ${describeKind(String(manifest.kind))}, but ${describeKind(kind)} is needed here`);
  if (manifest.formatVersion !== formatVersion) {
    throw new InputError(
      `${dir}: ${kind} format version ${String(manifest.formatVersion)} is not supported by this lory (it reads version ${formatVersion}); rebuild it with --force`,
    );
  }
  for (const [name, entry] of Object.entries(manifest.files)) {
    const path = join(dir, name);
    if (!existsSync(path) || statSync(path).size !== entry.bytes) {
      throw new InputError(`${dir}: damaged artifact: ${name} is missing or not ${entry.bytes} bytes; rebuild it with --force`);
    }
  }
  return manifest as Manifest<S>;
}

export function artifactInput(role: string, dir: string, manifest: Manifest<unknown>): InputRef {
  return { role, path: resolve(dir), kind: manifest.kind, hash: manifest.contentHash };
}

export async function fileInput(role: string, path: string): Promise<InputRef> {
  if (!existsSync(path)) throw new InputError(`${path}: not found`);
  return { role, path: resolve(path), hash: await hashPath(path) };
}

/** Inputs as the manifest of the artifact at `artifactDir` records them: each path relative to that directory. */
export function recordedInputs(inputs: InputRef[], artifactDir: string): InputRef[] {
  const dir = resolve(artifactDir);
  return inputs.map((i) => ({ ...i, path: relative(dir, resolve(i.path)) }));
}

/**
 * Where an input recorded in the manifest of the artifact at `artifactDir` is, as an absolute path.
 * Manifests written before paths were recorded relative to the artifact hold them as typed, relative
 * to where that command ran: when the artifact-relative path is not there, that one is tried.
 */
export function inputPath(artifactDir: string, input: Pick<InputRef, 'path'>): string {
  if (isAbsolute(input.path)) return input.path;
  const own = resolve(artifactDir, input.path);
  return existsSync(own) || !existsSync(input.path) ? own : resolve(input.path);
}

/** The part of a manifest that decides whether a stage must run again. */
export function fingerprint(m: Pick<Manifest, 'kind' | 'formatVersion' | 'tool' | 'inputs' | 'params'>): string {
  return canonicalJson({
    kind: m.kind,
    formatVersion: m.formatVersion,
    tool: m.tool.version,
    inputs: m.inputs.map((i) => ({ role: i.role, hash: i.hash })),
    params: m.params,
  });
}
