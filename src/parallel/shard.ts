/**
 * Sharded optimizer state (ZeRO stage 1): each rank keeps the AdamW moments of its share of the
 * parameters and updates only those; after the update, each parameter goes from its owner to every
 * rank (MPI_Bcast). Shares are whole tensors, balanced by size. Checkpoints gather the moments on
 * rank 0 in the unsharded format, so a run moves between sharded and unsharded and between rank counts.
 */
import type { ParamArray, ParamValues } from '../model/index.js';
import type { ModelTrainer, TrainState } from '../train/model-trainer.js';
import type { World } from './mpi.js';
import { sizeOf } from '../graph/shape.js';

/** Parameter name → the rank that owns its optimizer state. */
export type ShardPlan = Map<string, number>;

/**
 * Largest tensors first, each to the rank holding the fewest elements so far (ties: the lower rank,
 * then the parameter order): deterministic, so every rank computes the same plan.
 */
export function planShards(params: ReadonlyArray<{ name: string; shape: readonly number[] }>, ranks: number): ShardPlan {
  const order = params.map((p, i) => ({ name: p.name, size: sizeOf(p.shape), i })).sort((a, b) => b.size - a.size || a.i - b.i);
  const load = new Array<number>(ranks).fill(0);
  const plan: ShardPlan = new Map();
  for (const p of order) {
    let r = 0;
    for (let k = 1; k < ranks; k++) if (load[k]! < load[r]!) r = k;
    plan.set(p.name, r);
    load[r]! += p.size;
  }
  return plan;
}

/** The names each rank owns, in parameter order. */
function byOwner(plan: ShardPlan, ranks: number): string[][] {
  const out = Array.from({ length: ranks }, () => [] as string[]);
  for (const [name, r] of plan) out[r]!.push(name);
  return out;
}

/** After a sharded update: every parameter, from its owner to all ranks, in place. */
export async function shareUpdatedParams(world: World, phase: ModelTrainer, plan: ShardPlan): Promise<void> {
  const owned = byOwner(plan, world.size);
  for (let r = 0; r < world.size; r++) {
    if (owned[r]!.length) await world.broadcast(owned[r]!.map((n) => phase.trainer.resident(n)!.view()), r);
  }
}

const M = (p: string) => `opt/m/${p}`;
const V = (p: string) => `opt/v/${p}`;

/**
 * The whole AdamW state, gathered from the owners: on every rank (`to: 'all'`, for the dense → MoE
 * conversion) or on rank 0 only (checkpoints: the other ranks receive into one reused scratch buffer).
 */
export async function gatherMoments(world: World, phase: ModelTrainer, plan: ShardPlan, specs: ReadonlyArray<{ name: string; shape: readonly number[] }>, to: 'root' | 'all'): Promise<TrainState['adam'] | undefined> {
  const keep = to === 'all' || world.isRoot;
  const m: ParamValues = {};
  const v: ParamValues = {};
  let scratch: Float32Array | Float64Array | undefined;
  for (const s of specs) {
    const owner = plan.get(s.name)!;
    for (const [slot, into] of [[M(s.name), m], [V(s.name), v]] as const) {
      const mine = owner === world.rank;
      const here = mine ? phase.trainer.resident(slot)!.view() : undefined;
      const size = sizeOf(s.shape);
      let buffer: ParamArray;
      if (here) buffer = here as ParamArray;
      else if (keep) buffer = (phase.model.dtype === 'float64' ? new Float64Array(size) : new Float32Array(size)) as ParamArray;
      else {
        if (!scratch || scratch.length < size) scratch = phase.model.dtype === 'float64' ? new Float64Array(size) : new Float32Array(size);
        buffer = scratch.subarray(0, size) as ParamArray;
      }
      await world.broadcast([buffer], owner);
      if (keep) into[s.name] = (mine ? buffer.slice() : buffer) as ParamArray;
    }
  }
  return keep ? { m, v } : undefined;
}
