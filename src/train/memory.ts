/**
 * The memory a training run needs, from the config alone — checked before anything is allocated or
 * written, and printed by `lory params`. An estimate of the peak of one process (one rank, one
 * device), in bytes of the model's dtype:
 *
 *   weights      2·P   resident, double-buffered: each update writes the next values beside the current
 *   AdamW state  4·P   m and v, double-buffered
 *   gradients    1·P   inside the step; +2·P of resident accumulators when accumulation > 1
 *   activations        saved for the backward pass, N = micro_batch·seq tokens, per layer:
 *                        attention 10·d per token (norm, q, k, v, rotated q, k, output, projection,
 *                        residual) + 2·B·h·S² (scores, probabilities); FFN 3·d + slots·4·f
 *                        (gate, up, activation, product; token-level kinds per expert slot; Lory's
 *                        fused op saves 2·f) + the merged weights 3·d·f per segment when the
 *                        standard ops materialise them; one more layer for the backward's working
 *                        set; the head 3·N·V (logits, log-probabilities, their gradient). With
 *                        train.recompute: each layer's input N·d, plus two layers (the one being
 *                        recomputed and the backward's working set)
 *                      — times 1.5, measured: ONNX Runtime's arena holds more than the tensors
 *                      counted here (docs/training.md, "Memory")
 *   checkpoint   3·P   weights and moments copied into JS to write a checkpoint (the arena keeps
 *                      its peak meanwhile, so this adds to the activations)
 *   runtime      a measured constant for Node, ONNX Runtime and the compiled sessions
 */
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { InputError } from '../artifacts/index.js';
import { countParams, expertSlotsPerToken, isLoryMoe, paramSpecs, type ModelConfig } from '../model/index.js';
import { planShards } from '../parallel/shard.js';
import { sizeOf } from '../graph/shape.js';

export interface MemoryEstimate {
  /** Tokens per micro-batch row (the training sequence length) and rows. */
  seq: number;
  microBatch: number;
  /** Layers recomputed in the backward pass (train.recompute): their activations are not kept. */
  recompute: boolean;
  weights: number;
  optimizer: number;
  gradients: number;
  activations: number;
  checkpointCopy: number;
  runtime: number;
  /** The estimated peak of one rank (one process on one device). */
  total: number;
}

/** Node + ONNX Runtime + compiled sessions of a small model, measured (peak RSS of a tiny run). */
const RUNTIME_BYTES = 300e6;
/** Peak RSS over the tensors counted, fitted on three configs (docs/training.md). */
const ARENA_FACTOR = 1.5;

export function estimateTrainingMemory(model: ModelConfig, o: { microBatch: number; seq: number; accumulation: number; ranks?: number; shardOptimizer?: boolean; recompute?: boolean }): MemoryEstimate {
  const bytes = model.dtype === 'float64' ? 8 : 4;
  const P = countParams(model).total;
  const { dModel: d, dFf: f, nLayers: L, nHeads: h, vocabSize: V } = model;
  const B = o.microBatch;
  const S = o.seq;
  const N = B * S;
  const attention = N * 10 * d + 2 * B * h * S * S;
  const lory = isLoryMoe(model);
  const slots = lory ? 1 : expertSlotsPerToken(model, S);
  const ffnPerToken = lory && model.ffnImpl === 'custom' ? 3 * d + 2 * f + d : 3 * d + slots * 4 * f;
  const merged = lory && model.ffnImpl !== 'custom' ? Math.ceil(S / model.segmentLength) * B * 3 * d * f : 0;
  const perLayer = attention + N * ffnPerToken + merged;
  const recompute = o.recompute ?? false;
  const layers = recompute ? L * N * d + 2 * perLayer : (L + 1) * perLayer;
  const activations = ARENA_FACTOR * bytes * (layers + N * (3 * d + 3 * V));
  const weights = 2 * P * bytes;
  // Sharded (ZeRO-1): a rank's moments are 1/N of them (whole tensors: about 1/N). A rank of a
  // data-parallel run always has accumulators, and copies for a checkpoint only on rank 0.
  const ranks = o.ranks ?? 1;
  const optimizer = 4 * (o.shardOptimizer && ranks > 1 ? largestShard(model, ranks) : P) * bytes;
  const gradients = (o.accumulation > 1 || ranks > 1 ? 3 : 1) * P * bytes;
  const checkpointCopy = 3 * P * bytes;
  const total = weights + optimizer + gradients + activations + checkpointCopy + RUNTIME_BYTES;
  return { seq: S, microBatch: B, recompute, weights, optimizer, gradients, activations, checkpointCopy, runtime: RUNTIME_BYTES, total };
}

/** Parameters whose AdamW state the busiest rank keeps when it is sharded (whole tensors, balanced by size). */
export function largestShard(model: ModelConfig, ranks: number): number {
  const specs = paramSpecs(model);
  const load = new Array<number>(ranks).fill(0);
  const size = new Map(specs.map((s) => [s.name, sizeOf(s.shape)]));
  for (const [name, rank] of planShards(specs, ranks)) load[rank]! += size.get(name)!;
  return Math.max(...load);
}

/** The memory this process may use: physical memory, or the container's limit when lower (cgroup v2, then v1). */
export function availableMemory(): { bytes: number; source: string } {
  let bytes = totalmem();
  let source = 'physical memory';
  for (const file of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    try {
      const limit = Number(readFileSync(file, 'utf8').trim());
      if (Number.isFinite(limit) && limit > 0 && limit < bytes) {
        bytes = limit;
        source = 'container limit';
      }
      break;
    } catch {
      // not this cgroup layout
    }
  }
  return { bytes, source };
}

/** Bytes for a message: three significant digits in GB or TB (thousands of TB grouped). */
export function gigabytes(n: number): string {
  const [value, unit] = n >= 1e12 ? [n / 1e12, 'TB'] : [n / 1e9, 'GB'];
  if (value >= 1000) return `${Math.round(value).toLocaleString('en-US')} ${unit}`;
  return `${value >= 100 ? value.toFixed(0) : value >= 1 ? value.toPrecision(3) : value.toFixed(2)} ${unit}`;
}

/** The parts, for messages and `lory params`. */
export function describeMemory(m: MemoryEstimate): string {
  return `weights ${gigabytes(m.weights)}, AdamW state ${gigabytes(m.optimizer)}, gradients ${gigabytes(m.gradients)}, activations ${gigabytes(m.activations)} at micro-batch ${m.microBatch} × ${m.seq} tokens${m.recompute ? ' (layers recomputed)' : ''}`;
}

/** Refuses (exit 2) a run that would not fit, before anything is allocated or written. */
export function checkTrainingMemory(m: MemoryEstimate, available = availableMemory()): void {
  if (m.total <= available.bytes) return;
  throw new InputError(
    `training needs ~${gigabytes(m.total)} (${describeMemory(m)}), this machine has ${gigabytes(available.bytes)} (${available.source}); ` +
      `shrink the model or train.micro_batch (raise train.accumulation to keep the batch)${m.recompute ? '' : ', set train.recompute: true'}, or pass --no-memory-check to try anyway`,
  );
}
