/**
 * The stages `lory run` runs, in order. Each registry entry expands into the concrete stages a
 * pipeline asks for (one per batching strategy, one per training run, …), each with its output under
 * `out:`. Every stage skips itself when its artifact's manifest is up to date (the stage functions
 * decide that), so rerunning after an interruption continues where it stopped. A stage added later
 * (evaluation, expert inspection) is one more entry in STAGES.
 *
 *   <out>/tokens            prepare          token store of data.train (+ tokenizer)
 *   <out>/heldout           prepare-heldout  token store of data.heldout with the same tokenizer
 *   <out>/embeddings        embed            document embeddings (similarity batching only)
 *   <out>/batches-<s>       batches-<s>      packed instances, one per batches.strategies entry
 *   <out>/runs/<name>       train-<name>     a training run per runs entry
 *   <out>/eval              eval-perplexity  perplexity per held-out domain of every run, side by side
 *   <out>/tasks             make-tasks       multiple-choice tasks from the held-out documents (tasks:)
 *   <out>/eval-tasks        eval-tasks       task accuracy of every run, side by side (tasks:)
 *   <out>/experts-<name>    inspect-<name>   expert routing report (report.html) per Lory run
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { InputError, writeTextAtomic } from '../artifacts/index.js';
import { buildBatches } from '../batching/build-batches.js';
import { prepare } from '../data/prepare.js';
import { embed } from '../embed/embed.js';
import { train, type TrainEvent, type TrainStats } from '../train/loop.js';
import { perplexitySummary } from '../eval/format.js';
import { evalPerplexityToDir, PERPLEXITY_FILES } from '../eval/report-artifact.js';
import type { PerplexityReport } from '../eval/perplexity.js';
import { evalTasksToDir, TASKS_FILES } from '../eval/tasks/artifact.js';
import type { TasksReport } from '../eval/tasks/evaluate.js';
import { comparison as tasksComparison } from '../eval/tasks/report.js';
import { makeTasks } from '../tasks/make-tasks.js';
import { inspectExperts, inspectSummary, type ExpertReport } from '../inspect/inspect.js';
import { isLoryMoe, moeKindName } from '../model/index.js';
import { resolvedRunConfig, type LoadedPipeline, type ResolvedRun } from './load.js';

export interface StageContext {
  loaded: LoadedPipeline;
  force: boolean;
  /** Training stages: continue a run whose config differs only in more train.steps. */
  extend?: boolean;
  /** Training stages: refuse a run whose memory estimate exceeds this machine's (default true). */
  memoryCheck?: boolean;
  signal?: AbortSignal;
  /** A line of progress for the current stage. */
  progress(text: string): void;
  /** Training events (per step), for a caller that shows or streams them. */
  onTrainEvent?(run: string, event: TrainEvent): void;
  /** A warning to show (a run's latest checkpoint unusable, an earlier one read instead). */
  warn?(message: string): void;
}

export interface StageOutcome {
  skipped: boolean;
  /** The artifact written (or found up to date). */
  output: string;
  stats?: unknown;
}

export interface PlannedStage {
  name: string;
  /** The registry entry it came from (for --from/--until by group). */
  group: string;
  output: string;
  describe: string;
  run(ctx: StageContext): Promise<StageOutcome>;
  /** Lines `lory run` prints at the end of its summary (e.g. the perplexity table). */
  summary?(outcome: StageOutcome): string;
}

export interface StageEntry {
  group: string;
  expand(p: LoadedPipeline): PlannedStage[];
}

const list = (x: string | string[] | undefined) => (x === undefined ? [] : Array.isArray(x) ? x : [x]);

export const outputs = (p: LoadedPipeline) => {
  const out = p.pipeline.out;
  return {
    tokens: join(out, 'tokens'),
    heldout: join(out, 'heldout'),
    embeddings: join(out, 'embeddings'),
    batches: (strategy: string) => join(out, `batches-${strategy}`),
    run: (name: string) => join(out, 'runs', name),
    eval: join(out, 'eval'),
    tasks: join(out, 'tasks'),
    evalTasks: join(out, 'eval-tasks'),
    experts: (name: string) => join(out, `experts-${name}`),
  };
};

