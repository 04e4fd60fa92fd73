/**
 * A training run folder as `lory report` reads it: metrics.jsonl (step and validation lines), the
 * resolved config, the run manifest when training finished, and whether a process is still training
 * it (a lock beside the folder holding a live pid). Bad lines never stop the reading: a torn last line
 * (the trainer is mid-write) is left out, an unreadable line or a non-finite loss (JSON writes NaN as
 * null) becomes a gap that the figures mark.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { asEnvironmentError, describeKind, InputError, LOCK_PREFIX, pidAlive, tryReadManifest } from '../artifacts/index.js';

/** The files of a run folder this module reads (src/train/run-dir.ts writes them). */
export const RUN_FILES = { metrics: 'metrics.jsonl', config: 'config.json' } as const;
const RUN_KIND = 'run';

export interface RoutingRow {
  layer: number;
  entropy: number | null;
  utilisation: number[];
  cv: number | null;
}

export interface StepRow {
  step: number;
  tokens: number;
  phase: string | null;
  /** null: the trainer logged a non-finite value (JSON has no NaN). */
  loss: number | null;
  lr: number | null;
  gradNorm: number | null;
  tokensPerSecond: number | null;
  mfu: number | null;
  stepMs: number | null;
  routing: RoutingRow[] | null;
}

export interface ValidRow {
  step: number;
  tokens: number;
  loss: number | null;
}

export type RunState = 'finished' | 'training' | 'stopped' | 'diverged';

export interface RunData {
  /** The folder as the user named it. */
  dir: string;
  /** Its name in legends and tables (the folder's name, with its parent's when two runs share it). */
  name: string;
  state: RunState;
  /** The pid training it, when state is 'training'. */
  pid: number | null;
  /** The resolved config (config.json, else the manifest's params); null when neither is readable. */
  config: Record<string, unknown> | null;
  steps: StepRow[];
  valid: ValidRow[];
  /** What was wrong with metrics.jsonl, one phrase each (shown on the page and on stderr). */
  problems: string[];
  /** sha256 of metrics.jsonl as read (the report manifest's input hash for an unfinished run). */
  metricsSha256: string;
  /** The run manifest's contentHash, when training finished. */
  contentHash: string | null;
}

const NOT_A_RUN = 'expected a training run folder (made by lory train or lory run)';

/** Reads one run folder; anything that is not a run is an InputError naming the path. */
export function readRun(dir: string): RunData {
  try {
    return readRunFolder(dir);
  } catch (error) {
    throw asEnvironmentError(error);
  }
}

function readRunFolder(dir: string): RunData {
  const abs = resolve(dir);
  if (!existsSync(abs)) throw new InputError(`${dir}: not found; ${NOT_A_RUN}`);
  if (!statSync(abs).isDirectory()) {
    const hint = basename(abs) === RUN_FILES.metrics ? ` — give its folder, ${dirname(dir)}` : '';
    throw new InputError(`${dir}: is a file; ${NOT_A_RUN}${hint}`);
  }
  const manifest = tryReadManifest(abs);
  if (manifest && manifest.kind !== RUN_KIND) {
    const hint = manifest.kind === 'checkpoint' ? `; give the run folder that holds it (${dirname(dirname(dir))})` : '';
    throw new InputError(`${dir}: is ${describeKind(manifest.kind)}, not a training run${hint}`);
  }
  const metricsPath = join(abs, RUN_FILES.metrics);
  const pid = livePid(abs);
  const hasMetrics = existsSync(metricsPath);
  if (!hasMetrics) {
    if (manifest) throw new InputError(`${join(dir, RUN_FILES.metrics)}: missing, but the run manifest lists it; the run folder is damaged`);
    // A run being set up (memory check, peak measurement) has its config and lock before its first line.
    if (pid === null && !existsSync(join(abs, RUN_FILES.config))) throw new InputError(`${dir}: not a training run (no ${RUN_FILES.metrics}); ${NOT_A_RUN}${runsHint(abs, dir)}`);
  }
  const bytes = hasMetrics ? readFileSync(metricsPath) : Buffer.alloc(0);
  const metrics = parseMetrics(bytes.toString('utf8'));
  const last = metrics.steps.at(-1);
  const state: RunState = pid !== null ? 'training' : manifest ? 'finished' : last && last.loss === null ? 'diverged' : 'stopped';
  return {
    dir,
    name: basename(abs),
    state,
    pid,
    config: readConfig(abs) ?? (manifest?.params as Record<string, unknown> | undefined) ?? null,
    steps: metrics.steps,
    valid: metrics.valid,
    problems: metrics.problems,
    metricsSha256: createHash('sha256').update(bytes).digest('hex'),
    contentHash: manifest?.contentHash ?? null,
  };
}

