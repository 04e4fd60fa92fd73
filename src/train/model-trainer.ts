/**
 * One phase's trainer: the compiled train step of a model with its parameters and AdamW moments
 * resident (Trainer), and what the loop asks of it — one optimizer update, a validation pass, the
 * state read back for checkpoints, and the dense → MoE moments.
 */
import { compileTrainStep } from '../graph/compile/train-step.js';
import { EMULATED_NOTE, precisionRealisation } from '../graph/precision.js';
import { denseToMoe, loryTrainSpec, modelSessionOptions, paramSpecs, type ModelConfig, type ParamArray, type ParamValues } from '../model/index.js';
import { deviceSessionOptions, parseDevice, type Device, type ResidentValue } from '../runtime/index.js';
import type { World } from '../parallel/mpi.js';
import { planShards, type ShardPlan } from '../parallel/shard.js';
import type { InstanceReader, MicroBatch } from './data.js';
import { StepDiagnostics } from './diagnostics.js';
import { optimizerConfig, type TrainSettings } from './settings.js';
import { Trainer } from './trainer.js';

export interface ModelTrainer {
  model: ModelConfig;
  trainer: Trainer;
  /** This rank's part of a data-parallel run; `plan` when the optimizer state is sharded. */
  ranks?: { world: World; plan?: ShardPlan };
}

/** How a data-parallel run's ranks train: the world, whether AdamW state is sharded, threads per rank. */
export interface RankSetup {
  world: World;
  shard: boolean;
  threads?: number | undefined;
}

export interface TrainState {
  params: ParamValues;
  adam: { m: ParamValues; v: ParamValues };
}

const M = (p: string) => `opt/m/${p}`;
const V = (p: string) => `opt/v/${p}`;

/** The session options of a run: the model's (custom-op library) and the configured thread count (else the rank's share of the cores). */
export const runSessionOptions = (model: ModelConfig, t: TrainSettings, rankThreads?: number) => {
  const threads = t.threads ?? rankThreads;
  const device = trainDevice(t);
  return { ...modelSessionOptions(model, device.provider), ...deviceSessionOptions(device), ...(threads ? { intraOpThreads: threads } : {}) };
};

/** The run's device (train.device, already checked usable by the command). */
export const trainDevice = (t: TrainSettings): Device => parseDevice(t.device ?? 'cpu', 'train.device');

/** How the run's train.precision is built on its device (undefined: fp32). */
export const trainPrecision = (t: TrainSettings) => precisionRealisation(t.precision, trainDevice(t).provider);

/** What a run says once about its precision: bf16 on the CPU is emulated. */
export const precisionNote = (t: TrainSettings): string | undefined => (trainPrecision(t) === 'emulated' ? EMULATED_NOTE : undefined);

export async function makeModelTrainer(model: ModelConfig, t: TrainSettings, seq: number, params: ParamValues, adam?: TrainState['adam'], ranks?: RankSetup): Promise<ModelTrainer> {
  const plan = ranks?.shard ? planShards(paramSpecs(model), ranks.world.size) : undefined;
  const owns = plan ? (name: string) => plan.get(name) === ranks!.world.rank : undefined;
  const device = trainDevice(t);
  const compiled = compileTrainStep(loryTrainSpec(model, { batch: t.micro_batch, seq, recompute: t.recompute ?? false, provider: device.provider, precision: trainPrecision(t) }, { optimizer: optimizerConfig(t), accumulation: t.accumulation > 1 || ranks !== undefined, ...(owns ? { owns } : {}) }));
  const graphs = ranks ? (['eval', 'accumulate', 'apply'] as const) : undefined;
  const trainer = await Trainer.create(compiled, params, runSessionOptions(model, t, ranks?.threads), graphs, device.name);
  if (adam) {
    for (const s of paramSpecs(model)) {
      if (owns && !owns(s.name)) continue;
      trainer.resident(M(s.name))!.write(adam.m[s.name]!);
      trainer.resident(V(s.name))!.write(adam.v[s.name]!);
    }
  }
  return { model, trainer, ...(ranks ? { ranks: { world: ranks.world, ...(plan ? { plan } : {}) } } : {}) };
}

export function readState(phase: ModelTrainer): TrainState {
  const params: ParamValues = {};
  const m: ParamValues = {};
  const v: ParamValues = {};
  for (const s of paramSpecs(phase.model)) {
    params[s.name] = phase.trainer.read(s.name) as ParamArray;
    m[s.name] = phase.trainer.read(M(s.name)) as ParamArray;
    v[s.name] = phase.trainer.read(V(s.name)) as ParamArray;
  }
  return { params, adam: { m, v } };
}

