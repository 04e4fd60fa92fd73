/**
 * Checkpoints of a training run (the contract shared with eval/inspect/generate):
 *
 *   <run>/checkpoints/step-000000120/
 *     manifest.json          kind "checkpoint", formatVersion 1, every file with its sha256
 *     model.safetensors      parameters by PARAM.* name, F32 (F64 for float64 models), shapes as paramSpecs
 *     optimizer.safetensors  AdamW moments "adam_m/<param>", "adam_v/<param>"
 *     state.json             { step, tokensSeen, cursor, rng, validLoss?, phase }
 *     config.json            the resolved pipeline config; its model section describes the saved weights
 *     tokenizer.json         byte copy of the token store's tokenizer
 *   <run>/checkpoints/latest, best   text files naming a checkpoint directory
 *
 * A checkpoint is built in a temporary directory and renamed into place (artifacts' runStage); the
 * `latest`/`best` pointers are replaced by write-temp-then-rename only after that, so `kill -9` at
 * any moment leaves the previous good checkpoint and pointers intact.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { InputError, pidAlive, writeTextAtomic, runStage, tryReadManifest, type InputRef, type Manifest } from '../artifacts/index.js';
import { readTensors, writeSafetensors, type StoredTensor } from '../artifacts/safetensors.js';
import { ConfigError, modelConfigToYamlObject, paramSpecs, parseModelConfig, type ModelConfig, type ParamArray } from '../model/index.js';

export const CHECKPOINT_KIND = 'checkpoint';
export const CHECKPOINT_VERSION = 1;
export const CHECKPOINTS_DIR = 'checkpoints';
export const FILES = {
  model: 'model.safetensors',
  optimizer: 'optimizer.safetensors',
  state: 'state.json',
  config: 'config.json',
  tokenizer: 'tokenizer.json',
  latest: 'latest',
  best: 'best',
} as const;

export const ADAM_M = (param: string) => `adam_m/${param}`;
export const ADAM_V = (param: string) => `adam_v/${param}`;

/** Where the next training example comes from (see train/data.ts). */
export interface DataCursor {
  /** Passes over the training instances completed. */
  epoch: number;
  /** Instances of this epoch's order already consumed. */
  position: number;
}

export interface CheckpointState {
  /** Optimizer updates done (the next update is step + 1). */
  step: number;
  tokensSeen: number;
  cursor: DataCursor;
  /**
   * Every random draw in training is derived from (seed, purpose) — the epoch order from
   * (seed, epoch), the routers of the dense → MoE conversion from (seed, 'convert') — so the seed is
   * the whole generator state.
   */
  rng: { seed: number };
  /** The latest validation loss at or before this step. */
  validLoss?: number;
  /** Lowest validation loss of the run so far (keeps `best` right across resumes). */
  bestValidLoss?: number;
  /** 'dense' for a dense model and during an MoE run's dense warm-up (the weights are the dense model), else 'moe'. */
  phase: 'dense' | 'moe';
}

export interface CheckpointToWrite {
  /** The run directory; the checkpoint goes to <run>/checkpoints/step-<step>. */
  runDir: string;
  state: CheckpointState;
  /** The config of the weights being saved (experts = 1 during dense warm-up). */
  model: ModelConfig;
  /** The resolved pipeline config; its `model` section is replaced by `model` above. */
  config: Record<string, unknown>;
  params: Record<string, ParamArray>;
  /** AdamW moments keyed by parameter name. */
  adam?: { m: Record<string, ParamArray>; v: Record<string, ParamArray> };
  tokenizerPath: string;
  /** What the run was trained on (recorded in the checkpoint's manifest). */
  inputs?: InputRef[];
}