const needsEmbeddings = (p: LoadedPipeline) => p.pipeline.batches.strategies.includes('similarity');

export const STAGES: StageEntry[] = [
  {
    group: 'prepare',
    expand: (p) => [
      {
        name: 'prepare',
        group: 'prepare',
        output: outputs(p).tokens,
        describe: 'tokenize data.train (training the tokenizer unless tokenizer.path is given)',
        run: async (ctx) => {
          const data = p.pipeline.data!;
          const tok = p.pipeline.tokenizer;
          const r = await prepare({
            inputs: list(data.train),
            out: outputs(p).tokens,
            ...(tok.path ? { tokenizer: tok.path, ...(tok.eos ? { eos: tok.eos } : {}) } : { vocabSize: tok.vocab_size }),
            textField: data.text_field,
            force: ctx.force,
            signal: ctx.signal,
            onProgress: (x) => ctx.progress(`prepare: ${x.phase}, ${x.documents} documents`),
          });
          return { skipped: r.skipped, output: outputs(p).tokens, stats: r.manifest.stats };
        },
      },
    ],
  },
  {
    group: 'prepare-heldout',
    expand: (p) =>
      p.pipeline.data?.heldout
        ? [
            {
              name: 'prepare-heldout',
              group: 'prepare-heldout',
              output: outputs(p).heldout,
              describe: 'tokenize data.heldout with the training tokenizer',
              run: async (ctx) => {
                const r = await prepare({
                  inputs: list(p.pipeline.data!.heldout),
                  out: outputs(p).heldout,
                  tokenizer: outputs(p).tokens,
                  textField: p.pipeline.data!.text_field,
                  force: ctx.force,
                  signal: ctx.signal,
                  onProgress: (x) => ctx.progress(`prepare-heldout: ${x.phase}, ${x.documents} documents`),
                });
                return { skipped: r.skipped, output: outputs(p).heldout, stats: r.manifest.stats };
              },
            },
          ]
        : [],
  },
  {
    group: 'embed',
    expand: (p) =>
      needsEmbeddings(p)
        ? [
            {
              name: 'embed',
              group: 'embed',
              output: outputs(p).embeddings,
              describe: 'embed every training document (similarity batching)',
              run: async (ctx) => {
                const e = p.pipeline.embed;
                const r = await embed({
                  tokens: outputs(p).tokens,
                  out: outputs(p).embeddings,
                  ...(e.encoder ? { encoder: e.encoder } : {}),
                  ...(e.encoder_tokenizer ? { encoderTokenizer: e.encoder_tokenizer } : {}),
                  maxTokens: e.max_tokens,
                  force: ctx.force,
                  signal: ctx.signal,
                  onProgress: (x) => ctx.progress(`embed: ${x.done}/${x.total} documents`),
                });
                return { skipped: r.skipped, output: outputs(p).embeddings, stats: r.manifest.stats };
              },
            },
          ]
        : [],
  },
  {
    group: 'batches',
    expand: (p) =>
      p.pipeline.batches.strategies.map((strategy) => ({
        name: `batches-${strategy}`,
        group: 'batches',
        output: outputs(p).batches(strategy),
        describe: `pack training instances in ${strategy} order`,
        run: async (ctx) => {
          const b = p.pipeline.batches;
          const r = await buildBatches({
            tokens: outputs(p).tokens,
            ...(needsEmbeddings(p) ? { embeddings: outputs(p).embeddings } : {}),
            out: outputs(p).batches(strategy),
            strategy,
            seqLen: b.seq_len,
            k: b.k,
            seed: b.seed,
            validFraction: b.valid_fraction,
            dedup: b.dedup,
            force: ctx.force,
            signal: ctx.signal,
            onProgress: (phase) => ctx.progress(`batches-${strategy}: ${phase}`),
          });
          return { skipped: r.skipped, output: outputs(p).batches(strategy), stats: r.manifest.stats };
        },
      })),
  },
  {
    group: 'train',
    expand: (p) => p.runs.map((run) => trainStage(p, run)),
  },
  {
    group: 'eval',
    expand: (p) => (p.pipeline.data?.heldout && p.runs.length ? [evalStage(p)] : []),
  },
  {
    group: 'tasks',
    expand: (p) => (p.pipeline.tasks && p.pipeline.data?.heldout && p.runs.length ? [makeTasksStage(p), evalTasksStage(p)] : []),
  },
  {
    group: 'inspect',
    expand: (p) => (p.pipeline.data?.heldout ? p.runs.filter((r) => isLoryMoe(r.model)).map((r) => inspectStage(p, r)) : []),
  },
];

