/**
 * `lory report`: training runs as pictures. Reads each run folder (finished or still training) and
 * writes, atomically and with a manifest, one folder:
 *   report.html        the runs side by side: summary table, config differences, every figure inline
 *   <figure>.svg/.png  each figure alone (loss, valid-loss, lr, grad-norm, throughput, mfu, routing-*)
 *   summary.json       the summary table (what --json prints)
 */
import { existsSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { InputError, runStage, toolVersion, type InputRef } from '../artifacts/index.js';
import type { HtmlFigure } from './html.js';
import { renderFigure } from './render.js';
import { readRuns, RUN_FILES, type RunData } from './run-data.js';
import { summarise } from './run-summary.js';
import { trainingFigures, type XAxis } from './training-figures.js';
import { legendLabel, stateText, trainingReportHtml, type TrainingReport } from './training-html.js';

export const TRAINING_REPORT_KIND = 'training-report';
export const TRAINING_REPORT_VERSION = 1;
export const TRAINING_REPORT_FILES = { html: 'report.html', summary: 'summary.json' } as const;

export interface TrainingReportOptions {
  out: string;
  /** Default: steps for one run, tokens seen for several. */
  x?: XAxis;
  /** Make the page reload itself every so many seconds (lory report --watch, while a run trains). */
  refreshSeconds?: number;
  /** Points per line before downsampling starts (tests; default series.ts's). */
  buckets?: number;
}

export interface TrainingReportResult {
  dir: string;
  report: TrainingReport;
  /** The figures drawn, by id. */
  figures: string[];
}

/** Where the report goes by default: `<out>/report` for a pipeline's `<out>/runs/<run>`, else `report` beside the first run. */
export function defaultReportDir(runs: string[]): string {
  const parent = dirname(runs[0]!.replace(/\/+$/, '') || '/');
  return basename(resolve(parent)) === 'runs' ? join(parent, '..', 'report') : join(parent, 'report');
}

/** Why nothing can be drawn (not one run has a step), or undefined. */
export function nothingToDraw(runs: RunData[]): string | undefined {
  if (runs.some((r) => r.steps.length > 0)) return undefined;
  const why = (r: RunData) => `${join(r.dir, 'metrics.jsonl')} ${r.problems.length ? `has no readable step line (${r.problems.join('; ')})` : 'holds no training step yet'}`;
  return `nothing to draw: ${runs.map(why).join('; ')}`;
}

/** The runs, read; an InputError when not one of them has a step to draw. */
export function readReportRuns(dirs: string[]): RunData[] {
  if (!dirs.length) throw new InputError('give at least one run folder');
  const runs = readRuns(dirs);
  const nothing = nothingToDraw(runs);
  if (nothing) throw new InputError(nothing);
  return runs;
}

/** The report's inputs: a finished run by its manifest's contentHash, an unfinished one by its metrics' sha256. */
const inputOf = (r: RunData): InputRef => ({ role: 'run', path: r.dir, kind: 'run', hash: r.contentHash ?? r.metricsSha256 });

/** Refuses an output inside a run folder: a later lory train --force would refuse to delete the run's unknown files. */
function checkOut(out: string, runs: RunData[]): void {
  const o = resolve(out);
  for (const r of runs) {
    const rel = relative(resolve(r.dir), o);
    if (rel === '' || (!rel.startsWith('..') && !rel.startsWith('/'))) throw new InputError(`-o ${out}: inside the run folder ${r.dir}; choose a folder outside it (default: ${defaultReportDir([r.dir])})`);
  }
}

export async function writeTrainingReport(runs: RunData[], o: TrainingReportOptions): Promise<TrainingReportResult> {
  checkOut(o.out, runs);
  const x = o.x ?? (runs.length > 1 ? 'tokens' : 'steps');
  const summaries = runs.map(summarise);
  const report: TrainingReport = { tool: toolVersion(), x, runs: summaries };
  const specs = trainingFigures(
    runs.map((r, i) => ({ label: legendLabel(summaries[i]!), data: r })),
    x,
    o.buckets,
  );
  await runStage<TrainingReport>({
    out: o.out,
    kind: TRAINING_REPORT_KIND,
    formatVersion: TRAINING_REPORT_VERSION,
    inputs: runs.map(inputOf),
    params: { runs: runs.map((r) => r.name), x },
    // A report is a view of runs that may still be training: always drawn anew (it takes seconds).
    force: true,
    build: async (dir) => {
      const figures: HtmlFigure[] = [];
      for (const f of specs) {
        const rendered = await renderFigure(f.spec);
        writeFileSync(join(dir, `${f.id}.svg`), rendered.svg);
        writeFileSync(join(dir, `${f.id}.png`), rendered.png);
        figures.push({ id: f.id, title: f.title, caption: f.caption, svg: rendered.svg });
      }
      writeFileSync(join(dir, TRAINING_REPORT_FILES.summary), `${JSON.stringify(report, null, 2)}\n`);
      writeFileSync(join(dir, TRAINING_REPORT_FILES.html), trainingReportHtml(report, runs.map((r) => r.config), figures, o.refreshSeconds));
      return report;
    },
  });
  return { dir: o.out, report, figures: specs.map((f) => f.id) };
}

/** The text the command prints: one line per run, then where the page is. */
export function reportSummary(r: TrainingReport, dir: string): string {
  const f = (x: number | null, d = 4) => (x === null ? '—' : x.toFixed(d));
  const w = Math.max(4, ...r.runs.map((s) => s.run.length));
  const lines = [
    `${'run'.padEnd(w)}  ${'status'.padEnd(24)}  ${'steps'.padStart(7)}  train loss  valid loss  lowest valid`,
    ...r.runs.map((s) => `${s.run.padEnd(w)}  ${stateText(s).padEnd(24)}  ${String(s.steps).padStart(7)}  ${f(s.finalLoss).padStart(10)}  ${f(s.validLoss).padStart(10)}  ${f(s.lowestValidLoss).padStart(12)}`),
    `report: ${join(dir, TRAINING_REPORT_FILES.html)}`,
  ];
  return `${lines.join('\n')}\n`;
}

/**
 * `lory run`'s last step: when it ran (or found up to date) a training stage, the report of every run
 * of the pipeline that has a metrics.jsonl — those of earlier invocations too (`--from train-lory`
 * still compares lory with dense) — in `<out>/report`. Stages are named `train-<run>`, output the run folder.
 */
export async function reportTrainedRuns(out: string, ran: StageOutput[], planned: StageOutput[]): Promise<string | undefined> {
  const runFolders = (stages: StageOutput[]) => stages.filter((s) => s.name.startsWith('train-')).map((s) => s.output);
  if (!runFolders(ran).length) return undefined;
  const dir = join(out, 'report');
  await writeTrainingReport(readReportRuns(runFolders(planned).filter((d) => existsSync(join(d, RUN_FILES.metrics)))), { out: dir });
  return join(dir, TRAINING_REPORT_FILES.html);
}

interface StageOutput {
  name: string;
  output: string;
}