export interface LoadedCheckpoint {
  /** The checkpoint directory actually read. */
  dir: string;
  step: number;
  /** Resolved, for the saved weights. */
  model: ModelConfig;
  /** The whole resolved pipeline config. */
  config: unknown;
  params: Record<string, Float32Array | Float64Array>;
  tokenizerPath: string;
  /** sha256 of tokenizer.json. */
  tokenizerHash: string;
  /** state.json (additive to the contract). */
  state: CheckpointState;
  /** The checkpoint's manifest, as checked (additive). */
  manifest: Manifest;
  /** AdamW moments by parameter name, when read with { optimizer: true } (additive). */
  adam?: { m: Record<string, ParamArray>; v: Record<string, ParamArray> };
}

export const checkpointName = (step: number) => `step-${String(step).padStart(9, '0')}`;

/** Write one checkpoint and point `latest` at it (and `best`, when `isBest`). Returns its directory. */
export async function writeCheckpoint(w: CheckpointToWrite, options: { isBest?: boolean } = {}): Promise<string> {
  const root = join(w.runDir, CHECKPOINTS_DIR);
  const name = checkpointName(w.state.step);
  const specs = paramSpecs(w.model);
  const dtype = w.model.dtype;
  for (const s of specs) {
    const v = w.params[s.name];
    if (!v) throw new Error(`writeCheckpoint: no value for parameter ${s.name}`);
    if ((dtype === 'float64') !== v instanceof Float64Array) throw new Error(`writeCheckpoint: ${s.name} is not ${dtype}`);
  }
  const modelSection = modelConfigToYamlObject(w.model);
  await runStage({
    out: join(root, name),
    kind: CHECKPOINT_KIND,
    formatVersion: CHECKPOINT_VERSION,
    inputs: w.inputs ?? [],
    params: { step: w.state.step, phase: w.state.phase, model: modelSection },
    force: true,
    build: async (dir) => {
      writeSafetensors(
        join(dir, FILES.model),
        specs.map((s) => [s.name, { shape: s.shape, data: w.params[s.name]! }] as const),
        { format: 'pt', producer: 'lory' },
      );
      if (w.adam) {
        const tensors = [
          ...specs.map((s) => [ADAM_M(s.name), { shape: s.shape, data: w.adam!.m[s.name]! }] as const),
          ...specs.map((s) => [ADAM_V(s.name), { shape: s.shape, data: w.adam!.v[s.name]! }] as const),
        ];
        writeSafetensors(join(dir, FILES.optimizer), tensors, { producer: 'lory', step: String(w.state.step) });
      }
      writeFileSync(join(dir, FILES.state), `${JSON.stringify(w.state, null, 2)}\n`);
      writeFileSync(join(dir, FILES.config), `${JSON.stringify({ ...w.config, model: modelSection }, null, 2)}\n`);
      copyFileSync(w.tokenizerPath, join(dir, FILES.tokenizer));
      return { step: w.state.step, phase: w.state.phase, validLoss: w.state.validLoss ?? null };
    },
  });
  writeTextAtomic(join(root, FILES.latest), `${name}\n`);
  if (options.isBest) writeTextAtomic(join(root, FILES.best), `${name}\n`);
  return join(root, name);
}

/** A checkpoint directory's name (checkpointName). */
const STEP_DIR = /^step-\d{9}$/;

/** Checkpoint directories of a checkpoints/ folder, oldest first. */
function checkpointNames(root: string): string[] {
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((n) => STEP_DIR.test(n) && existsSync(join(root, n, 'manifest.json')))
    .sort();
}

/** Checkpoint directories of a run, oldest first. */
export function listCheckpoints(runDir: string): string[] {
  return checkpointNames(join(runDir, CHECKPOINTS_DIR));
}

/** Half-written checkpoints and pointer files left by processes killed mid-write (their pid is gone). */
function removeStaleTemps(root: string): void {
  for (const entry of readdirSync(root)) {
    const pid = /^\.lory-tmp-step-\d{9}-pid(\d+)-/.exec(entry)?.[1] ?? /^(?:latest|best)\.tmp-(\d+)$/.exec(entry)?.[1];
    if (pid !== undefined && Number(pid) !== process.pid && !pidAlive(Number(pid))) rmSync(join(root, entry), { recursive: true, force: true });
  }
}

