/** `lory run`: every stage of a pipeline in order, skipping those whose artifacts are up to date, then a summary. */
import type { Command } from 'commander';
import { InterruptedError } from '../../artifacts/index.js';
import { moeKindName } from '../../model/index.js';
import { loadPipeline } from '../../pipeline/load.js';
import { planStages, writeResolvedPipeline, type StageOutcome } from '../../pipeline/stages.js';
import { reportTrainedRuns } from '../../report/training.js';
import type { TrainEvent, TrainStats } from '../../train/loop.js';
import { log } from '../log.js';
import { runStageCommand } from '../stage-command.js';
import { commandLine, trainReporter, withSigterm } from './train-report.js';

interface Flags {
  from?: string;
  until?: string;
  force?: boolean;
  json?: boolean;
  list?: boolean;
  extend?: boolean;
  memoryCheck?: boolean;
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run a pipeline: prepare, embed, build-batches, train, … in order, skipping stages already up to date')
    .argument('<pipeline.yaml>', 'the pipeline file')
    .option('--from <stage>', 'start at this stage (a name such as train-lory, or a group: prepare, embed, batches, train)')
    .option('--until <stage>', 'stop after this stage (name or group)')
    .option('--force', 'redo the selected stages even when up to date')
    .option('--list', 'print the stages and their outputs, run nothing')
    .option('--extend', 'continue finished (or unfinished) runs whose train.steps grew, instead of refusing them')
    .option('--no-memory-check', "train even when a run's memory estimate exceeds this machine's memory")
    .option('--json', 'one JSON line per stage result and training event on stdout')
    .addHelpText(
      'after',
      `
Examples:
  $ lory run pipelines/demo.yaml
  $ lory run pipelines/demo.yaml --list
  $ lory run pipelines/demo.yaml --from train --force      # retrain, keep the data stages`,
    )
    .action(async (file: string, flags: Flags) => {
      const loaded = loadPipeline(file, { checkFiles: true });
      const stages = planStages(loaded, { ...(flags.from ? { from: flags.from } : {}), ...(flags.until ? { until: flags.until } : {}) });
      if (flags.list) {
        const w = Math.max(...stages.map((s) => s.name.length));
        for (const s of stages) process.stdout.write(`${s.name.padEnd(w)}  ${s.output}  (${s.describe})\n`);
        return;
      }
      writeResolvedPipeline(loaded);
      const results: Array<{ name: string; outcome: StageOutcome }> = [];
      await runStageCommand({ name: 'run', startText: `${file}: ${stages.length} stages`, interruptText: 'interrupted; stopping at the next checkpoint (Ctrl-C again to exit now)' }, async (progress, sigint) => {
        const stop = withSigterm(sigint);
        const reporters = new Map<string, (e: TrainEvent) => void>();
        try {
          for (const [i, stage] of stages.entries()) {
            if (stop.signal.aborted) throw new InterruptedError(`stopped before ${stage.name}`);
            progress.update(`[${i + 1}/${stages.length}] ${stage.name}: ${stage.describe}`);
            const t0 = performance.now();
            const outcome = await stage.run({
              loaded,
              force: flags.force ?? false,
              extend: flags.extend ?? false,
              memoryCheck: flags.memoryCheck ?? true,
              signal: stop.signal,
              progress: (text) => progress.update(`[${i + 1}/${stages.length}] ${text}`),
              warn: (m) => log.warn(m),
              onTrainEvent: (run, e) => {
                if (!reporters.has(run)) reporters.set(run, trainReporter(run, progress, flags.json ?? false));
                reporters.get(run)!(e);
              },
            });
            results.push({ name: stage.name, outcome });
            const seconds = (performance.now() - t0) / 1000;
            if (flags.json) process.stdout.write(`${JSON.stringify({ stage: stage.name, skipped: outcome.skipped, output: outcome.output, seconds })}\n`);
            else log.info(`${outcome.skipped ? '·' : '✓'} ${stage.name.padEnd(22)} ${outcome.output}${outcome.skipped ? ' (up to date)' : ` (${seconds.toFixed(1)} s)`}`);
          }
          progress.succeed(`${file}: ${stages.length} stages done`);
        } catch (error) {
          if (error instanceof InterruptedError) throw new InterruptedError(`${error.message}; rerun to continue: ${commandLine()}`);
          throw error;
        } finally {
          stop.dispose();
        }
        if (!flags.json) {
          process.stdout.write(summary(loaded.pipeline.out, loaded.runs, results));
          for (const r of results) {
            const stage = stages.find((s) => s.name === r.name);
            if (stage?.summary) process.stdout.write(stage.summary(r.outcome));
          }
        }
        // Last: the curves of the runs it trained (lory report), in <out>/report.
        const report = await reportTrainedRuns(loaded.pipeline.out, results.map((r) => ({ name: r.name, output: r.outcome.output })), planStages(loaded));
        if (report) process.stdout.write(flags.json ? `${JSON.stringify({ report })}\n` : `\ntraining curves (lory report): ${report}\n`);
      });
    });
}

function summary(out: string, runs: ReturnType<typeof loadPipeline>['runs'], results: Array<{ name: string; outcome: StageOutcome }>): string {
  const lines = ['', `artifacts in ${out}/:`];
  for (const r of results) lines.push(`  ${r.name.padEnd(22)} ${r.outcome.output}`);
  const trained = runs
    .map((run) => ({ run, stats: results.find((r) => r.name === `train-${run.name}`)?.outcome.stats as TrainStats | undefined }))
    .filter((x) => x.stats);
  if (trained.length) {
    lines.push('', 'run           model                          batches      steps  train loss  valid loss  best valid');
    for (const { run, stats } of trained) {
      const m = run.model;
      const model = `${m.experts > 1 ? `${moeKindName(m)} ${m.experts}E` : 'dense'}, ${m.nLayers}×${m.dModel}, V=${m.vocabSize}`;
      const f = (x: number | null | undefined) => (x === null || x === undefined ? '—' : x.toFixed(4)).padStart(10);
      lines.push(`${run.name.padEnd(13)} ${model.padEnd(30)} ${run.batches.padEnd(11)} ${String(stats!.steps).padStart(6)}  ${f(stats!.finalLoss)}  ${f(stats!.validLoss)}  ${f(stats!.bestValidLoss)}`);
    }
    lines.push(`(ln V = ${Math.log(trained[0]!.run.model.vocabSize).toFixed(4)}: the loss of a uniform guess)`);
  }
  return `${lines.join('\n')}\n`;
}
