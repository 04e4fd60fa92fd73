/**
 * `lory eval tasks`: checkpoints side by side on multiple-choice and generative tasks, each at every
 * requested number of shots, Lory checkpoints with each routing mode (score-choices.ts).
 */
import { InputError } from '../../artifacts/index.js';
import { loadTokenizer, type LoadedTokenizer } from '../../data/tokenizer.js';
import { Generator } from '../../generate/generate.js';
import { readCheckpoint, type LoadedCheckpoint } from '../../train/checkpoint.js';
import { ResidentParams } from '../forward.js';
import { checkpointInfo, routingRuns, type PerplexityResult } from '../perplexity.js';
import type { EvalRouting } from '../run-windows.js';
import { generateAnswers } from './generate-answers.js';
import { bestF1, choicePicks, exactMatch, mean, meanOfMeans, type Mean } from './metrics.js';
import { planTask, type AnswerPlan, type ChoicePlan, type TaskPlan } from './plan.js';
import { readTasks } from './read-tasks.js';
import { scoreSequences, type TaskRouting } from './score-choices.js';
import { LAYOUT_NAMES, type Task, type TaskKind, type TaskLayout } from './types.js';
import { CPU, type Device } from '../../runtime/index.js';

export interface TasksOptions {
  /** Checkpoint or run directories (the first is the baseline for relative change). */
  checkpoints: string[];
  /** Task files or folders of them. */
  tasks: string[];
  /** Few-shot counts, each a separate score (default [0]). */
  shots?: number[];
  /** Seeds the few-shot draws (default 0). */
  seed?: number;
  /** Routing modes for Lory checkpoints (default both). */
  routing?: EvalRouting[];
  /** Generative items: tokens generated at most (default 32). */
  maxNewTokens?: number;
  /** Score only the first n scorable items of each task. */
  limit?: number;
  /** Sequences per forward pass (default 8). */
  batch?: number;
  threads?: number;
  /** Where the forward passes run (default the CPU). */
  device?: Device;
  which?: 'latest' | 'best';
  signal?: AbortSignal;
  onProgress?(p: TasksProgress): void;
  onWarn?(message: string): void;
}

export interface TasksProgress {
  checkpoint: string;
  routing: TaskRouting;
  task: string;
  shots: number;
  /** Sequences scored and items generated, over the whole evaluation. */
  done: number;
  total: number;
  elapsedMs: number;
}

export interface TaskInfo {
  name: string;
  file: string;
  layout: TaskLayout;
  /** The layout in words, as the report states it. */
  format: string;
  kind: TaskKind;
  description?: string;
  /** Items scored (not in the few-shot pool; capped by --limit). */
  items: number;
  /** Items marked as few-shot examples (0: the pool is every other item). */
  fewshotItems: number;
}

export type SummaryMetric = 'acc_norm' | 'exact_match';

export interface TaskScore {
  task: string;
  shots: number;
  kind: TaskKind;
  items: number;
  acc?: Mean;
  accNorm?: Mean;
  exactMatch?: Mean;
  f1?: Mean;
  /** The metric the side-by-side table and the average use. */
  summaryMetric: SummaryMetric;
  summary: Mean;
  /** Items whose context was cut from the left to fit the window. */
  truncated: number;
  /** Segment routing: items with a choice whose first segment, routed with its own mean, held continuation tokens. */
  selfRouted?: number;
  /** Generative: why generation stopped, per reason. */
  stoppedBy?: Record<string, number>;
}

export interface TasksResult {
  checkpoint: PerplexityResult['checkpoint'];
  routing: TaskRouting;
  scores: TaskScore[];
  /** Per shot count: the mean over tasks of each task's summary metric. */
  average: Array<{ shots: number; summary: Mean }>;
}

export interface TasksReport {
  tasks: TaskInfo[];
  shots: number[];
  seed: number;
  maxNewTokens: number;
  results: TasksResult[];
}

interface Loaded {
  path: string;
  ckpt: LoadedCheckpoint;
  tok: LoadedTokenizer;
  runs: TaskRouting[];
  plans: TaskPlan[];
}

