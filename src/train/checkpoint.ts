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
import { copyFileSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { InputError, pidAlive, readManifest, runStage, tryReadManifest, type InputRef } from '../artifacts/index.js';
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
  /** AdamW moments by parameter name, when read with { optimizer: true } (additive). */
  adam?: { m: Record<string, ParamArray>; v: Record<string, ParamArray> };
}

export const checkpointName = (step: number) => `step-${String(step).padStart(9, '0')}`;

/** Replace a small text file atomically (temp file + rename). */
function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

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
  writeAtomic(join(root, FILES.latest), `${name}\n`);
  if (options.isBest) writeAtomic(join(root, FILES.best), `${name}\n`);
  return join(root, name);
}

/** Checkpoint directories of a run, oldest first. */
export function listCheckpoints(runDir: string): string[] {
  const root = join(runDir, CHECKPOINTS_DIR);
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((n) => /^step-\d{9}$/.test(n) && existsSync(join(root, n, 'manifest.json')))
    .sort();
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

/** A checkpoint dir, or a run dir (→ checkpoints/<which>), or a checkpoints/ dir. */
export function resolveCheckpointDir(path: string, which: 'latest' | 'best' = 'latest'): string {
  if (!existsSync(path)) throw new InputError(`${path}: not found; expected a checkpoint or a run directory (made by \`lory train\`)`);
  if (!statSync(path).isDirectory()) throw new InputError(`${path}: is a file; expected a checkpoint or a run directory`);
  const manifest = tryReadManifest(path);
  if (manifest?.kind === CHECKPOINT_KIND) return path;
  const root = existsSync(join(path, CHECKPOINTS_DIR)) ? join(path, CHECKPOINTS_DIR) : existsSync(join(path, FILES.latest)) ? path : undefined;
  if (!root) {
    const what = manifest ? `a ${manifest.kind}` : 'not a lory artifact';
    throw new InputError(`${path}: ${what}; expected a checkpoint or a run directory (made by \`lory train\`)`);
  }
  const name = readPointer(root, which);
  if (!name) {
    const why = which === 'best' ? ' (no validation loss was recorded yet)' : '';
    throw new InputError(`${join(root, which)}: missing; the run has no ${which} checkpoint${why}`);
  }
  const dir = join(root, name);
  if (!existsSync(dir)) throw new InputError(`${join(root, which)}: names ${name}, which does not exist`);
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

/**
 * Read a checkpoint: every file's size and sha256 checked against the manifest, every tensor's name,
 * dtype and shape against the model config the checkpoint records. Throws InputError naming the
 * file or tensor.
 */
export function readCheckpoint(path: string, opts: { which?: 'latest' | 'best'; optimizer?: boolean } = {}): LoadedCheckpoint {
  const dir = resolve(resolveCheckpointDir(path, opts.which));
  const manifest = readManifest(dir, CHECKPOINT_KIND, CHECKPOINT_VERSION);
  const contents = new Map<string, Buffer>();
  for (const [name, entry] of Object.entries(manifest.files)) {
    if (name === FILES.optimizer && !opts.optimizer) continue;
    const buf = readFileSync(join(dir, name));
    if (sha256(buf) !== entry.sha256) throw new InputError(`${join(dir, name)}: damaged (sha256 differs from the manifest); use an earlier checkpoint`);
    contents.set(name, buf);
  }
  for (const f of [FILES.model, FILES.state, FILES.config, FILES.tokenizer]) {
    if (!(f in manifest.files)) throw new InputError(`${dir}: checkpoint lacks ${f}`);
  }
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
  const loaded: LoadedCheckpoint = {
    dir,
    step: state.step,
    model,
    config,
    params,
    tokenizerPath: join(dir, FILES.tokenizer),
    tokenizerHash: manifest.files[FILES.tokenizer]!.sha256,
    state,
  };
  if (opts.optimizer) {
    if (!(FILES.optimizer in manifest.files)) throw new InputError(`${dir}: checkpoint holds no ${FILES.optimizer}; it cannot resume training`);
    const optFile = join(dir, FILES.optimizer);
    const opt = readTensors(optFile).tensors;
    loaded.adam = { m: takeTensors(optFile, opt, specs, model.dtype, ADAM_M), v: takeTensors(optFile, opt, specs, model.dtype, ADAM_V) };
  }
  return loaded;
}

export const checkpointStep = (dir: string) => Number(basename(dir).slice('step-'.length));
