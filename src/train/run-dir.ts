/**
 * The run folder's bookkeeping: one writer at a time (a lock beside it), what is there and whether it
 * may be continued, what a restart may delete, and the files that say what the run is.
 *
 *   <run>/.fingerprint     the run's identity (canonical JSON: kind, tool, inputs' hashes, params);
 *                          a changed config is named field by field from it
 *   <run>/config.json      the resolved config, as given
 *   <run>/metrics.jsonl    one line per step and per validation
 *   <run>/checkpoints/     see checkpoint.ts
 *   <run>/manifest.json    written last, when the run is finished
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { acquireLock, allFiles, asEnvironmentError, canonicalJson, fingerprint, hashFile, InputError, makeParent, MANIFEST_FILE, nameSome, toolVersion, writeTextAtomic, tryReadManifest, upToDate, type FileEntry, type InputRef, type Manifest } from '../artifacts/index.js';
import { CHECKPOINTS_DIR, listCheckpoints } from './checkpoint.js';

export const RUN_KIND = 'run';
export const RUN_VERSION = 1;
export const METRICS_FILE = 'metrics.jsonl';
export const CONFIG_FILE = 'config.json';
const FINGERPRINT_FILE = '.fingerprint';

/** What a run folder may hold: anything else is the user's, and a restart refuses to delete it. */
const RUN_FILES = [FINGERPRINT_FILE, CONFIG_FILE, METRICS_FILE, MANIFEST_FILE];
const isRunEntry = (rel: string) =>
  RUN_FILES.includes(rel) ||
  /^manifest\.json\.tmp-\d+$/.test(rel) ||
  new RegExp(`^${CHECKPOINTS_DIR}/(step-\\d{9}/[^/]+|(latest|best)(\\.tmp-\\d+)?|\\.lory-(tmp|lock)-step-\\d{9}.*)$`).test(rel);

export type RunDirStatus = 'fresh' | 'continue' | 'extend' | 'done';

export interface RunDirRequest {
  /** The run folder as the user typed it (messages name it so). */
  out: string;
  /** The run's identity: fingerprint(...) of kind, tool, inputs and params. */
  identity: string;
  force: boolean;
  /** Continue a run whose config differs only in more train.steps. */
  extend: boolean;
  /** How to start over, for the message about a changed config (e.g. "use --force to start it over, or another -o"). */
  restartHint: string;
  /** What extending from `from` to `to` steps does to the schedule (one clause). */
  extensionNote(from: number, to: number): string;
}

export interface RunDir {
  path: string;
  status: RunDirStatus;
  release(): void;
}

/**
 * Takes the run folder: the lock first, then what is there decides the status. Writes nothing but
 * the lock (and the parent folders) before the status is known; every file-system failure comes back
 * as an InputError with the reason in words.
 */
export function openRunDir(r: RunDirRequest): RunDir {
  const path = resolve(r.out);
  const environment = (error: unknown) => asEnvironmentError(error, { out: r.out, tempPrefix: join(dirname(path), '.lory-') });
  let release: () => void;
  try {
    if (existsSync(path) && !statSync(path).isDirectory()) throw new InputError(`${r.out}: exists and is a file; choose another -o`);
    makeParent(dirname(path), r.out);
    release = acquireLock(dirname(path), basename(path), r.out);
  } catch (error) {
    throw environment(error);
  }
  try {
    const status = classify(path, r);
    if (status === 'fresh') removeRunEntries(path);
    if (status !== 'done') {
      mkdirSync(path, { recursive: true });
      writeTextAtomic(join(path, FINGERPRINT_FILE), `${r.identity}\n`);
      // A finished run being extended is unfinished again until its new manifest is written.
      if (status === 'extend') rmSync(join(path, MANIFEST_FILE), { force: true });
    }
    return { path, status, release };
  } catch (error) {
    release();
    throw environment(error);
  }
}

function classify(path: string, r: RunDirRequest): RunDirStatus {
  if (!existsSync(path)) return 'fresh';
  const manifest = tryReadManifest(path);
  if (manifest && manifest.kind !== RUN_KIND) throw new InputError(`${r.out}: holds a ${manifest.kind}, not a training run; lory will not overwrite it (choose another -o)`);
  const isRun = existsSync(join(path, FINGERPRINT_FILE)) || manifest !== undefined;
  if (!isRun) {
    if (readdirSync(path).length > 0) throw new InputError(`${r.out}: exists and is not a lory run; lory will not overwrite it (choose another -o)`);
    return 'fresh';
  }
  if (r.force) {
    refuseUserFiles(path, r.out);
    return 'fresh';
  }
  if (manifest && upToDate(path, r.identity)) return 'done';
  const previous = previousIdentity(path, manifest);
  if (previous === r.identity || previous === createHash('sha256').update(r.identity).digest('hex')) return 'continue';
  // Nothing was trained yet (setup failed, or it stopped before the first checkpoint): nothing to lose.
  if (listCheckpoints(path).length === 0) return 'fresh';
  const changes = previous === undefined ? undefined : changedFields(previous, r.identity);
  // Runs recorded before the pipeline file's path left a run's identity are the same run.
  if (changes?.length && changes.every((c) => c.field === 'pipeline')) return 'continue';
  const steps = changes && onlyMoreSteps(changes);
  if (steps && r.extend) return 'extend';
  const what = changes ? ` (${nameSome(changes.map(describeChange))})` : '';
  const extendHint = steps ? `; or --extend to continue it to ${steps.to} steps (${r.extensionNote(steps.from, steps.to)})` : '';
  throw new InputError(`${r.out}: holds a run of another config${what}; ${r.restartHint}${extendHint}`);
}