/**
 * The AdamW moments of the converted model. Every expert starts as a copy of the dense FFN and, with
 * the near-uniform fresh router, receives about eᵢ·g ≈ g/E of the dense gradient g; so its moments
 * are the dense ones tiled with m/E and v/E² — the moments it would hold had it seen g/E all along
 * (Adam's update m/√v is scale-free, so the first MoE updates continue the dense trajectory). Routers
 * are new: their moments start at zero. Non-FFN moments are copied. The step counter continues.
 */
export function convertMoments(dense: TrainState['adam'], denseModel: ModelConfig, moe: ModelConfig): TrainState['adam'] {
  const E = moe.experts;
  const tile = (src: ParamValues, scale: number) => {
    const out = denseToMoe(src, denseModel, moe, 0);
    for (const s of paramSpecs(moe, 'moe')) {
      const a = out[s.name]!;
      if (s.role === 'router') a.fill(0);
      else if (s.role === 'ffn') for (let i = 0; i < a.length; i++) a[i] = a[i]! * scale;
    }
    return out;
  };
  return { m: tile(dense.m, 1 / E), v: tile(dense.v, 1 / (E * E)) };
}

export const feeds = (b: MicroBatch, batch: number, seq: number) => ({
  tokens: { dtype: 'int64' as const, shape: [batch, seq], data: b.tokens },
  targets: { dtype: 'int64' as const, shape: [batch, seq], data: b.targets },
});

function collect(diagnostics: Record<string, ResidentValue>, into: StepDiagnostics): void {
  for (const [name, v] of Object.entries(diagnostics)) {
    into.add(name, v.read() as Float32Array | Float64Array);
    v.dispose();
  }
}

export interface UpdateResult {
  loss: number;
  gradNorm: number;
  diagnostics: StepDiagnostics;
  /** Data-parallel runs: the time the gradient allreduce took on this rank (waiting for the slower ranks included). */
  allreduceMs?: number;
}

/**
 * One optimizer update: `accumulation` micro-batches (summed, then applied with 1/accumulation), or a
 * single fused step. `next()` hands out the micro-batch to run; `readAhead()` reads the following one
 * while ORT works on the current.
 */
export async function runUpdate(phase: ModelTrainer, t: TrainSettings, seq: number, lr: number, step: number, data: { next(): MicroBatch; readAhead(): void }): Promise<UpdateResult> {
  const B = t.micro_batch;
  const diagnostics = new StepDiagnostics();
  if (t.accumulation === 1) {
    const run = phase.trainer.step(feeds(data.next(), B, seq), lr, step);
    data.readAhead();
    const r = await run;
    collect(r.diagnostics, diagnostics);
    return { loss: r.loss, gradNorm: r.gradNorm ?? NaN, diagnostics };
  }
  let sum = 0;
  for (let k = 0; k < t.accumulation; k++) {
    const run = phase.trainer.accumulate(feeds(data.next(), B, seq));
    data.readAhead();
    const r = await run;
    collect(r.diagnostics, diagnostics);
    sum += r.loss;
  }
  const r = await phase.trainer.apply(lr, step, 1 / t.accumulation);
  for (const v of Object.values(r.diagnostics)) v.dispose();
  return { loss: sum / t.accumulation, gradNorm: r.gradNorm ?? NaN, diagnostics };
}

/** The validation instances a pass reads: `valid_batches` micro-batches of them (0: all). */
export const validationRows = (t: TrainSettings, reader: InstanceReader): number => (t.valid_batches > 0 ? Math.min(reader.count, t.valid_batches * t.micro_batch) : reader.count);

/** Validation micro-batch `i` (of a pass over `rows` instances): its mean LM loss times its real rows. */
export async function validationBatchLoss(phase: ModelTrainer, t: TrainSettings, seq: number, reader: InstanceReader, i: number, rows: number): Promise<number> {
  const B = t.micro_batch;
  const start = i * B;
  const n = Math.min(B, rows - start);
  const r = await phase.trainer.eval(feeds(reader.slice(start, n, B), B, seq));
  // Token-level MoE kinds train on LM loss + auxiliary terms; validation compares the LM loss alone.
  const lmLoss = r.diagnostics['diag/lm_loss'];
  const loss = lmLoss ? Number(lmLoss.read()[0]) : r.loss;
  for (const v of Object.values(r.diagnostics)) v.dispose();
  return loss * n; // the mean over this batch's n real rows (padding rows are ignored: label -100)
}

/** Mean LM loss over the validation instances; undefined when there are none. */
export async function validate(phase: ModelTrainer, t: TrainSettings, seq: number, reader: InstanceReader): Promise<number | undefined> {
  const rows = validationRows(t, reader);
  if (rows === 0) return undefined;
  let sum = 0;
  for (let i = 0; i * t.micro_batch < rows; i++) sum += await validationBatchLoss(phase, t, seq, reader, i, rows);
  return sum / rows;
}