export interface PreparedTasks {
  tasks: Task[];
  info: TaskInfo[];
  shots: number[];
  seed: number;
  maxNewTokens: number;
  loaded: Loaded[];
}

const checkCount = (flag: string, v: number, min: number) => {
  if (!Number.isInteger(v) || v < min) throw new InputError(`${flag} ${v}: must be an integer ≥ ${min}`);
};

function taskInfo(t: Task, limit?: number): TaskInfo {
  const scorable = t.items.filter((i) => !i.fewshot).length;
  return {
    name: t.name,
    file: t.file,
    layout: t.layout,
    format: LAYOUT_NAMES[t.layout],
    kind: t.kind,
    ...(t.description !== undefined ? { description: t.description } : {}),
    items: limit !== undefined ? Math.min(limit, scorable) : scorable,
    fewshotItems: t.items.length - scorable,
  };
}

/** Read and check everything, and tokenize every prompt, before anything is scored. */
export async function prepareTasks(o: TasksOptions): Promise<PreparedTasks> {
  if (o.checkpoints.length === 0) throw new InputError('no checkpoint given');
  const shots = [...new Set(o.shots ?? [0])];
  for (const k of shots) checkCount('-k', k, 0);
  const seed = o.seed ?? 0;
  checkCount('--seed', seed, 0);
  const maxNewTokens = o.maxNewTokens ?? 32;
  checkCount('--max-new-tokens', maxNewTokens, 1);
  if (o.limit !== undefined) checkCount('--limit', o.limit, 1);
  const tasks = readTasks(o.tasks);
  const generative = tasks.some((t) => t.kind === 'generative');
  const tokenizers = new Map<string, LoadedTokenizer>();
  const plansFor = new Map<string, TaskPlan[]>();
  const loaded: Loaded[] = [];
  for (const path of o.checkpoints) {
    const ckpt = readCheckpoint(path, { which: o.which ?? 'latest', onWarn: o.onWarn });
    const C = ckpt.model.contextLength;
    if (generative && maxNewTokens >= C) throw new InputError(`--max-new-tokens ${maxNewTokens}: must be below the context length ${C} of ${ckpt.dir} (the context needs a position)`);
    let tok = tokenizers.get(ckpt.tokenizerHash);
    if (!tok) tokenizers.set(ckpt.tokenizerHash, (tok = loadTokenizer(ckpt.tokenizerPath)));
    const key = `${ckpt.tokenizerHash}/${C}`;
    let plans = plansFor.get(key);
    if (!plans) {
      plans = [];
      for (const t of tasks) for (const k of shots) plans.push(await planTask(t, { shots: k, seed, ...(o.limit !== undefined ? { limit: o.limit } : {}) }, tok, C));
      plansFor.set(key, plans);
    }
    loaded.push({ path, ckpt, tok, runs: routingRuns(ckpt.model, o.routing ?? ['segment', 'prompt']), plans });
  }
  return { tasks, info: tasks.map((t) => taskInfo(t, o.limit)), shots, seed, maxNewTokens, loaded };
}

const units = (p: TaskPlan) => (p.kind === 'multiple_choice' ? p.seqs.length : p.items.length);

function choiceScore(plan: ChoicePlan, logLik: Float64Array, selfRouted: Uint8Array, routing: TaskRouting): TaskScore {
  const n = plan.items.length;
  const acc = new Float64Array(n);
  const accNorm = new Float64Array(n);
  let truncated = 0;
  let self = 0;
  plan.items.forEach((i, m) => {
    const item = plan.task.items[i]!;
    const from = plan.first[m]!;
    const to = from + item.options.length;
    const { pick, pickNorm } = choicePicks(logLik.subarray(from, to), item.options.map((x) => x.continuation));
    acc[m] = pick === item.gold ? 1 : 0;
    accNorm[m] = pickNorm === item.gold ? 1 : 0;
    if (plan.seqs.slice(from, to).some((s) => s.dropped > 0)) truncated++;
    if (selfRouted.subarray(from, to).some((x) => x === 1)) self++;
  });
  const normed = mean(accNorm);
  return {
    task: plan.task.name,
    shots: plan.shots,
    kind: 'multiple_choice',
    items: n,
    acc: mean(acc),
    accNorm: normed,
    summaryMetric: 'acc_norm',
    summary: normed,
    truncated,
    ...(routing === 'segment' ? { selfRouted: self } : {}),
  };
}

