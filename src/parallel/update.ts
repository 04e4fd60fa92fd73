/**
 * One optimizer update across ranks (data parallelism). The step's `accumulation` micro-batches are
 * the 1-rank run's, in its order; rank r runs micro-batches r, r+N, … into its resident gradient
 * accumulators, the accumulators are summed across ranks in place (MPI_Allreduce), and every rank
 * applies the same update — or, with sharded optimizer state, its own shard (src/parallel/shard.ts).
 * Losses and routing diagnostics are gathered and summed in micro-batch order, so they are the
 * 1-rank run's bit for bit; the gradient sum is too where each rank holds one term (N = accumulation).
 */
import { feeds, validationBatchLoss, validationRows, type ModelTrainer, type UpdateResult } from '../train/model-trainer.js';
import { StepDiagnostics } from '../train/diagnostics.js';
import type { InstanceReader, MicroBatch } from '../train/data.js';
import type { TrainSettings } from '../train/settings.js';
import type { ResidentValue } from '../runtime/index.js';
import type { World } from './mpi.js';

/** The micro-batches a step hands out, in the 1-rank order. */
export interface StepData {
  next(): MicroBatch;
  /** Passes over the next micro-batch without reading it (another rank runs it). */
  skip(): void;
}

/** The diagnostics a micro-batch reports, flattened: name → values. */
type Diagnostics = Array<[string, Float64Array]>;

function readDiagnostics(diagnostics: Record<string, ResidentValue>): Diagnostics {
  const out: Diagnostics = [];
  for (const [name, v] of Object.entries(diagnostics)) {
    out.push([name, Float64Array.from(v.read() as Float32Array | Float64Array)]);
    v.dispose();
  }
  return out;
}

/**
 * Every micro-batch's loss and diagnostics, in micro-batch order, on every rank: one allgather of
 * rows [loss, diagnostics…] × accumulation, where each rank fills the rows of its micro-batches.
 */
async function gatherMicroBatches(world: World, mine: Map<number, { loss: number; diag: Diagnostics }>, accumulation: number): Promise<Array<{ loss: number; diag: Diagnostics }>> {
  const layout = [...mine.values()][0]?.diag.map(([name, v]) => [name, v.length] as const) ?? [];
  const width = 1 + layout.reduce((n, [, len]) => n + len, 0);
  const row = new Float64Array(accumulation * width);
  for (const [k, m] of mine) {
    row[k * width] = m.loss;
    let at = k * width + 1;
    for (const [, v] of m.diag) {
      row.set(v, at);
      at += v.length;
    }
  }
  const rows = await world.gatherRows(row);
  return Array.from({ length: accumulation }, (_, k) => {
    const r = rows[k % world.size]!.subarray(k * width, (k + 1) * width);
    let at = 1;
    const diag: Diagnostics = layout.map(([name, len]) => {
      const v = r.slice(at, at + len);
      at += len;
      return [name, v];
    });
    return { loss: r[0]!, diag };
  });
}

/** Sums the resident gradient accumulators across ranks, in place. */
export async function allreduceGradients(world: World, phase: ModelTrainer): Promise<void> {
  const views = phase.trainer.compiled.state.filter((s) => s.kind === 'grad_acc').map((s) => phase.trainer.resident(s.name)!.view());
  await world.allreduce(views, 'sum');
}

/** The applied update: every rank the whole one, or (sharded) each its part and then the parameters exchanged. */
export type ApplyUpdate = (lr: number, step: number, gradScale: number) => Promise<{ gradNorm: number }>;

export async function runDataParallelUpdate(world: World, phase: ModelTrainer, t: TrainSettings, seq: number, lr: number, step: number, data: StepData, apply: ApplyUpdate): Promise<UpdateResult> {
  const A = t.accumulation;
  const mine = new Map<number, { loss: number; diag: Diagnostics }>();
  for (let k = 0; k < A; k++) {
    if (k % world.size !== world.rank) {
      data.skip();
      continue;
    }
    const r = await phase.trainer.accumulate(feeds(data.next(), t.micro_batch, seq));
    mine.set(k, { loss: r.loss, diag: readDiagnostics(r.diagnostics) });
  }
  const t0 = performance.now();
  await allreduceGradients(world, phase);
  const allreduceMs = performance.now() - t0;
  const all = await gatherMicroBatches(world, mine, A);
  const diagnostics = new StepDiagnostics();
  let sum = 0;
  for (const m of all) {
    sum += m.loss;
    for (const [name, v] of m.diag) diagnostics.add(name, v);
  }
  const { gradNorm } = await apply(lr, step, 1 / A);
  return { loss: sum / A, gradNorm, diagnostics, allreduceMs };
}

/**
 * Mean LM loss over the validation instances, the batches divided among ranks (batch i on rank
 * i mod N) and summed in batch order: the 1-rank figure exactly.
 */
export async function validateAcrossRanks(world: World, phase: ModelTrainer, t: TrainSettings, seq: number, reader: InstanceReader): Promise<number | undefined> {
  const rows = validationRows(t, reader);
  if (rows === 0) return undefined;
  const batches = Math.ceil(rows / t.micro_batch);
  const weighted = new Float64Array(batches);
  for (let i = world.rank; i < batches; i += world.size) weighted[i] = await validationBatchLoss(phase, t, seq, reader, i, rows);
  const gathered = await world.gatherRows(weighted);
  let sum = 0;
  for (let i = 0; i < batches; i++) sum += gathered[i % world.size]![i]!;
  return sum / rows;
}
