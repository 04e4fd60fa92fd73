/** `lory eval tasks`: checkpoints side by side on multiple-choice and generative tasks (docs/tasks.md). */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { join } from 'node:path';
import { evalTasksToDir, TASKS_FILES } from '../../eval/tasks/artifact.js';
import { evalTasks, type TasksOptions, type TasksProgress } from '../../eval/tasks/evaluate.js';
import { tasksJson, tasksMarkdown } from '../../eval/tasks/report.js';
import type { EvalRouting } from '../../eval/run-windows.js';
import { log } from '../log.js';
import { duration } from '../progress.js';
import { runStageCommand } from '../stage-command.js';
import { positiveInt } from './prepare.js';
import { addReportOptions, routingModes } from './eval.js';
import { openDevice } from '../../runtime/index.js';

interface Flags {
  tasks: string[];
  shots: number[];
  seed: number;
  routing: EvalRouting[];
  maxNewTokens: number;
  limit?: number;
  which: 'latest' | 'best';
  batch: number;
  threads?: number;
  device?: string;
  json?: boolean;
  out?: string;
  force?: boolean;
}

/** "0,5" → [0, 5]: distinct non-negative integers, in the order given. */
export function shotCounts(value: string): number[] {
  const parts = value.split(',').map((s) => s.trim());
  if (parts.some((s) => !/^\d+$/.test(s))) throw new InvalidArgumentError('must be non-negative integers separated by commas, e.g. 0,5');
  return [...new Set(parts.map(Number))];
}

function nonNegativeInt(value: string): number {
  if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError('must be a non-negative integer');
  return Number(value);
}

function describe(p: TasksProgress): string {
  const eta = p.done > 0 ? duration(((p.total - p.done) * p.elapsedMs) / p.done / 1000) : '?';
  const routing = p.routing === 'dense' ? '' : ` [${p.routing} routing]`;
  return `tasks: ${p.checkpoint}${routing}: ${p.task} ${p.shots}-shot: ${p.done}/${p.total} sequences and answers, ETA ${eta}`;
}

export function registerEvalTasks(evalCommand: Command): void {
  const tasks = evalCommand
    .command('tasks')
    .description('accuracy on multiple-choice tasks (by log-likelihood) and generative tasks (greedy, exact match), for one or more checkpoints side by side')
    .argument('<checkpoints...>', 'checkpoints (<run>/checkpoints/step-N) or run directories (made by `lory train`); the first is the baseline for relative change')
    .requiredOption('--tasks <paths...>', 'task files (JSONL: lory\'s format, or HellaSwag, PIQA, ARC, BoolQ, WinoGrande) or folders of them')
    .option('-k, --shots <list>', 'few-shot examples before each item, e.g. 0,5 (each a separate score)', shotCounts, [0])
    .option('--seed <n>', 'seeds the few-shot draws (the same seed gives the same prompts)', nonNegativeInt, 0)
    .addOption(new Option('--routing <mode>', "Lory routing: 'prompt' (decided on the context, the paper's inference mode), 'segment' (causal, as in training) or 'both'").default(['segment', 'prompt'], 'both').argParser(routingModes))
    .option('--max-new-tokens <n>', 'generative tasks: tokens generated at most', positiveInt, 32)
    .option('--limit <n>', 'score only the first n items of each task', positiveInt);
  addReportOptions(tasks, 'sequences', TASKS_FILES);
  tasks
    .addHelpText(
      'after',
      `
Examples:
  $ lory eval tasks work/run-dense work/run-lory --tasks work/tasks
  $ lory eval tasks work/run-lory --tasks hellaswag_val.jsonl piqa/valid.jsonl -k 0,5 --limit 500
  $ lory eval tasks work/run-lory --tasks work/tasks/continuation.jsonl --routing prompt --json -o work/eval-tasks`,
    )
    .action(async (checkpoints: string[], flags: Flags) => {
      await runStageCommand({ name: 'eval tasks', startText: 'reading checkpoints and tasks' }, async (progress, signal) => {
        const options: TasksOptions = {
          checkpoints,
          tasks: flags.tasks,
          shots: flags.shots,
          seed: flags.seed,
          routing: flags.routing,
          maxNewTokens: flags.maxNewTokens,
          which: flags.which,
          batch: flags.batch,
          signal,
          onProgress: (p) => progress.update(describe(p)),
          onWarn: (m) => log.warn(m),
          ...(flags.limit !== undefined ? { limit: flags.limit } : {}),
          ...(flags.threads !== undefined ? { threads: flags.threads } : {}),
          device: await openDevice(flags.device),
        };
        const started = Date.now();
        const { report, skipped } = flags.out ? await evalTasksToDir({ ...options, out: flags.out, force: flags.force ?? false }) : { report: await evalTasks(options), skipped: false };
        const where = flags.out ? ` (${join(flags.out, TASKS_FILES.markdown)}${skipped ? ', up to date; --force redoes it' : ''})` : '';
        const formats = report.tasks.map((t) => `${t.name}: ${t.format}`).join('; ');
        progress.succeed(`evaluated ${report.tasks.length} task(s) [${formats}] × ${report.results.length} checkpoint/routing combination(s) in ${duration((Date.now() - started) / 1000)}${where}`);
        process.stdout.write(flags.json ? tasksJson(report) : tasksMarkdown(report));
      });
    });
}