/**
 * Delete all but the newest `keepLast` checkpoints, never the one `best` or `latest` names, and what
 * killed processes left half-written.
 */
export function pruneCheckpoints(runDir: string, keepLast: number): string[] {
  const root = join(runDir, CHECKPOINTS_DIR);
  if (existsSync(root)) removeStaleTemps(root);
  const all = listCheckpoints(runDir);
  const pinned = new Set([FILES.best, FILES.latest].map((f) => readPointer(root, f)).filter((x): x is string => !!x));
  const removed: string[] = [];
  for (const n of all.slice(0, Math.max(0, all.length - keepLast))) {
    if (pinned.has(n)) continue;
    rmSync(join(root, n), { recursive: true, force: true });
    removed.push(n);
  }
  return removed;
}

function readPointer(root: string, file: string): string | undefined {
  const p = join(root, file);
  if (!existsSync(p)) return undefined;
  const name = readFileSync(p, 'utf8').trim();
  return name || undefined;
}

/** `…/checkpoints/step-20` for `…/checkpoints/step-000000020`: the step number alone names a checkpoint too. */
function expandStepName(path: string): string {
  const step = /^step-(\d+)$/.exec(basename(path))?.[1];
  return step === undefined || existsSync(path) ? path : join(dirname(path), checkpointName(Number(step)));
}

interface Located {
  /** The checkpoint directory named (by the path itself, or by the pointer); undefined when the pointer names none. */
  dir?: string;
  /** The run's checkpoints/ folder, when a pointer was followed. */
  root?: string;
  /** Why the pointer names no checkpoint. */
  pointerProblem?: string;
}

/** What `path` names: a checkpoint dir, or a run dir (→ checkpoints/<which>), or a checkpoints/ dir. */
function locate(path: string, which: 'latest' | 'best'): Located {
  path = expandStepName(path);
  if (!existsSync(path)) throw new InputError(`${path}: not found; expected a checkpoint or a run directory (made by \`lory train\`)`);
  if (!statSync(path).isDirectory()) throw new InputError(`${path}: is a file; expected a checkpoint or a run directory`);
  // A step directory is judged by readCheckpoint, so that a damaged manifest reads as a damaged checkpoint.
  if (STEP_DIR.test(basename(path))) return { dir: path };
  const manifest = tryReadManifest(path);
  if (manifest?.kind === CHECKPOINT_KIND) return { dir: path };
  const root = existsSync(join(path, CHECKPOINTS_DIR)) ? join(path, CHECKPOINTS_DIR) : existsSync(join(path, FILES.latest)) ? path : undefined;
  if (!root) {
    const what = manifest ? `a ${manifest.kind}` : 'not a lory artifact';
    throw new InputError(`${path}: ${what}; expected a checkpoint or a run directory (made by \`lory train\`)`);
  }
  const name = readPointer(root, which);
  if (!name) return { root, pointerProblem: `${join(root, which)} is missing` };
  const dir = join(root, name);
  if (!existsSync(dir)) return { root, pointerProblem: `${join(root, which)} names ${name}, which does not exist` };
  return { dir, root };
}

/** Why a run has no `which` checkpoint to read. */
function noCheckpoint(root: string, which: 'latest' | 'best', problem: string): InputError {
  const why = which === 'best' ? ' (no validation loss was recorded yet)' : '';
  return new InputError(`${problem}; the run has no ${which} checkpoint${why}`);
}

/**
 * `lory train --from-checkpoint`: `path` must be a checkpoint of this very run (another run's weights
 * would continue under this run's name and metrics) and the run unfinished. Returns the checkpoint dir.
 */