/** A pipeline's output folder holds its runs in runs/: say so to whoever names the folder itself. */
function runsHint(abs: string, dir: string): string {
  const runs = join(abs, 'runs');
  return existsSync(runs) && statSync(runs).isDirectory() ? `; it holds runs/ — give the runs in it, e.g. ${join(dir, 'runs', '*')}` : '';
}

/** The pid in the lock beside the folder, when that process is alive. */
function livePid(abs: string): number | null {
  const lock = join(dirname(abs), `${LOCK_PREFIX}${basename(abs)}`);
  if (!existsSync(lock)) return null;
  let pid = NaN;
  try {
    pid = Number.parseInt(readFileSync(lock, 'utf8'), 10);
  } catch {
    return null; // removed meanwhile: the writer finished
  }
  return Number.isInteger(pid) && pid > 0 && pidAlive(pid) ? pid : null;
}

function readConfig(abs: string): Record<string, unknown> | null {
  try {
    const parsed: unknown = JSON.parse(readFileSync(join(abs, RUN_FILES.config), 'utf8'));
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : null;
  } catch {
    return null; // a run still being set up, or a damaged config: the report draws without it
  }
}

export interface ParsedMetrics {
  steps: StepRow[];
  valid: ValidRow[];
  problems: string[];
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * The step and validation lines of a metrics.jsonl text, in step order (a step logged twice keeps its
 * last line). Lines that cannot be read are counted in `problems` with their line numbers.
 */
export function parseMetrics(text: string): ParsedMetrics {
  const steps = new Map<number, StepRow>();
  const valid = new Map<number, ValidRow>();
  const bad: number[] = [];
  let torn = false;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line.trim()) continue;
    const record = parseLine(line);
    if (record === undefined) {
      // The last line without its newline is one the trainer is still writing.
      if (i === lines.length - 1) torn = true;
      else bad.push(i + 1);
      continue;
    }
    if (record.type === 'step') {
      const row = stepRow(record);
      if (row) steps.set(row.step, row);
      else bad.push(i + 1);
    } else if (record.type === 'valid') {
      if (isCount(record.step) && isCount(record.tokens)) valid.set(record.step, { step: record.step, tokens: record.tokens, loss: num(record.loss) });
      else bad.push(i + 1);
    }
  }
  const problems: string[] = [];
  if (bad.length) problems.push(`${bad.length} unreadable line${bad.length > 1 ? 's' : ''} skipped (line ${bad.slice(0, 3).join(', ')}${bad.length > 3 ? ', …' : ''})`);
  if (torn) problems.push(`the last line is incomplete (being written, or cut off) and was left out`);
  return { steps: [...steps.values()].sort((a, b) => a.step - b.step), valid: [...valid.values()].sort((a, b) => a.step - b.step), problems };
}

function parseLine(line: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(line);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function stepRow(r: Record<string, unknown>): StepRow | undefined {
  if (!isCount(r.step) || !isCount(r.tokens)) return undefined;
  return {
    step: r.step,
    tokens: r.tokens,
    phase: typeof r.phase === 'string' ? r.phase : null,
    loss: num(r.loss),
    lr: num(r.lr),
    gradNorm: num(r.gradNorm),
    tokensPerSecond: num(r.tokensPerSecond),
    mfu: num(r.mfu),
    stepMs: num(r.stepMs),
    routing: Array.isArray(r.routing) ? r.routing.flatMap(routingRow) : null,
  };
}

function routingRow(v: unknown): RoutingRow[] {
  const r = v as Record<string, unknown> | null;
  if (typeof r !== 'object' || r === null || !isCount(r.layer)) return [];
  return [{ layer: r.layer, entropy: num(r.entropy), utilisation: Array.isArray(r.utilisation) ? r.utilisation.map((u) => num(u) ?? 0) : [], cv: num(r.cv) }];
}

/** Runs as a list: each read, names made unique (parent/name when two folders share a name). */
export function readRuns(dirs: string[]): RunData[] {
  const seen = new Set<string>();
  for (const d of dirs) {
    if (seen.has(resolve(d))) throw new InputError(`${d}: named twice; give each run once`);
    seen.add(resolve(d));
  }
  const runs = dirs.map(readRun);
  const shared = new Set(runs.filter((r) => runs.some((o) => o !== r && o.name === r.name)).map((r) => r.name));
  for (const r of runs) if (shared.has(r.name)) r.name = `${basename(dirname(resolve(r.dir)))}/${r.name}`;
  return runs;
}