/** The identity a run folder was started with: its manifest's when finished, else .fingerprint (legacy: a bare sha256, no diff possible). */
function previousIdentity(path: string, manifest: Manifest | undefined): string | undefined {
  const fp = join(path, FINGERPRINT_FILE);
  const text = existsSync(fp) ? readFileSync(fp, 'utf8').trim() : undefined;
  if (text && !/^[0-9a-f]{64}$/.test(text)) return text;
  if (manifest) return fingerprint(manifest);
  return text;
}

interface Change {
  field: string;
  from: unknown;
  to: unknown;
}

function flatten(value: unknown, prefix: string, into: Map<string, unknown>): void {
  if (value !== null && typeof value === 'object') {
    const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
    for (const [k, v] of entries) flatten(v, prefix ? `${prefix}.${k}` : k, into);
    if (entries.length === 0) into.set(prefix, value);
  } else {
    into.set(prefix, value);
  }
}

/** Field-by-field differences of two identities, named as the pipeline spells them (train.steps, model.d_model, …). */
export function changedFields(previous: string, wanted: string): Change[] {
  const a = new Map<string, unknown>();
  const b = new Map<string, unknown>();
  let before: { inputs?: Array<{ role: string }> };
  try {
    before = JSON.parse(previous) as typeof before;
  } catch {
    return [];
  }
  flatten(before, '', a);
  flatten(JSON.parse(wanted), '', b);
  const out: Change[] = [];
  for (const key of new Set([...a.keys(), ...b.keys()])) {
    if (canonicalJson(a.get(key)) === canonicalJson(b.get(key))) continue;
    const input = /^inputs\.(\d+)\./.exec(key);
    if (input) {
      const role = before.inputs?.[Number(input[1])]?.role ?? 'an input';
      if (!out.some((c) => c.field === `${role} input`)) out.push({ field: `${role} input`, from: 'changed', to: undefined });
      continue;
    }
    out.push({ field: key === 'tool' ? 'lory version' : key.replace(/^params\./, ''), from: a.get(key), to: b.get(key) });
  }
  return out;
}

const show = (v: unknown) => (v === undefined ? '(unset)' : typeof v === 'string' ? v : JSON.stringify(v));

function describeChange(c: Change): string {
  if (c.field.endsWith(' input')) return `the ${c.field} changed`;
  return `${c.field} ${show(c.from)} → ${show(c.to)}`;
}

function onlyMoreSteps(changes: Change[]): { from: number; to: number } | undefined {
  if (changes.length !== 1 || changes[0]!.field !== 'train.steps') return undefined;
  const { from, to } = changes[0]!;
  return typeof from === 'number' && typeof to === 'number' && to > from ? { from, to } : undefined;
}

/** A restart deletes the run's own files only; anything else there is the user's. */
function refuseUserFiles(path: string, shown: string): void {
  const extra = allFiles(path).filter((f) => !isRunEntry(f));
  if (extra.length) throw new InputError(`${shown}: holds files its manifest does not list (${nameSome(extra)}); starting over would delete them — move them out or choose another -o`);
}

function removeRunEntries(path: string): void {
  if (!existsSync(path)) return;
  for (const rel of allFiles(path).filter(isRunEntry)) rmSync(join(path, rel), { force: true });
  // Empty checkpoint folders go too; a folder still holding the user's files stays.
  const root = join(path, CHECKPOINTS_DIR);
  if (existsSync(root)) {
    for (const d of readdirSync(root)) if (readdirSync(join(root, d)).length === 0) rmSync(join(root, d), { recursive: true });
    if (readdirSync(root).length === 0) rmSync(root, { recursive: true });
  }
}

export function writeRunConfig(runDir: string, config: Record<string, unknown>): void {
  writeTextAtomic(join(runDir, CONFIG_FILE), `${JSON.stringify(config, null, 2)}\n`);
}

/** Metrics past the checkpoint belong to steps that will run again (a kill -9 mid-append can leave a torn last line: it goes with them). */
export function trimMetrics(runDir: string, step: number): void {
  const path = join(runDir, METRICS_FILE);
  if (!existsSync(path)) return;
  const stepOf = (l: string) => {
    try {
      return (JSON.parse(l) as { step: number }).step;
    } catch {
      return Infinity;
    }
  };
  const kept = readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l && stepOf(l) <= step);
  writeTextAtomic(path, kept.map((l) => `${l}\n`).join(''));
}

export async function writeRunManifest<S>(out: string, inputs: InputRef[], params: Record<string, unknown>, stats: S): Promise<Manifest<S>> {
  const files: Record<string, FileEntry> = {};
  for (const name of [METRICS_FILE, CONFIG_FILE]) {
    const p = join(out, name);
    files[name] = { bytes: readFileSync(p).length, sha256: await hashFile(p) };
  }
  const hash = createHash('sha256');
  for (const name of Object.keys(files).sort()) hash.update(`${name}\0${files[name]!.sha256}\n`);
  const manifest: Manifest<S> = {
    kind: RUN_KIND,
    formatVersion: RUN_VERSION,
    tool: { name: 'lory', version: toolVersion() },
    createdAt: new Date().toISOString(),
    inputs,
    params,
    files,
    contentHash: hash.digest('hex'),
    stats,
  };
  writeTextAtomic(join(out, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}