export function checkpointOfRun(runDir: string, path: string): string {
  const dir = expandStepName(path);
  const root = join(runDir, CHECKPOINTS_DIR);
  if (resolve(dirname(dir)) !== resolve(root) || !STEP_DIR.test(basename(dir))) {
    throw new InputError(`--from-checkpoint ${path}: not a checkpoint of the run ${runDir}; expected ${join(root, 'step-…')}`);
  }
  if (!existsSync(dir)) throw new InputError(`--from-checkpoint ${path}: not found; the run's checkpoints: ${checkpointNames(root).join(', ') || 'none'}`);
  // kind "run": the loop writes the run's manifest only when training finished.
  if (tryReadManifest(runDir)?.kind === 'run') throw new InputError(`${runDir}: the run is finished; --from-checkpoint continues an unfinished run (--force trains it again)`);
  return dir;
}

function readJson(path: string): unknown {
  if (!existsSync(path)) throw new InputError(`${path}: missing`);
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch (error) {
    throw new InputError(`${path}: not valid JSON (${(error as Error).message})`);
  }
}

const sha256 = (buf: Buffer) => createHash('sha256').update(buf).digest('hex');

/**
 * A checkpoint that cannot be used: damaged (a file missing, truncated or changed, a tensor of the
 * wrong name, dtype or shape), or `diverged` (a weight or moment that is NaN or infinite, saved by a
 * run whose loss blew up). `reason` names the file or tensor inside `dir`.
 */
class UnusableCheckpoint extends InputError {
  constructor(
    readonly dir: string,
    readonly reason: string,
    readonly diverged: boolean,
  ) {
    super(`${dir}: ${reason}`);
  }
}

/** Tensors of `file` for exactly `specs` (names mapped by `nameOf`), in the model's dtype. */
function takeTensors(file: string, tensors: Map<string, StoredTensor>, specs: { name: string; shape: number[] }[], dtype: ModelConfig['dtype'], nameOf: (p: string) => string): Record<string, ParamArray> {
  const want = dtype === 'float64' ? 'F64' : 'F32';
  const out: Record<string, ParamArray> = {};
  for (const s of specs) {
    const key = nameOf(s.name);
    const t = tensors.get(key);
    if (!t) throw new InputError(`${file}: tensor ${key} is missing (the checkpoint is for another model config?)`);
    if (t.dtype !== want) throw new InputError(`${file}: tensor ${key} is ${t.dtype}, expected ${want} for a ${dtype} model`);
    if (t.shape.length !== s.shape.length || t.shape.some((d, i) => d !== s.shape[i])) {
      throw new InputError(`${file}: tensor ${key} has shape [${t.shape}], expected [${s.shape}] from config.json's model section`);
    }
    out[s.name] = t.data as ParamArray;
  }
  return out;
}

/** Index of the first NaN or ±Infinity in `a`, or -1 (one pass; x − x is 0 exactly for finite x). */
export function firstNonFinite(a: ParamArray): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    if (x - x !== 0) return i;
  }
  return -1;
}

/** Refuse a checkpoint holding a NaN or infinite value: computing with it gives NaN everywhere, silently. */
function checkFinite(dir: string, tensors: Record<string, ParamArray>, nameOf: (p: string) => string): void {
  for (const [name, data] of Object.entries(tensors)) {
    const i = firstNonFinite(data);
    if (i >= 0) throw new UnusableCheckpoint(dir, `tensor ${nameOf(name)} holds ${data[i]} (at index ${i})`, true);
  }
}

/** Every file the manifest lists (the optimizer's only when wanted), checked for size and sha256. */
function readFiles(dir: string, manifest: Manifest, optimizer: boolean): void {
  for (const [name, entry] of Object.entries(manifest.files)) {
    if (name === FILES.optimizer && !optimizer) continue;
    const path = join(dir, name);
    if (!existsSync(path)) throw new UnusableCheckpoint(dir, `${name} is missing`, false);
    const buf = readFileSync(path);
    if (buf.length !== entry.bytes) throw new UnusableCheckpoint(dir, `${name} is ${buf.length} bytes, the manifest says ${entry.bytes}`, false);
    if (sha256(buf) !== entry.sha256) throw new UnusableCheckpoint(dir, `${name} differs from its sha256 in the manifest`, false);
  }
  for (const f of [FILES.model, FILES.state, FILES.config, FILES.tokenizer]) {
    if (!(f in manifest.files)) throw new UnusableCheckpoint(dir, `the manifest does not list ${f}`, false);
  }
}

