/** `lory eval perplexity`: per-domain perplexity and bits per byte of checkpoints on a held-out store. */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { perplexityJson, perplexityMarkdown } from '../../eval/format.js';
import { evalPerplexity, type PerplexityOptions, type PerplexityProgress } from '../../eval/perplexity.js';
import { evalPerplexityToDir, PERPLEXITY_FILES } from '../../eval/report-artifact.js';
import type { EvalRouting } from '../../eval/run-windows.js';
import { runStageCommand } from '../stage-command.js';
import { positiveInt } from './prepare.js';
import { join } from 'node:path';
import { duration } from '../progress.js';
import { log } from '../log.js';
import { registerEvalTasks } from './eval-tasks.js';
import { addDeviceOption } from '../device-option.js';
import { openDevice } from '../../runtime/index.js';

interface Flags {
  data: string;
  by: string;
  window?: number;
  stride?: number;
  routing: string;
  promptTokens?: number;
  which: 'latest' | 'best';
  batch: number;
  threads?: number;
  device?: string;
  json?: boolean;
  out?: string;
  force?: boolean;
}

function describe(p: PerplexityProgress): string {
  const eta = p.windowsDone > 0 ? duration(((p.windowsTotal - p.windowsDone) * p.elapsedMs) / p.windowsDone / 1000) : '?';
  return `perplexity: ${p.checkpoint}${p.routing === 'dense' ? '' : ` [${p.routing} routing]`}: ${p.windowsDone}/${p.windowsTotal} windows, ETA ${eta}`;
}

export function routingModes(value: string): EvalRouting[] {
  if (value === 'both') return ['segment', 'prompt'];
  if (value === 'segment' || value === 'prompt') return [value];
  throw new InvalidArgumentError("must be 'segment', 'prompt' or 'both'");
}

/** The options every eval command shares: which checkpoint, batching, threads, and the report's form and folder. */
export function addReportOptions(command: Command, perBatch: string, files: { json: string; markdown: string }): void {
  command
    .addOption(new Option('--which <checkpoint>', 'checkpoint of a run directory').choices(['latest', 'best']).default('latest'))
    .option('--batch <n>', `${perBatch} per forward pass`, positiveInt, 8)
    .option('--threads <n>', 'ONNX Runtime threads (default: all cores)', positiveInt);
  addDeviceOption(command, 'the forward passes')
    .option('--json', 'print JSON instead of Markdown')
    .option('-o, --out <dir>', `also write ${files.json} and ${files.markdown} to this directory`)
    .option('--force', 'with --out: evaluate again even when the report is up to date');
}

export function registerEval(program: Command): void {
  const evalCommand = program.command('eval').description('evaluate checkpoints (perplexity per domain, accuracy on tasks)');
  const perplexity = evalCommand
    .command('perplexity')
    .description('perplexity, mean NLL and bits per byte per domain of held-out data, for one or more checkpoints side by side')
    .argument('<checkpoints...>', 'checkpoints (<run>/checkpoints/step-N) or run directories (made by `lory train`); the first is the baseline for relative change')
    .requiredOption('--data <store>', 'held-out token store (`lory prepare ... --tokenizer <training store>`)')
    .option('--by <field>', "metadata field that splits rows, or 'none' for one row", 'domain')
    .option('--window <n>', "tokens per window (default: the model's context length)", positiveInt)
    .option('--stride <n>', 'start windows this many tokens apart (default: the window, no overlap); smaller gives every token more context', positiveInt)
    .addOption(new Option('--routing <mode>', "Lory routing: 'segment' (causal, as in training), 'prompt' (one decision per window from its first tokens, then fixed: the paper's inference mode) or 'both'").default(['segment', 'prompt'], 'both').argParser(routingModes))
    .option('--prompt-tokens <n>', 'prompt routing: tokens that decide the routing (default: one segment)', positiveInt);
  addReportOptions(perplexity, 'windows', PERPLEXITY_FILES);
  perplexity
    .addHelpText(
      'after',
      `
Examples:
  $ lory eval perplexity work/run-dense work/run-lory --data work/heldout
  $ lory eval perplexity work/run-lory --data work/heldout --stride 128 --routing prompt --json
  $ lory eval perplexity work/run-lory/checkpoints/step-000000200 --data work/heldout --by none -o work/eval`,
    )
    .action(async (checkpoints: string[], flags: Flags) => {
      await runStageCommand({ name: 'eval perplexity', startText: 'reading checkpoints' }, async (progress, signal) => {
        const options: PerplexityOptions = {
          checkpoints,
          data: flags.data,
          by: flags.by === 'none' ? null : flags.by,
          routing: flags.routing as unknown as EvalRouting[],
          which: flags.which,
          batch: flags.batch,
          signal,
          onProgress: (p) => progress.update(describe(p)),
          onWarn: (m) => log.warn(m),
          ...(flags.window !== undefined ? { window: flags.window } : {}),
          ...(flags.stride !== undefined ? { stride: flags.stride } : {}),
          ...(flags.promptTokens !== undefined ? { promptTokens: flags.promptTokens } : {}),
          ...(flags.threads !== undefined ? { threads: flags.threads } : {}),
          device: await openDevice(flags.device),
        };
        const started = Date.now();
        const { report, skipped } = flags.out
          ? await evalPerplexityToDir({ ...options, out: flags.out, force: flags.force ?? false })
          : { report: await evalPerplexity(options), skipped: false };
        const where = flags.out ? ` (${join(flags.out, PERPLEXITY_FILES.markdown)}${skipped ? ', up to date; --force redoes it' : ''})` : '';
        progress.succeed(`evaluated ${report.results.length} checkpoint/routing combination(s) in ${duration((Date.now() - started) / 1000)}${where}`);
        process.stdout.write(flags.json ? perplexityJson(report) : perplexityMarkdown(report));
      });
    });
  registerEvalTasks(evalCommand);
}
