/**
 * The training loop: packed instances → a run directory with metrics.jsonl and checkpoints.
 *
 *   for step = 1..steps:  lr from the schedule; one update (or `accumulation` micro-batches summed,
 *   then applied), the next micro-batch read from disk while the step runs on ORT's worker thread;
 *   a metrics line; dense → Lory conversion after the dense warm-up's last step; validation and
 *   checkpoints every N steps; on Ctrl-C/SIGTERM a checkpoint, then InterruptedError.
 *
 * An interrupt changes nothing the run records: the step in flight finishes with the validation its
 * schedule gives it, and the interrupt's own checkpoint never becomes `best` — so a resumed run
 * equals a straight run line for line. A non-finite loss or gradient norm stops the run (exit 2)
 * with `latest` at the last finite checkpoint.
 *
 * Parameters and AdamW moments stay resident in native memory (Trainer); they cross into JS only
 * for checkpoints and the conversion. Everything random derives from train.seed, so a run is
 * deterministic and a resume from a checkpoint continues bit for bit.
 */
import { createHash } from 'node:crypto';
import { appendFileSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { artifactInput, canonicalJson, fingerprint, InputError, InterruptedError, readManifest, recordedInputs, toolVersion, type InputRef, type Manifest } from '../artifacts/index.js';
import { ConfigError, checkTrainingSequenceLength, countFlops, denseToMoe, initParams, moeKindName, modelConfigToYamlObject, paramSpecs, type ModelConfig, type ParamArray, type ParamValues } from '../model/index.js';
import { runIdentity } from '../pipeline/load.js';
import { firstNonFinite, listCheckpoints, readCheckpoint, writeCheckpoint, pruneCheckpoints, type CheckpointState, type DataCursor } from './checkpoint.js';
import { InstanceReader, openBatches, type BatchesInfo, type MicroBatch } from './data.js';
import { availableMemory, checkTrainingMemory, estimateTrainingMemory } from './memory.js';
import { convertMoments, makeModelTrainer, precisionNote, readState, runSessionOptions, runUpdate, validate, type ModelTrainer, type RankSetup, type TrainState } from './model-trainer.js';
import type { World } from '../parallel/mpi.js';
import { gatherMoments, shareUpdatedParams } from '../parallel/shard.js';
import { together } from '../parallel/together.js';
import { runDataParallelUpdate, validateAcrossRanks, type ApplyUpdate } from '../parallel/update.js';
import { markAllRanks } from '../parallel/world.js';
import { measureGemmPeak } from './peak.js';
import { DeviceError, loadRuntime, openDevice, parseDevice, type Device } from '../runtime/index.js';
import { METRICS_FILE, openRunDir, RUN_KIND, RUN_VERSION, trimMetrics, writeRunConfig, writeRunManifest, type RunDirStatus } from './run-dir.js';
import { lrAt, type Schedule } from './schedule.js';
import { conversionStep, denseOf, phaseAt, type StepMetrics, type TrainEvent, type TrainSettings, type TrainStats } from './settings.js';

export { RUN_KIND, RUN_VERSION, METRICS_FILE } from './run-dir.js';
export { conversionStep, denseOf, optimizerConfig, type StepMetrics, type TrainEvent, type TrainSettings, type TrainStats } from './settings.js';
export { convertMoments } from './model-trainer.js';

export interface TrainOptions {
  /** A batches artifact (made by `lory build-batches`). */
  batches: string;
  /** The run directory. */
  out: string;
  model: ModelConfig;
  train: TrainSettings;
  /** The resolved config saved with the run and every checkpoint (its model section is rewritten per phase). */
  config: Record<string, unknown>;
  /** Batches whose valid.bin is the validation set (default: `batches`' own). */
  valid?: string;
  /** Start over even when the run directory holds a finished run or checkpoints. */
  force?: boolean;
  /** Continue a run whose config differs only in more train.steps. */
  extend?: boolean;
  /** How the caller's user starts a changed run over (default: the `lory train` flags). */
  restartHint?: string;
  /** Skip the memory estimate's refusal (default: check). */
  memoryCheck?: boolean;
  signal?: AbortSignal;
  onEvent?(event: TrainEvent): void;
  /** Measured GEMM peak in FLOP/s (default: measured at start). */
  peakFlops?: number;
  /** Stop after this step as if interrupted (tests of resume). */
  stopAfter?: number;
  /** Resume from this checkpoint of the run instead of its latest (`lory train --from-checkpoint`). */
  resumeFrom?: string | undefined;
  /** train.device came from `--device` (named so in errors), not the pipeline. */
  deviceFlag?: boolean;
  /** Told when the latest checkpoint is damaged and an earlier one is resumed from. */
  onWarn?(message: string): void;
  /**
   * This process is one rank of a data-parallel run (mpirun): micro-batches divided among ranks,
   * gradients summed across them; rank 0 alone writes the run folder and reports events.
   */
  ranks?: RankSetup;
}

export interface TrainResult {
  runDir: string;
  skipped: boolean;
  manifest?: Manifest<TrainStats>;
  /** Losses of the steps this call ran (a resumed call: from the resume point). */
  losses: number[];
}

/** A non-finite loss, gradient norm or weight: the run stops, keeping its last finite checkpoint. */
export class TrainingDivergedError extends Error {
  readonly userError = true;
  constructor(message: string) {
    super(message);
    this.name = 'TrainingDivergedError';
  }
}

const median = (xs: number[]) => {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

/** The run's step lines, all calls together (a resumed run's stats cover the steps before the resume too). */
function stepLines(runDir: string): StepMetrics[] {
  return readFileSync(join(runDir, METRICS_FILE), 'utf8')
    .split('\n')
    .filter((l) => l.includes('"type":"step"'))
    .map((l) => JSON.parse(l) as StepMetrics);
}

/** The inputs of a run, opened and checked against the model; nothing is written. */
interface RunInputs {
  batches: BatchesInfo;
  validBatches: BatchesInfo;
  seq: number;
  tokenizerPath: string;
  inputs: InputRef[];
  /** What the run is: the config as given, and the model and settings trained. */
  params: Record<string, unknown>;
  identity: string;
}

function openInputs(o: TrainOptions): RunInputs {
  const batches = openBatches(o.batches);
  const seq = batches.seqLen;
  const tokensMeta = readManifest<{ vocabSize: number }>(batches.tokensDir, 'token-store', 1);
  if (o.model.vocabSize < tokensMeta.stats.vocabSize) {
    throw new ConfigError(`model.vocab_size (${o.model.vocabSize}) is smaller than the tokenizer's vocabulary (${tokensMeta.stats.vocabSize}) of ${batches.tokensDir}`);
  }
  checkTrainingSequenceLength(o.model, seq);
  const validBatches = o.valid ? openBatches(o.valid) : batches;
  if (validBatches.seqLen !== seq) throw new InputError(`${o.valid}: sequence length ${validBatches.seqLen} differs from the training batches' ${seq}`);
  const inputs: InputRef[] = [artifactInput('batches', o.batches, batches.manifest)];
  if (o.valid) inputs.push(artifactInput('valid', o.valid, validBatches.manifest));
  // Sharding the optimizer state changes where the numbers live, recomputing layers when they are
  // computed, not what they are: a run moves between the settings. The device changes the last bits
  // (summation order), yet moving a run between a GPU and the CPU is a thing users do: it stays out too.
  // Precision changes the numbers, so it is part of the run; fp32, the default, is left out so runs
  // from before the field existed keep their identity.
  const { shard_optimizer: _sharded, recompute: _recompute, device: _device, precision, ...rest } = o.train;
  const train = precision && precision !== 'fp32' ? { ...rest, precision } : rest;
  const params = { ...runIdentity(o.config), model: modelConfigToYamlObject(o.model), train };
  const identity = fingerprint({ kind: RUN_KIND, formatVersion: RUN_VERSION, tool: { name: 'lory', version: toolVersion() }, inputs, params });
  return { batches, validBatches, seq, tokenizerPath: join(batches.tokensDir, 'tokenizer.json'), inputs, params, identity };
}

const formatLr = (x: number) => Number(x.toPrecision(3)).toString();

/** What extending a run from `from` to `to` steps does to its learning rate (one clause for messages). */
function extensionNote(t: TrainSettings): (from: number, to: number) => string {
  return (from, to) => {
    const before = lrAt({ lr: t.lr, steps: from, warmup: t.warmup, minLrRatio: t.min_lr_ratio }, from);
    const after = lrAt({ lr: t.lr, steps: to, warmup: t.warmup, minLrRatio: t.min_lr_ratio }, from + 1);
    return `${to === from + 1 ? `step ${to} follows` : `steps ${from + 1}–${to} follow`} the ${to}-step schedule: the learning rate goes from ${formatLr(before)} at step ${from} to ${formatLr(after)} at step ${from + 1}`;
  };
}

/**
 * The run's device, checked usable before anything is allocated or written (exit 2 with the reason).
 * Data-parallel GPU training needs a GPU collective (NCCL), which lory does not have yet.
 */
async function openTrainDevice(o: TrainOptions): Promise<Device> {
  const where = o.deviceFlag ? '--device' : 'train.device';
  if (parseDevice(o.train.device ?? 'cpu', where).provider === 'cuda' && o.ranks) {
    throw new DeviceError(`${where} ${o.train.device} under mpirun: data-parallel training on GPUs needs NCCL, which lory does not use yet; train one process on the GPU, or the ranks on the CPU`);
  }
  return openDevice(o.train.device, where);
}

/** The memory a run may use: the GPU's for a GPU run (as its driver reports it), else this machine's. */
function memoryFor(device: Device): { bytes: number; source: string } | undefined {
  if (device.provider === 'cpu') return undefined;
  const gpu = loadRuntime().cudaDevices().devices[device.ordinal];
  return gpu ? { bytes: gpu.totalBytes, source: `${device.name}, ${gpu.name}` } : undefined;
}

export async function train(o: TrainOptions): Promise<TrainResult> {
  const started = performance.now();
  if (o.ranks) {
    await together(o.ranks.world, () => openTrainDevice(o));
    return trainOnRanks(o, o.ranks.world, started);
  }
  const device = await openTrainDevice(o);
  const run = openInputs(o);
  if (o.memoryCheck !== false) checkTrainingMemory(memoryOf(o, run.seq), memoryFor(device));
  const dir = openRunDir(runDirRequest(o, run));
  try {
    if (dir.status === 'done') return { runDir: dir.path, skipped: true, manifest: readManifest<TrainStats>(dir.path, RUN_KIND, RUN_VERSION), losses: [] };
    writeRunConfig(dir.path, o.config);
    const loop = await TrainingRun.start(o, run, dir.path, dir.status);
    const stats = await loop.run(started);
    const manifest = await writeRunManifest<TrainStats>(dir.path, recordedInputs(run.inputs, dir.path), run.params, stats);
    return { runDir: dir.path, skipped: false, manifest, losses: loop.losses };
  } finally {
    dir.release();
  }
}

const memoryOf = (o: TrainOptions, seq: number) =>
  estimateTrainingMemory(o.model, { microBatch: o.train.micro_batch, seq, accumulation: o.train.accumulation, recompute: o.train.recompute ?? false, ...(o.ranks ? { ranks: o.ranks.world.size, shardOptimizer: o.ranks.shard } : {}) });

const runDirRequest = (o: TrainOptions, run: RunInputs) => ({
  out: o.out,
  identity: run.identity,
  force: o.force ?? false,
  extend: o.extend ?? false,
  restartHint: o.restartHint ?? 'use --force to start it over, or another -o',
  extensionNote: extensionNote(o.train),
});

const STATUSES: RunDirStatus[] = ['fresh', 'continue', 'extend', 'done'];

/**
 * `train` as one rank of a data-parallel run. Every rank opens the inputs and checks that all were
 * given the same run; rank 0 alone takes the run folder (lock, --force, resume decision) and tells the
 * others what it found; then all train together and rank 0 writes the manifest.
 */
async function trainOnRanks(o: TrainOptions, world: World, started: number): Promise<TrainResult> {
  const run = await together(world, () => {
    const inputs = openInputs(o);
    if (o.memoryCheck !== false) {
      // The ranks on one machine share its memory.
      const machine = availableMemory();
      const n = world.localSize;
      checkTrainingMemory(memoryOf(o, inputs.seq), n > 1 ? { bytes: machine.bytes / n, source: `${machine.source}: a 1/${n} share for each of the ${n} ranks on this machine` } : machine);
    }
    return inputs;
  });
  await checkSameRun(world, run.identity, o.train.accumulation);
  const dir = await together(world, () => (world.isRoot ? openRunDir(runDirRequest(o, run)) : undefined));
  try {
    const status = Int32Array.of(dir ? STATUSES.indexOf(dir.status) : 0);
    await world.broadcast([status], 0);
    const path = dir?.path ?? resolve(o.out);
    if (STATUSES[status[0]!] === 'done') return { runDir: path, skipped: true, manifest: readManifest<TrainStats>(path, RUN_KIND, RUN_VERSION), losses: [] };
    const loop = await together(world, async () => {
      if (world.isRoot) writeRunConfig(path, o.config);
      return TrainingRun.start(o, run, path, STATUSES[status[0]!]!);
    });
    const stats = await loop.run(started);
    const manifest = world.isRoot ? await writeRunManifest<TrainStats>(path, recordedInputs(run.inputs, path), run.params, stats) : undefined;
    return { runDir: path, skipped: false, ...(manifest ? { manifest } : {}), losses: loop.losses };
  } finally {
    dir?.release();
  }
}

/** Every rank must train the same run (config, data, lory version) with an accumulation the ranks divide. */
async function checkSameRun(world: World, identity: string, accumulation: number): Promise<void> {
  const mine = createHash('sha256').update(identity).digest();
  const all = new Uint8Array(32 * world.size);
  await world.allgather(new Uint8Array(mine), all);
  const differ: number[] = [];
  for (let r = 1; r < world.size; r++) if (Buffer.compare(Buffer.from(all.subarray(32 * r, 32 * r + 32)), Buffer.from(all.subarray(0, 32))) !== 0) differ.push(r);
  if (differ.length) {
    throw markAllRanks(new InputError(`rank${differ.length > 1 ? 's' : ''} ${differ.join(', ')} of ${world.size} ${differ.length > 1 ? 'were' : 'was'} given another run than rank 0 (config, batches or lory version differ): start every rank with the same command and files`));
  }
  if (accumulation % world.size !== 0) {
    throw markAllRanks(new ConfigError(`train.accumulation (${accumulation}) is not a multiple of the ${world.size} ranks: each rank runs accumulation/ranks of a step's micro-batches; set train.accumulation to a multiple of ${world.size} (the global batch stays micro_batch × accumulation)`));
  }
}

/** Where a run stands between steps: what a checkpoint saves and a resume restores. */
interface Progress {
  step: number;
  cursor: DataCursor;
  tokensSeen: number;
  validLoss: number | undefined;
  bestValidLoss: number | undefined;
}

/** One call's run of the loop: from a fresh start or a checkpoint to the last step (or an interrupt). */
class TrainingRun {
  readonly losses: number[] = [];
  private ahead: { batch: MicroBatch; cursorBefore: DataCursor } | undefined;
  private readonly t: TrainSettings;
  private readonly convertAt: number;
  private readonly reader: InstanceReader;
  private readonly validReader: InstanceReader;
  /** A data-parallel run's world; rank 0 alone writes files and reports. */
  private readonly world: World | undefined;
  private readonly writes: boolean;

  private constructor(
    private readonly o: TrainOptions,
    private readonly inputs: RunInputs,
    private readonly out: string,
    private phase: ModelTrainer,
    private readonly at: Progress,
    private readonly resumedFrom: string | undefined,
  ) {
    this.t = o.train;
    this.convertAt = conversionStep(o.model, o.train);
    this.reader = InstanceReader.open(inputs.batches, 'train', o.train.seed);
    this.validReader = InstanceReader.open(inputs.validBatches, 'valid', o.train.seed);
    this.world = o.ranks?.world;
    this.writes = this.world?.isRoot ?? true;
  }

  /** The model whose weights the run holds after `done` updates (the dense one during the warm-up). */
  private static phaseModel(o: TrainOptions, done: number): ModelConfig {
    const convertAt = conversionStep(o.model, o.train);
    return convertAt > 0 && done < convertAt ? denseOf(o.model) : o.model;
  }

  static async start(o: TrainOptions, inputs: RunInputs, out: string, status: RunDirStatus): Promise<TrainingRun> {
    const resuming = status !== 'fresh' && listCheckpoints(out).length > 0;
    const writes = o.ranks?.world.isRoot ?? true;
    const note = precisionNote(o.train);
    if (note && writes) o.onWarn?.(note);
    if (!resuming) {
      if (writes) trimMetrics(out, 0);
      const first = TrainingRun.phaseModel(o, 0);
      const phase = await makeModelTrainer(first, o.train, inputs.seq, initParams(first, o.train.seed), undefined, o.ranks);
      return new TrainingRun(o, inputs, out, phase, { step: 0, cursor: { epoch: 0, position: 0 }, tokensSeen: 0, validLoss: undefined, bestValidLoss: undefined }, undefined);
    }
    const ck = readCheckpoint(o.resumeFrom ?? out, { optimizer: true, ...(o.onWarn && writes ? { onWarn: o.onWarn } : {}) });
    const expected = TrainingRun.phaseModel(o, ck.state.step);
    if (canonicalJson(ck.model) !== canonicalJson(expected)) {
      if (status === 'extend') throw new InputError(`${o.out}: stopped at step ${ck.state.step}, inside its dense warm-up, which ${o.train.steps} steps would move; only a run past its conversion can be extended — use --force to start it over`);
      throw new InputError(`${ck.dir}: its model (config.json) is not the one this run trains at step ${ck.state.step}; use --force to start over`);
    }
    if (writes) trimMetrics(out, ck.state.step);
    const phase = await makeModelTrainer(ck.model, o.train, inputs.seq, ck.params, ck.adam, o.ranks);
    const s = ck.state;
    return new TrainingRun(o, inputs, out, phase, { step: s.step, cursor: { ...s.cursor }, tokensSeen: s.tokensSeen, validLoss: s.validLoss, bestValidLoss: s.bestValidLoss }, ck.dir);
  }

  private emit(e: TrainEvent): void {
    if (this.writes) this.o.onEvent?.(e);
  }

  private log(line: object): void {
    if (this.writes) appendLine(join(this.out, METRICS_FILE), line);
  }

  /** The next micro-batch (read ahead while the previous step ran, when it was). */
  private readonly data = {
    next: (): MicroBatch => {
      const b = this.ahead?.batch ?? this.reader.next(this.at.cursor, this.t.micro_batch);
      this.ahead = undefined;
      return b;
    },
    readAhead: (): void => {
      const cursorBefore = { ...this.at.cursor };
      this.ahead = { batch: this.reader.next(this.at.cursor, this.t.micro_batch), cursorBefore };
    },
    skip: (): void => this.reader.skip(this.at.cursor, this.t.micro_batch),
  };

  /** Where the data stands for a checkpoint: before the micro-batch read ahead. */
  private consumedCursor(): DataCursor {
    return this.ahead ? { ...this.ahead.cursorBefore } : { ...this.at.cursor };
  }

  async run(started: number): Promise<TrainStats> {
    const { t, at } = this;
    const sessionOptions = runSessionOptions(denseOf(this.o.model), t, this.o.ranks?.threads);
    // Only rank 0 reports MFU; the other ranks need no peak.
    const peakFlops = this.o.peakFlops ?? (this.writes ? (await measureGemmPeak(sessionOptions)).flops : NaN);
    const tokensPerStep = t.micro_batch * t.accumulation * this.inputs.seq;
    this.emit({ type: 'start', step: at.step, steps: t.steps, ...(this.resumedFrom ? { resumedFrom: this.resumedFrom } : {}), phase: phaseAt(this.o.model, this.convertAt, at.step + 1, 'step'), peakFlops, tokensPerStep, convertAt: this.convertAt });
    try {
      while (at.step < t.steps) {
        await this.step(peakFlops, tokensPerStep);
        if (at.step === this.convertAt) await this.convert();
        const interrupted = await this.stopRequested();
        const due = at.step % t.checkpoint_every === 0 || at.step === t.steps;
        // The validations and `best` a straight run would have, whether or not an interrupt came.
        const validDue = due || (t.valid_every > 0 && at.step % t.valid_every === 0);
        const fresh = validDue ? await this.validateAndLog() : undefined;
        // Finite weights can still overflow the forward pass: such a state is no checkpoint to keep.
        if (fresh !== undefined && !Number.isFinite(fresh)) this.diverged(`validation loss ${fresh}`);
        if (due || interrupted) await this.checkpoint(due ? fresh : undefined);
        if (interrupted && at.step < t.steps) {
          // The other ranks wait for rank 0's checkpoint: a rank exiting early makes mpirun end the job.
          await this.world?.barrier();
          throw markAllRanks(new InterruptedError(`training stopped after step ${at.step} of ${t.steps}; checkpoint saved in ${join(this.o.out, 'checkpoints')}; run the same command again to resume`));
        }
      }
    } finally {
      this.phase.trainer.dispose();
      this.reader.close();
      this.validReader.close();
    }
    const steps = stepLines(this.out);
    return {
      steps: at.step,
      tokens: at.tokensSeen,
      finalLoss: steps.at(-1)?.loss ?? NaN,
      validLoss: at.validLoss ?? null,
      bestValidLoss: at.bestValidLoss ?? null,
      convertedAt: this.convertAt || null,
      peakFlops,
      medianTokensPerSecond: median(steps.map((l) => l.tokensPerSecond)),
      medianMfu: median(steps.map((l) => l.mfu)),
      seconds: (performance.now() - started) / 1000,
    };
  }

  private async step(peakFlops: number, tokensPerStep: number): Promise<void> {
    const { t, at } = this;
    const s = at.step + 1;
    const lr = lrAt({ lr: t.lr, steps: t.steps, warmup: t.warmup, minLrRatio: t.min_lr_ratio } satisfies Schedule, s);
    const t0 = performance.now();
    const r = this.world ? await runDataParallelUpdate(this.world, this.phase, t, this.inputs.seq, lr, s, this.data, this.applyUpdate) : await runUpdate(this.phase, t, this.inputs.seq, lr, s, this.data);
    at.step = s;
    at.tokensSeen += tokensPerStep;
    const seconds = (performance.now() - t0) / 1000;
    const flops = countFlops(this.phase.model, this.inputs.seq).train * tokensPerStep;
    const metrics: StepMetrics = {
      type: 'step',
      step: s,
      phase: phaseAt(this.o.model, this.convertAt, s, 'step'),
      tokens: at.tokensSeen,
      loss: r.loss,
      lr,
      gradNorm: r.gradNorm,
      tokensPerSecond: tokensPerStep / seconds,
      mfu: flops / seconds / peakFlops,
      stepMs: seconds * 1000,
      ...(r.allreduceMs !== undefined ? { allreduceMs: r.allreduceMs } : {}),
    };
    Object.assign(metrics, r.diagnostics.summary(this.phase.model.experts));
    this.log(metrics);
    this.emit(metrics);
    if (!Number.isFinite(r.loss) || !Number.isFinite(r.gradNorm)) this.diverged(`loss ${r.loss}, gradient norm ${r.gradNorm}`);
    this.losses.push(r.loss);
  }

  private diverged(what: string): never {
    const { t } = this;
    const latest = listCheckpoints(this.out).at(-1);
    const kept = latest ? `latest stays at ${latest} (the last finite checkpoint)` : 'no checkpoint was written';
    const clip = t.clip_norm === 0 ? ' or set train.clip_norm (now 0: no clipping)' : '';
    throw markAllRanks(new TrainingDivergedError(`training diverged at step ${this.at.step}: ${what}; ${kept}; lower train.lr (now ${t.lr})${clip} and start over with --force`));
  }

  /** Whether to stop after this step: Ctrl-C/SIGTERM or --stop-after; ranks agree (any rank's signal stops all). */
  private async stopRequested(): Promise<boolean> {
    const local = this.o.signal?.aborted || (this.o.stopAfter !== undefined && this.at.step >= this.o.stopAfter);
    if (!this.world) return local;
    const flag = Int32Array.of(local ? 1 : 0);
    await this.world.allreduce([flag], 'max');
    return flag[0] === 1;
  }

  /** A data-parallel update's last part: every rank the whole update, or (sharded) its own part, then the parameters shared. */
  private readonly applyUpdate: ApplyUpdate = async (lr, step, gradScale) => {
    const r = await this.phase.trainer.apply(lr, step, gradScale);
    for (const v of Object.values(r.diagnostics)) v.dispose();
    const plan = this.phase.ranks?.plan;
    if (plan) await shareUpdatedParams(this.world!, this.phase, plan);
    return { gradNorm: r.gradNorm ?? NaN };
  };

  /** The full state: the parameters, and the AdamW moments gathered from their owners when sharded (undefined on ranks that need none). */
  private async fullState(to: 'root' | 'all'): Promise<TrainState | undefined> {
    const plan = this.phase.ranks?.plan;
    if (!plan) return to === 'all' || this.writes ? readState(this.phase) : undefined;
    const adam = await gatherMoments(this.world!, this.phase, plan, paramSpecs(this.phase.model), to);
    if (!adam) return undefined;
    const params: ParamValues = {};
    for (const s of paramSpecs(this.phase.model)) params[s.name] = this.phase.trainer.read(s.name) as ParamArray;
    return { params, adam };
  }

  private async convert(): Promise<void> {
    const dense = denseOf(this.o.model);
    const st = (await this.fullState('all'))!;
    const moeParams = denseToMoe(st.params, dense, this.o.model, this.t.seed);
    const moments = convertMoments(st.adam, dense, this.o.model);
    this.phase.trainer.dispose();
    this.phase = await makeModelTrainer(this.o.model, this.t, this.inputs.seq, moeParams, moments, this.o.ranks);
    this.emit({ type: 'convert', step: this.at.step, experts: this.o.model.experts, kind: moeKindName(this.o.model) });
  }

  private async validateAndLog(): Promise<number | undefined> {
    const { at } = this;
    const loss = this.world ? await validateAcrossRanks(this.world, this.phase, this.t, this.inputs.seq, this.validReader) : await validate(this.phase, this.t, this.inputs.seq, this.validReader);
    if (loss === undefined) return undefined;
    at.validLoss = loss;
    this.log({ type: 'valid', step: at.step, loss, tokens: at.tokensSeen });
    this.emit({ type: 'valid', step: at.step, loss, tokens: at.tokensSeen });
    return loss;
  }

  /** Saves the state after this step; `fresh` is this step's scheduled validation, which may make it `best`. */
  private async checkpoint(fresh: number | undefined): Promise<void> {
    const { at, t } = this;
    // Every rank holds the same weights, so every rank finds the same non-finite one (in place: no copy).
    for (const s of paramSpecs(this.phase.model)) {
      const a = this.phase.trainer.resident(s.name)!.view() as ParamArray;
      const i = firstNonFinite(a);
      if (i >= 0) this.diverged(`weight ${s.name} holds ${a[i]} at index ${i}`);
    }
    const isBest = fresh !== undefined && (at.bestValidLoss === undefined || fresh < at.bestValidLoss);
    if (isBest) at.bestValidLoss = fresh;
    const state = await this.fullState('root');
    if (!state) return;
    const saved: CheckpointState = {
      step: at.step,
      tokensSeen: at.tokensSeen,
      cursor: this.consumedCursor(),
      rng: { seed: t.seed },
      ...(at.validLoss !== undefined ? { validLoss: at.validLoss } : {}),
      ...(at.bestValidLoss !== undefined ? { bestValidLoss: at.bestValidLoss } : {}),
      phase: phaseAt(this.o.model, this.convertAt, at.step, 'weights'),
    };
    const dir = await writeCheckpoint({ runDir: this.out, state: saved, model: this.phase.model, config: this.o.config, params: state.params, adam: state.adam, tokenizerPath: this.inputs.tokenizerPath, inputs: this.inputs.inputs }, { isBest });
    pruneCheckpoints(this.out, t.keep_last);
    this.emit({ type: 'checkpoint', step: at.step, dir, best: isBest });
  }
}

function appendLine(path: string, line: object): void {
  appendFileSync(path, `${JSON.stringify(line)}\n`);
}
