/** `lory report`: training runs as pictures — one self-contained HTML page, figures as SVG/PNG, live with --watch. */
import { statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { InputError, InterruptedError, LOCK_PREFIX } from '../../artifacts/index.js';
import { readRuns, RUN_FILES, type RunData } from '../../report/run-data.js';
import { defaultReportDir, nothingToDraw, readReportRuns, reportSummary, TRAINING_REPORT_FILES, writeTrainingReport, type TrainingReportResult } from '../../report/training.js';
import type { XAxis } from '../../report/training-figures.js';
import { log } from '../log.js';
import type { Progress } from '../progress.js';
import { runStageCommand } from '../stage-command.js';
import { positiveInt } from './prepare.js';

interface Flags {
  out?: string;
  x?: XAxis;
  watch?: boolean;
  interval: number;
  json?: boolean;
}

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('training runs as pictures: loss, validation, learning rate, grad norm, throughput, MFU and routing curves of one run or several side by side, in one self-contained report.html (and SVG/PNG figures)')
    .argument('<run...>', 'training run folders (made by lory train or lory run), finished or still training')
    .option('-o, --out <dir>', 'report folder (report.html, <figure>.svg/.png, summary.json); default: <out>/report for runs in a pipeline\'s <out>/runs/, else report beside the first run')
    .addOption(new Option('--x <axis>', 'x axis of the figures (default: steps for one run, tokens for several)').choices(['steps', 'tokens']))
    .option('--watch', 'redraw whenever a run logs more steps, until every run has finished (the page reloads itself)')
    .option('--interval <seconds>', 'with --watch: how often to look for new steps, and to reload the page', positiveInt, 5)
    .option('--json', 'print the summary table as JSON on stdout')
    .addHelpText(
      'after',
      `
Examples:
  $ lory report work/demo/runs/dense work/demo/runs/lory           # → work/demo/report/report.html
  $ lory report work/demo/runs/lory --x tokens -o work/lory-curves
  $ lory report work/run --watch                                    # leave report.html open in a browser`,
    )
    .action(async (dirs: string[], flags: Flags) => {
      const out = flags.out ?? defaultReportDir(dirs);
      await runStageCommand({ name: 'report', startText: 'reading the runs', interruptText: 'stopping the watch' }, async (progress, signal) => {
        const result = flags.watch ? await watch(dirs, out, flags, progress, signal) : await drawOnce(dirs, out, flags);
        progress.succeed(`wrote ${join(out, TRAINING_REPORT_FILES.html)}`);
        process.stdout.write(flags.json ? `${JSON.stringify(result.report.runs, null, 2)}\n` : reportSummary(result.report, out));
      });
    });
}

const xOption = (flags: Flags) => (flags.x ? { x: flags.x } : {});

function warnProblems(runs: RunData[]): void {
  for (const r of runs) {
    for (const p of r.problems) log.warn(`${join(r.dir, RUN_FILES.metrics)}: ${p}`);
    if (!r.steps.length) log.warn(`${r.dir}: no training step logged yet; drawn without it`);
  }
}

async function drawOnce(dirs: string[], out: string, flags: Flags): Promise<TrainingReportResult> {
  const runs = readReportRuns(dirs);
  warnProblems(runs);
  return writeTrainingReport(runs, { out, ...xOption(flags) });
}

/** What changes in a run folder as it trains: metrics.jsonl grows, the manifest appears, the lock goes. */
function signature(dirs: string[]): string {
  const mark = (path: string) => {
    try {
      const s = statSync(path);
      return `${s.size}:${s.mtimeMs}`;
    } catch {
      return '-'; // not there (yet, or any more)
    }
  };
  return dirs.map((d) => [join(d, RUN_FILES.metrics), join(d, 'manifest.json'), join(dirname(resolve(d)), `${LOCK_PREFIX}${basename(resolve(d))}`)].map(mark).join(',')).join(';');
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((done) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', () => (clearTimeout(timer), done()), { once: true });
  });

/**
 * Redraws whenever a run folder changes, the page reloading itself every --interval seconds; ends when
 * no run is training any more and each has finished or diverged (the last page does not reload), or
 * at Ctrl-C (exit 130; the last page stops reloading too).
 */
async function watch(dirs: string[], out: string, flags: Flags, progress: Progress, signal: AbortSignal): Promise<TrainingReportResult> {
  const say = (text: string) => (process.stderr.isTTY ? progress.update(text) : log.info(text));
  let seen = '';
  let last: TrainingReportResult | undefined;
  for (;;) {
    const now = signature(dirs);
    if (now !== seen) {
      seen = now;
      const runs = readRuns(dirs);
      const live = runs.some((r) => r.state === 'training');
      const nothing = nothingToDraw(runs);
      if (nothing && !live) throw new InputError(nothing);
      if (nothing) say(`waiting for the first step of ${runs.map((r) => r.name).join(', ')}`);
      else {
        const done = !live && runs.every((r) => r.state === 'finished' || r.state === 'diverged');
        last = await writeTrainingReport(runs, { out, ...xOption(flags), ...(done ? {} : { refreshSeconds: flags.interval }) });
        if (done) return last;
        say(`${join(out, TRAINING_REPORT_FILES.html)}: ${last.report.runs.map((s) => `${s.run} step ${s.steps}${s.plannedSteps ? `/${s.plannedSteps}` : ''}`).join(', ')}; watching`);
      }
    }
    await sleep(flags.interval * 1000, signal);
    if (signal.aborted) {
      // The page left open must stop reloading: draw it once more without the refresh.
      if (last) await writeTrainingReport(readReportRuns(dirs), { out, ...xOption(flags) });
      throw new InterruptedError(`stopped watching; ${join(out, TRAINING_REPORT_FILES.html)} ${last ? 'no longer reloads' : 'was not written (no step to draw yet)'}`);
    }
  }
}