/** The checkpoint's manifest; a missing or malformed one is damage, another format version is not. */
function checkpointManifest(dir: string): Manifest {
  let manifest: Manifest | undefined;
  try {
    manifest = tryReadManifest(dir);
  } catch {
    throw new UnusableCheckpoint(dir, 'manifest.json is malformed', false);
  }
  if (!manifest) throw new UnusableCheckpoint(dir, 'manifest.json is missing', false);
  if (manifest.kind !== CHECKPOINT_KIND) throw new UnusableCheckpoint(dir, `its manifest says ${manifest.kind}, not ${CHECKPOINT_KIND}`, false);
  if (manifest.formatVersion !== CHECKPOINT_VERSION) {
    throw new InputError(`${dir}: checkpoint format version ${manifest.formatVersion} is not supported by this lory (it reads version ${CHECKPOINT_VERSION})`);
  }
  return manifest;
}

/** The message part after `dir`: reasons are read relative to the checkpoint. */
const relativeTo = (dir: string, message: string) => (message.startsWith(`${dir}/`) ? message.slice(dir.length + 1) : message.startsWith(`${dir}: `) ? message.slice(dir.length + 2) : message);

/** Read and check one checkpoint directory (see readCheckpoint); throws UnusableCheckpoint for damage. */
function loadCheckpointDir(dir: string, opts: { optimizer?: boolean | undefined }): LoadedCheckpoint {
  const manifest = checkpointManifest(dir);
  try {
    readFiles(dir, manifest, opts.optimizer ?? false);
    const state = readJson(join(dir, FILES.state)) as CheckpointState;
    if (typeof state?.step !== 'number' || (state.phase !== 'dense' && state.phase !== 'moe')) throw new InputError(`${join(dir, FILES.state)}: malformed (needs step and phase)`);
    const config = readJson(join(dir, FILES.config)) as Record<string, unknown>;
    let model: ModelConfig;
    try {
      model = parseModelConfig(config?.model, join(dir, FILES.config));
    } catch (error) {
      if (error instanceof ConfigError) throw new InputError(error.message);
      throw error;
    }
    const specs = paramSpecs(model);
    const modelFile = join(dir, FILES.model);
    const { tensors } = readTensors(modelFile);
    const params = takeTensors(modelFile, tensors, specs, model.dtype, (p) => p);
    const extra = [...tensors.keys()].filter((k) => !specs.some((s) => s.name === k));
    if (extra.length) throw new InputError(`${modelFile}: unexpected tensor ${extra[0]} for config.json's model section (another model config?)`);
    checkFinite(dir, params, (p) => p);
    const loaded: LoadedCheckpoint = {
      dir,
      step: state.step,
      model,
      config,
      params,
      tokenizerPath: join(dir, FILES.tokenizer),
      tokenizerHash: manifest.files[FILES.tokenizer]!.sha256,
      state,
      manifest,
    };
    if (opts.optimizer) {
      if (!(FILES.optimizer in manifest.files)) throw new InputError(`${dir}: checkpoint holds no ${FILES.optimizer}; it cannot resume training`);
      const optFile = join(dir, FILES.optimizer);
      const opt = readTensors(optFile).tensors;
      loaded.adam = { m: takeTensors(optFile, opt, specs, model.dtype, ADAM_M), v: takeTensors(optFile, opt, specs, model.dtype, ADAM_V) };
      checkFinite(dir, loaded.adam.m, ADAM_M);
      checkFinite(dir, loaded.adam.v, ADAM_V);
    }
    return loaded;
  } catch (error) {
    if (error instanceof UnusableCheckpoint || !(error instanceof InputError)) throw error;
    throw new UnusableCheckpoint(dir, relativeTo(dir, error.message), false);
  }
}

