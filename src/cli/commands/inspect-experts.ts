/** `lory inspect-experts`: routing statistics, figures and an HTML report of a Lory checkpoint. */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { inspectExperts, inspectSummary } from '../../inspect/inspect.js';
import { log } from '../log.js';
import { runStageCommand } from '../stage-command.js';
import { positiveInt } from './prepare.js';
import { addDeviceOption } from '../device-option.js';
import { openDevice } from '../../runtime/index.js';

interface Flags {
  data: string;
  out: string;
  by: string;
  which: 'latest' | 'best';
  batch: number;
  threads?: number;
  device?: string;
  maxDocuments?: number;
  shuffles: number;
  seed: number;
  force?: boolean;
}

const nonNegativeInt = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a non-negative integer');
  return n;
};

export function registerInspectExperts(program: Command): void {
  const command = program
    .command('inspect-experts')
    .description('how a Lory checkpoint routes labelled held-out documents: mean expert weight per (layer, domain), utilisation, specialisation vs chance; figures and report.html')
    .argument('<checkpoint>', 'a Lory checkpoint (<run>/checkpoints/step-N) or run directory (experts > 1)')
    .requiredOption('--data <store>', 'held-out token store whose documents carry a domain label')
    .requiredOption('-o, --out <dir>', 'report directory (routing-stats.json, heatmap/utilisation/specialisation .svg and .png, report.html)')
    .option('--by <field>', 'metadata field naming the domain', 'domain')
    .addOption(new Option('--which <checkpoint>', 'checkpoint of a run directory').choices(['latest', 'best']).default('latest'))
    .option('--max-documents <n>', 'at most this many documents per domain', positiveInt)
    .option('--shuffles <n>', 'label shuffles for the chance level of the specialisation score', nonNegativeInt, 20)
    .option('--seed <n>', 'seed of the label shuffles', nonNegativeInt, 0)
    .option('--batch <n>', 'windows per forward pass', positiveInt, 8)
    .option('--threads <n>', 'ONNX Runtime threads (default: all cores)', positiveInt);
  addDeviceOption(command, 'the forward passes')
    .option('--force', 'redo the report even when it is up to date')
    .addHelpText(
      'after',
      `
Examples:
  $ lory inspect-experts work/run-lory --data work/heldout -o work/experts
  $ lory inspect-experts work/run-lory --which best --data work/heldout -o work/experts --max-documents 200`,
    )
    .action(async (checkpoint: string, flags: Flags) => {
      await runStageCommand({ name: 'inspect-experts', startText: 'reading the checkpoint' }, async (progress, signal) => {
        const started = Date.now();
        const r = await inspectExperts({
          checkpoint,
          data: flags.data,
          out: flags.out,
          by: flags.by,
          which: flags.which,
          batch: flags.batch,
          shuffles: flags.shuffles,
          seed: flags.seed,
          force: flags.force ?? false,
          signal,
          onWarn: (m) => log.warn(m),
          onProgress: (done, total) => progress.update(`routing held-out documents: ${done}/${total} windows, ${((Date.now() - started) / 1000).toFixed(0)}s`),
          ...(flags.threads !== undefined ? { threads: flags.threads } : {}),
          device: await openDevice(flags.device),
          ...(flags.maxDocuments !== undefined ? { maxDocumentsPerDomain: flags.maxDocuments } : {}),
        });
        progress.succeed(r.skipped ? `${flags.out} is up to date (--force redoes it)` : `wrote ${flags.out}`);
        process.stdout.write(inspectSummary(r.report, r.dir));
      });
    });
}