/** Perplexity of every run's latest checkpoint on the held-out store, the first run as the baseline. */
function evalStage(p: LoadedPipeline): PlannedStage {
  return {
    name: 'eval-perplexity',
    group: 'eval',
    output: outputs(p).eval,
    describe: `perplexity per held-out domain of ${p.runs.map((r) => r.name).join(', ')} (segment and prompt routing)`,
    run: async (ctx) => {
      const r = await evalPerplexityToDir({
        checkpoints: p.runs.map((run) => outputs(p).run(run.name)),
        data: outputs(p).heldout,
        out: outputs(p).eval,
        force: ctx.force,
        ...(ctx.signal ? { signal: ctx.signal } : {}),
        ...(ctx.warn ? { onWarn: ctx.warn } : {}),
        onProgress: (x) => ctx.progress(`eval-perplexity: ${x.checkpoint} [${x.routing}] ${x.windowsDone}/${x.windowsTotal} windows`),
      });
      return { skipped: r.skipped, output: outputs(p).eval, stats: r.report };
    },
    summary: (outcome) => `\n${perplexitySummary(outcome.stats as PerplexityReport)}(every table, with definitions: ${join(outcome.output, PERPLEXITY_FILES.markdown)})\n`,
  };
}

/** Multiple-choice tasks from the held-out documents (continuation, domain, code cloze). */
function makeTasksStage(p: LoadedPipeline): PlannedStage {
  const t = p.pipeline.tasks!;
  const maxContextTokens = t.max_context_tokens ?? Math.floor(Math.min(...p.runs.map((r) => r.model.contextLength)) / 2);
  return {
    name: 'make-tasks',
    group: 'tasks',
    output: outputs(p).tasks,
    describe: `${t.items} items per task from the held-out documents (seed ${t.seed})`,
    run: async (ctx) => {
      const r = await makeTasks({ store: outputs(p).heldout, out: outputs(p).tasks, seed: t.seed, items: t.items, fewshot: t.fewshot, maxContextChars: t.max_context_chars, maxContextTokens, force: ctx.force, ...(ctx.signal ? { signal: ctx.signal } : {}) });
      return { skipped: r.skipped, output: outputs(p).tasks, stats: r.manifest.stats };
    },
  };
}

/** Every run's latest checkpoint on the made tasks (and tasks.files), side by side, the first run as the baseline. */
function evalTasksStage(p: LoadedPipeline): PlannedStage {
  const t = p.pipeline.tasks!;
  return {
    name: 'eval-tasks',
    group: 'tasks',
    output: outputs(p).evalTasks,
    describe: `${t.shots.map((k) => `${k}-shot`).join(' and ')} task accuracy of ${p.runs.map((r) => r.name).join(', ')}`,
    run: async (ctx) => {
      const r = await evalTasksToDir({
        checkpoints: p.runs.map((run) => outputs(p).run(run.name)),
        tasks: [outputs(p).tasks, ...t.files],
        shots: t.shots,
        seed: t.seed,
        out: outputs(p).evalTasks,
        force: ctx.force,
        ...(ctx.signal ? { signal: ctx.signal } : {}),
        ...(ctx.warn ? { onWarn: ctx.warn } : {}),
        onProgress: (x) => ctx.progress(`eval-tasks: ${x.checkpoint} [${x.routing}] ${x.task} ${x.shots}-shot, ${x.done}/${x.total} sequences`),
      });
      return { skipped: r.skipped, output: outputs(p).evalTasks, stats: r.report };
    },
    summary: (outcome) => `
${tasksComparison(outcome.stats as TasksReport)}
(every table, with definitions: ${join(outcome.output, TASKS_FILES.markdown)})
`,
  };
}

