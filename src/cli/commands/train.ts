/** `lory train`: packed instances + a pipeline's model and train sections → a run directory with checkpoints and metrics. */
import type { Command } from 'commander';
import { InputError, InterruptedError } from '../../artifacts/index.js';
import { loadPipeline, resolvedRunConfig } from '../../pipeline/load.js';
import { checkpointOfRun } from '../../train/checkpoint.js';
import { train } from '../../train/loop.js';
import { log } from '../log.js';
import { joinRanks, watchStop } from '../ranks.js';
import { together } from '../../parallel/together.js';
import { markAllRanks, threadsPerRank } from '../../parallel/world.js';
import { launchFromEnv } from '../../parallel/mpi.js';
import { LAUNCH_COMMAND_ENV, launchRanks } from '../launch-ranks.js';
import { positiveInt } from './prepare.js';
import { runStageCommand } from '../stage-command.js';
import { commandLine, trainReporter, withSigterm } from './train-report.js';

interface Flags {
  out: string;
  config: string;
  run?: string;
  valid?: string;
  force?: boolean;
  extend?: boolean;
  memoryCheck?: boolean;
  json?: boolean;
  fromCheckpoint?: string;
  ranks?: number;
  device?: string;
}

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description("train a model (dense or Lory) on packed instances, with the pipeline's model: and train: sections")
    .argument('<batches>', 'packed instances (made by `lory build-batches`)')
    .requiredOption('-o, --out <dir>', 'the run directory (checkpoints/, metrics.jsonl, config.json); an unfinished run there is resumed')
    .requiredOption('-c, --config <pipeline.yaml>', 'pipeline file: its model: and train: sections (or a runs: entry) say what to train')
    .option('--run <name>', 'which runs: entry of the pipeline to train (needed when it lists several)')
    .option('--valid <batches>', "validate on these batches' valid.bin (default: the training batches' own)")
    .option('--force', 'start over even when the run directory holds a finished or unfinished run')
    .option('--extend', 'continue a run whose config differs only in more train.steps (the learning-rate schedule is recomputed for the new length)')
    .option('--from-checkpoint <dir>', "resume the unfinished run from this checkpoint of its own (<run>/checkpoints/step-N) instead of the latest")
    .option('--no-memory-check', "train even when the memory estimate (see \`lory params\`) exceeds this machine's memory")
    .option('--json', 'stream one JSON line per event (start, step, valid, convert, checkpoint) on stdout')
    .option('--device <device>', 'cpu, cuda or cuda:N: where the train step runs (default: train.device, else cpu); a GPU that cannot be used here exits 2 with the reason')
    .option('--ranks <n>', 'train data-parallel on n processes of this machine (runs `mpirun -np n lory train …`)', positiveInt)
    .addHelpText(
      'after',
      `
Ctrl-C (or SIGTERM) finishes the current step, writes a checkpoint and exits 130; the same command resumes.

Data-parallel: \`mpirun -np N lory train …\` (or srun, or --ranks N here) divides each step's
train.accumulation micro-batches among N ranks and sums their gradients (docs/distributed.md);
the results are the one-process run's. train.shard_optimizer: true splits the AdamW state among them.

Examples:
  $ lory train work/demo/batches-similarity -o work/demo/runs/lory --config pipelines/demo.yaml --run lory
  $ lory train work/batches -o work/run --config my.yaml --json | jq -c 'select(.type=="valid")'
  $ lory train work/demo/batches-similarity -o work/run2 --config my.yaml --ranks 2
  $ lory train work/demo/batches-similarity -o work/gpu-run --config my.yaml --device cuda`,
    )
    .action(async (batches: string, flags: Flags) => {
      const launch = launchFromEnv();
      if (flags.ranks !== undefined && flags.ranks > 1 && !launch) {
        process.exitCode = await launchRanks(flags.ranks, process.argv.slice(2));
        return;
      }
      if (flags.ranks !== undefined && launch && flags.ranks !== launch.size) throw new InputError(`--ranks ${flags.ranks} under a launcher that started ${launch.size} ranks: drop --ranks, or start ${flags.ranks}`);
      const world = joinRanks();
      const setup = () => {
        const loaded = loadPipeline(flags.config);
        const names = loaded.runs.map((r) => r.name);
        const run = flags.run ? loaded.runs.find((r) => r.name === flags.run) : loaded.runs.length === 1 ? loaded.runs[0] : undefined;
        if (!run) {
          throw new InputError(flags.run ? `${flags.config}: no run named '${flags.run}'; its runs: ${names.join(', ')}` : `${flags.config} lists several runs (${names.join(', ')}); pick one with --run`);
        }
        if (flags.fromCheckpoint && flags.force) throw new InputError('--from-checkpoint resumes the run and --force starts it over: give one of them');
        const resumeFrom = flags.fromCheckpoint ? checkpointOfRun(flags.out, flags.fromCheckpoint) : undefined;
        return { loaded, run, resumeFrom };
      };
      const { loaded, run, resumeFrom } = world ? await together(world, setup) : setup();
      if (run.train.shard_optimizer && !world) log.warn('train.shard_optimizer shards the optimizer state across the ranks of `mpirun -np N lory train …`; one process keeps all of it');
      const ranks = world ? { world, shard: run.train.shard_optimizer ?? false, threads: threadsPerRank(world) } : undefined;
      await runStageCommand({ name: 'train', startText: `compiling the ${run.model.experts > 1 ? 'Lory' : 'dense'} train step${world ? ` on ${world.size} ranks` : ''}`, interruptText: 'interrupted; finishing the step (and its validation, when due) and writing a checkpoint (Ctrl-C again to exit now)', quiet: world !== undefined && !world.isRoot }, async (progress, sigint) => {
        const stop = withSigterm(sigint, world ? ['SIGTERM', 'SIGUSR1'] : ['SIGTERM']);
        if (world) watchStop(world, stop.signal);
        try {
          const result = await train({
            batches,
            out: flags.out,
            model: run.model,
            train: flags.device ? { ...run.train, device: flags.device } : run.train,
            deviceFlag: flags.device !== undefined,
            config: resolvedRunConfig(loaded, run),
            ...(flags.valid ? { valid: flags.valid } : {}),
            force: flags.force ?? false,
            extend: flags.extend ?? false,
            memoryCheck: flags.memoryCheck ?? true,
            resumeFrom,
            onWarn: (m) => log.warn(m),
            signal: stop.signal,
            onEvent: trainReporter(run.name, progress, flags.json ?? false),
            ...(ranks ? { ranks } : {}),
          });
          if (!result.manifest) return; // a rank other than 0: rank 0 reports
          const s = result.manifest.stats;
          const line = result.skipped ? `${flags.out} is up to date (--force trains again)` : `trained ${s.steps} steps in ${s.seconds.toFixed(1)} s`;
          progress.succeed(line);
          if (!flags.json) {
            process.stdout.write(
              `run              ${result.runDir}\nfinal loss       ${s.finalLoss.toFixed(4)} (train), ${s.validLoss?.toFixed(4) ?? '—'} (validation), best ${s.bestValidLoss?.toFixed(4) ?? '—'}\n` +
                `throughput       ${s.medianTokensPerSecond.toFixed(0)} tokens/s (median), MFU ${(100 * s.medianMfu).toFixed(2)}% of a ${(s.peakFlops / 1e9).toFixed(1)} GFLOP/s GEMM peak\n`,
            );
          }
        } catch (error) {
          if (error instanceof InterruptedError) throw markAllRanks(new InterruptedError(`${error.message}: ${world ? (process.env[LAUNCH_COMMAND_ENV] ?? 'the same mpirun command (with any number of ranks that divides train.accumulation)') : commandLine()}`));
          throw error;
        } finally {
          stop.dispose();
        }
      });
    });
}
