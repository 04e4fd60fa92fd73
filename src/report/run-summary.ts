/**
 * The numbers of a run that the report's table shows (and `lory report --json` prints), all taken from
 * its metrics.jsonl and config. The definitions follow the trainer's (src/train/loop.ts), so a finished run's numbers equal its
 * manifest's stats: final loss = the last step's, valid loss = the last validation's, median = the
 * upper middle value.
 */
import { moeKindName } from '../model/index.js';
import type { RunData, RunState } from './run-data.js';
import { findGaps } from './series.js';

export interface RunSummary {
  run: string;
  dir: string;
  state: RunState;
  /** The process training it (state 'training'). */
  pid: number | null;
  model: string | null;
  /** The last step logged, and the steps the config plans. */
  steps: number;
  plannedSteps: number | null;
  tokens: number;
  /** The last step's training loss (null: not finite). */
  finalLoss: number | null;
  validLoss: number | null;
  validStep: number | null;
  /** The lowest validation loss logged, and its step. */
  lowestValidLoss: number | null;
  lowestValidStep: number | null;
  /** The last dense step before the switch to experts (a Lory run's dense warm-up). */
  convertedAt: number | null;
  medianTokensPerSecond: number | null;
  medianMfu: number | null;
  clipNorm: number | null;
  /** Steps whose gradient norm exceeded clip_norm (so the update was clipped). */
  clippedSteps: number;
  /** Steps with a non-finite loss, or missing. */
  badSteps: number;
  /** The steps' time added up (every session of a resumed run; validation and checkpoints not counted). */
  stepSeconds: number;
  problems: string[];
}

const get = (o: unknown, ...path: string[]): unknown => path.reduce<unknown>((v, k) => (typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[k] : undefined), o);
const numberOr = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** The trainer's median: the upper middle of the sorted values. */
export function median(xs: number[]): number | null {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** "Lory 4E, 4×128" / "dense, 4×128" from a resolved config's model section. */
export function describeModel(config: Record<string, unknown> | null): string | null {
  const m = get(config, 'model');
  const experts = numberOr(get(m, 'experts'));
  const layers = numberOr(get(m, 'n_layers'));
  const d = numberOr(get(m, 'd_model'));
  if (experts === null || layers === null || d === null) return null;
  const kind = experts > 1 ? `${moeKindName({ moe: (get(m, 'moe') as 'lory' | 'top_k' | 'expert_choice' | undefined) ?? 'lory', topK: numberOr(get(m, 'top_k')) ?? 1 })} ${experts}E` : 'dense';
  return `${kind}, ${layers}×${d}`;
}

/** The conversion step: the last "dense" step followed by an MoE step. */
export function conversionStep(r: Pick<RunData, 'steps'>): number | null {
  const first = r.steps.findIndex((s) => s.phase === 'moe');
  return first > 0 && r.steps[first - 1]!.phase === 'dense' ? r.steps[first - 1]!.step : null;
}

export function summarise(r: RunData): RunSummary {
  const last = r.steps.at(-1);
  const lastValid = r.valid.at(-1);
  const finiteValid = r.valid.filter((v) => v.loss !== null);
  const lowest = finiteValid.reduce<(typeof finiteValid)[number] | undefined>((best, v) => (!best || v.loss! < best.loss! ? v : best), undefined);
  const clipNorm = numberOr(get(r.config, 'train', 'clip_norm'));
  const gaps = findGaps(r.steps);
  return {
    run: r.name,
    dir: r.dir,
    state: r.state,
    pid: r.pid,
    model: describeModel(r.config),
    steps: last?.step ?? 0,
    plannedSteps: numberOr(get(r.config, 'train', 'steps')),
    tokens: last?.tokens ?? 0,
    finalLoss: last?.loss ?? null,
    validLoss: lastValid?.loss ?? null,
    validStep: lastValid?.step ?? null,
    lowestValidLoss: lowest?.loss ?? null,
    lowestValidStep: lowest?.step ?? null,
    convertedAt: conversionStep(r),
    medianTokensPerSecond: median(r.steps.flatMap((s) => (s.tokensPerSecond === null ? [] : [s.tokensPerSecond]))),
    medianMfu: median(r.steps.flatMap((s) => (s.mfu === null ? [] : [s.mfu]))),
    clipNorm: clipNorm && clipNorm > 0 ? clipNorm : null,
    clippedSteps: clipNorm && clipNorm > 0 ? r.steps.filter((s) => s.gradNorm !== null && s.gradNorm > clipNorm).length : 0,
    badSteps: gaps.reduce((n, g) => n + g.to - g.from + 1, 0),
    stepSeconds: r.steps.reduce((t, s) => t + (s.stepMs ?? 0), 0) / 1000,
    problems: r.problems,
  };
}

/** A config as dotted keys (strings as they are, arrays and the rest as JSON), for tables and for comparing runs. */
export function flattenConfig(value: unknown, prefix = ''): Array<[string, string]> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return prefix ? [[prefix, typeof value === 'string' ? value : (JSON.stringify(value) ?? 'null')]] : [];
  return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) => flattenConfig(v, prefix ? `${prefix}.${k}` : k));
}

export interface ConfigDifference {
  key: string;
  /** One per run; null where the run's config lacks the key. */
  values: Array<string | null>;
}

/** The config keys whose values are not the same in every run. */
export function configDifferences(configs: Array<Record<string, unknown> | null>): ConfigDifference[] {
  const flat = configs.map((c) => new Map(flattenConfig(c ?? {})));
  const keys = [...new Set(flat.flatMap((m) => [...m.keys()]))];
  return keys
    .map((key) => ({ key, values: flat.map((m) => m.get(key) ?? null) }))
    .filter((d) => new Set(d.values).size > 1);
}