/** Expert routing of a Lory run's latest checkpoint on the held-out documents, by domain. */
function inspectStage(p: LoadedPipeline, run: ResolvedRun): PlannedStage {
  return {
    name: `inspect-${run.name}`,
    group: 'inspect',
    output: outputs(p).experts(run.name),
    describe: `expert routing of '${run.name}' by held-out domain (report.html)`,
    run: async (ctx) => {
      const r = await inspectExperts({
        checkpoint: outputs(p).run(run.name),
        data: outputs(p).heldout,
        out: outputs(p).experts(run.name),
        force: ctx.force,
        ...(ctx.signal ? { signal: ctx.signal } : {}),
        ...(ctx.warn ? { onWarn: ctx.warn } : {}),
        onProgress: (done, total) => ctx.progress(`inspect-${run.name}: ${done}/${total} windows`),
      });
      return { skipped: r.skipped, output: r.dir, stats: r.report };
    },
    summary: (outcome) => `\nexpert routing of '${run.name}':\n${inspectSummary(outcome.stats as ExpertReport, outcome.output)}`,
  };
}

function trainStage(p: LoadedPipeline, run: ResolvedRun): PlannedStage {
  return {
    name: `train-${run.name}`,
    group: 'train',
    output: outputs(p).run(run.name),
    describe: `train '${run.name}' (${run.model.experts > 1 ? `${moeKindName(run.model)}, ${run.model.experts} experts` : 'dense'}) on ${run.batches} batches`,
    run: async (ctx) => {
      const r = await train({
        batches: outputs(p).batches(run.batches),
        out: outputs(p).run(run.name),
        model: run.model,
        train: run.train,
        config: resolvedRunConfig(p, run),
        force: ctx.force,
        extend: ctx.extend ?? false,
        memoryCheck: ctx.memoryCheck ?? true,
        restartHint: `rerun with --from train-${run.name} --force to start it over`,
        ...(ctx.signal ? { signal: ctx.signal } : {}),
        ...(ctx.warn ? { onWarn: ctx.warn } : {}),
        onEvent: (e) => ctx.onTrainEvent?.(run.name, e),
      });
      return { skipped: r.skipped, output: outputs(p).run(run.name), stats: r.manifest?.stats as TrainStats | undefined };
    },
  };
}

/** The stages of a pipeline in order, cut to [from, until] (stage names or groups). */
export function planStages(p: LoadedPipeline, range: { from?: string; until?: string } = {}): PlannedStage[] {
  const all = STAGES.flatMap((s) => s.expand(p));
  const find = (key: string, last: boolean) => {
    const idx = all.map((s, i) => (s.name === key || s.group === key ? i : -1)).filter((i) => i >= 0);
    if (!idx.length) throw new InputError(`no stage '${key}' in this pipeline; its stages: ${all.map((s) => s.name).join(', ')}`);
    return last ? idx[idx.length - 1]! : idx[0]!;
  };
  const from = range.from ? find(range.from, false) : 0;
  const until = range.until ? find(range.until, true) : all.length - 1;
  if (from > until) throw new InputError(`--from ${range.from} comes after --until ${range.until}`);
  return all.slice(from, until + 1);
}

/** The resolved pipeline (defaults filled in, each run's model and train settings) beside the artifacts it makes. */
export function writeResolvedPipeline(p: LoadedPipeline): string {
  const path = join(p.pipeline.out, 'pipeline.resolved.json');
  mkdirSync(p.pipeline.out, { recursive: true });
  const resolved = { source: resolve(p.file), ...p.pipeline, runs: p.runs.map((run) => resolvedRunConfig(p, run)) };
  writeTextAtomic(path, `${JSON.stringify(resolved, null, 2)}\n`);
  return path;
}