/** The newest checkpoint of `dir`'s run older than `dir`, if any. */
function earlierThan(dir: string): string | undefined {
  const root = dirname(dir);
  const older = checkpointNames(root).filter((n) => n < basename(dir));
  return older.length ? join(root, older[older.length - 1]!) : undefined;
}

/** The one-line refusal of an unusable checkpoint, naming what to use instead (a checkpoint cannot be rebuilt). */
function refusal(e: UnusableCheckpoint, earlier: string | undefined): InputError {
  const instead = earlier
    ? `use an earlier one: ${earlier} (in place of the run directory; \`lory train --from-checkpoint ${earlier}\` resumes from it)`
    : 'no earlier checkpoint is left: train again with `lory train … --force`';
  return new InputError(e.diverged ? `${e.dir}: ${e.reason}; the run diverged before this checkpoint — ${instead}` : `${e.dir}: damaged (${e.reason}); ${instead}`);
}

export interface ReadCheckpointOptions {
  /** Which checkpoint of a run directory (default 'latest'). */
  which?: 'latest' | 'best' | undefined;
  /** Also read the AdamW moments (to resume training). */
  optimizer?: boolean | undefined;
  /** Told, in one line, when a run's latest checkpoint could not be used and an earlier one is read instead. */
  onWarn?: ((message: string) => void) | undefined;
}

/**
 * Read a checkpoint: every file's size and sha256 checked against the manifest, every tensor's name,
 * dtype and shape against the model config the checkpoint records, every value finite. Throws
 * InputError naming the file or tensor, and the earlier checkpoint to use instead.
 *
 * A run directory's `latest` falls back to the newest intact checkpoint when the pointer is missing
 * (kill -9 between a checkpoint's rename and the pointer write) or names a damaged one, and says so
 * through `onWarn`. Not past a diverged checkpoint (the run's state, not damage: the user picks an
 * earlier one), nor for `best` or a checkpoint named explicitly (a specific one was asked for).
 */
export function readCheckpoint(path: string, opts: ReadCheckpointOptions = {}): LoadedCheckpoint {
  const which = opts.which ?? 'latest';
  const at = locate(path, which);
  if (at.root === undefined || which === 'best') {
    if (at.dir === undefined) throw noCheckpoint(at.root!, which, at.pointerProblem!);
    const dir = resolve(at.dir);
    try {
      return loadCheckpointDir(dir, opts);
    } catch (error) {
      throw error instanceof UnusableCheckpoint ? refusal(error, earlierThan(dir)) : error;
    }
  }
  return readLatest(resolve(at.root), at, opts);
}

/** The run's latest checkpoint, or the newest intact one before it (see readCheckpoint). */
function readLatest(root: string, at: Located, opts: ReadCheckpointOptions): LoadedCheckpoint {
  const newestFirst = checkpointNames(root).reverse();
  const named = at.dir === undefined ? undefined : basename(at.dir);
  const candidates = named === undefined ? newestFirst : [named, ...newestFirst.filter((n) => n < named)];
  if (candidates.length === 0) throw noCheckpoint(root, 'latest', at.pointerProblem!);
  const skipped: string[] = at.pointerProblem ? [at.pointerProblem] : [];
  let first: UnusableCheckpoint | undefined;
  for (const name of candidates) {
    try {
      const loaded = loadCheckpointDir(join(root, name), opts);
      if (skipped.length) opts.onWarn?.(`${skipped.join('; ')}; using ${loaded.dir}`);
      return loaded;
    } catch (error) {
      if (!(error instanceof UnusableCheckpoint)) throw error;
      if (error.diverged) throw refusal(error, earlierThan(error.dir));
      first ??= error;
      skipped.push(`${error.dir} is damaged (${error.reason})`);
    }
  }
  throw refusal(first!, undefined);
}

export const checkpointStep = (dir: string) => Number(basename(dir).slice('step-'.length));