async function answerScore(plan: AnswerPlan, gen: Generator, l: Loaded, o: TasksOptions, maxNewTokens: number, onDone: (n: number) => void): Promise<TaskScore> {
  const answers = await generateAnswers(gen, plan, l.tok, { maxNewTokens, ...(o.signal ? { signal: o.signal } : {}) }, onDone);
  const accepted = plan.items.map((i) => plan.task.items[i]!.answers);
  const exact = mean(answers.map((a, m) => exactMatch(a.text, accepted[m]!)));
  const stoppedBy: Record<string, number> = {};
  for (const a of answers) stoppedBy[a.stoppedBy] = (stoppedBy[a.stoppedBy] ?? 0) + 1;
  return {
    task: plan.task.name,
    shots: plan.shots,
    kind: 'generative',
    items: plan.items.length,
    exactMatch: exact,
    f1: mean(answers.map((a, m) => bestF1(a.text, accepted[m]!))),
    summaryMetric: 'exact_match',
    summary: exact,
    truncated: answers.filter((a) => a.dropped > 0).length,
    stoppedBy,
  };
}

/** Every checkpoint (each Lory one in every requested routing mode) on every task at every shot count. */
export async function evalTasks(o: TasksOptions, prepared?: PreparedTasks): Promise<TasksReport> {
  const p = prepared ?? (await prepareTasks(o));
  const total = p.loaded.reduce((a, l) => a + l.runs.length * l.plans.reduce((b, plan) => b + units(plan), 0), 0);
  let done = 0;
  const started = Date.now();
  const results: TasksResult[] = [];
  for (const l of p.loaded) {
    const c = l.ckpt.model;
    const params = new ResidentParams(c, l.ckpt.params, o.device ?? CPU);
    try {
      for (const routing of l.runs) {
        let gen: Generator | undefined;
        try {
          const scores: TaskScore[] = [];
          for (const plan of l.plans) {
            const report = () => o.onProgress?.({ checkpoint: l.path, routing, task: plan.task.name, shots: plan.shots, done, total, elapsedMs: Date.now() - started });
            const onDone = (n: number) => {
              done += n;
              report();
            };
            report();
            if (plan.kind === 'multiple_choice') {
              const s = await scoreSequences(params, plan.seqs, { routing, batch: o.batch ?? 8, pad: l.tok.eosId, ...(o.threads ? { threads: o.threads } : {}), ...(o.signal ? { signal: o.signal } : {}) }, onDone);
              scores.push(choiceScore(plan, s.logLik, s.selfRouted, routing));
            } else {
              // Token-level kinds decode without the cache (every token routes itself; see generate.ts).
              gen ??= await Generator.open(c, l.ckpt.params, l.tok.eosId, { ...(routing === 'segment' ? { routing: 'segment' } : {}), ...(routing === 'token' ? { cache: false } : {}), ...(o.threads ? { threads: o.threads } : {}), ...(o.device ? { device: o.device } : {}) });
              scores.push(await answerScore(plan, gen, l, o, p.maxNewTokens, onDone));
            }
          }
          const average = p.shots.map((k) => ({ shots: k, summary: meanOfMeans(scores.filter((s) => s.shots === k).map((s) => s.summary)) }));
          results.push({ checkpoint: checkpointInfo(l.ckpt, l.path), routing, scores, average });
        } finally {
          gen?.dispose();
        }
      }
    } finally {
      params.dispose();
    }
  }
  return { tasks: p.info, shots: p.shots, seed: p.seed, maxNewTokens: p.maxNewTokens, results };
}
