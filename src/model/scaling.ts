/**
 * An on-paper model of data-parallel training (issue 22): what allreducing the gradients costs per
 * optimizer step against the step's compute, from the config alone, on assumed hardware. It ignores
 * latency (per-message cost), protocol efficiency and congestion: these are bandwidth lower bounds.
 * bench/scaling-model.ts prints it for the paper's models; docs/distributed-scaling.md discusses it.
 *
 *   ring allreduce           2·(N−1)/N · bytes / bw           bw: per-GPU bandwidth, one direction
 *   hierarchical (M nodes × g GPUs): reduce-scatter inside each node over NVLink, M-node ring
 *   allreduce of each GPU's 1/g shard (g rings in parallel, all through the node's links), allgather
 *   inside the node:
 *                            2·(g−1)/g · bytes / bw_intra + 2·(M−1)/M · bytes / bw_node
 *                            bw_node: the node's inter-node links together, one direction
 *   compute per step         train FLOPs/token · tokens / (N · peak · MFU)
 *   exposed communication    no overlap: comm; overlapped with the backward pass (2/3 of a step's
 *                            FLOPs): max(0, comm − 2/3 · compute)
 *   ZeRO-1                   the same bytes (reduce-scatter of gradients + allgather of updated
 *                            weights = one allreduce); AdamW's moments divided over N ranks
 */
import { countFlops, countParams } from './count.js';
import type { ModelConfig } from './config.js';

/** The backward pass's share of a training step's FLOPs (backward = 2 forwards, countFlops). */
export const BACKWARD_SHARE = 2 / 3;

export function ringAllreduceSeconds(bytes: number, ranks: number, bytesPerSecond: number): number {
  if (ranks <= 1) return 0;
  return ((2 * (ranks - 1)) / ranks) * (bytes / bytesPerSecond);
}

export interface Cluster {
  name: string;
  nodes: number;
  gpusPerNode: number;
  /** Per-GPU bandwidth inside a node (NVLink), bytes/s, one direction. */
  intraNode: number;
  /** A node's inter-node links together, bytes/s, one direction. */
  interNode: number;
}

export const gpus = (c: Cluster): number => c.nodes * c.gpusPerNode;

/** Allreduce time on a cluster: a ring inside one node, a ring of single-GPU nodes, or the hierarchical scheme above. */
export function allreduceSeconds(bytes: number, c: Cluster): number {
  const intra = ringAllreduceSeconds(bytes, c.gpusPerNode, c.intraNode);
  return intra + ringAllreduceSeconds(bytes, c.nodes, c.interNode);
}

export interface ComputeAssumption {
  /** Peak FLOP/s of one GPU at the training dtype. */
  peak: number;
  /** Model FLOPs utilisation: the share of peak the step reaches. */
  mfu: number;
  /** Tokens per optimizer step, all ranks together (the global batch). */
  tokens: number;
  /** Sequence length (the attention term of the FLOP count). */
  seq: number;
}

export function computeSeconds(c: ModelConfig, a: ComputeAssumption, ranks: number): number {
  return (countFlops(c, a.seq).train * a.tokens) / (ranks * a.peak * a.mfu);
}

/** Communication left on the critical path when it overlaps the backward pass perfectly. */
export function exposedSeconds(comm: number, compute: number): number {
  return Math.max(0, comm - BACKWARD_SHARE * compute);
}

/** Communication's share of a step: no overlap, and perfect overlap with the backward pass. */
export function commShare(comm: number, compute: number): { serial: number; overlapped: number } {
  const exposed = exposedSeconds(comm, compute);
  return { serial: comm / (compute + comm), overlapped: exposed / (compute + exposed) };
}

export interface GradientBytes {
  total: number;
  active: number;
  fp32: number;
  bf16: number;
}

/** Every parameter has a gradient, so the allreduce carries all E experts while a token meets one merged FFN. */
export function gradientBytes(c: ModelConfig): GradientBytes {
  const p = countParams(c);
  return { total: p.total, active: p.active, fp32: 4 * p.total, bf16: 2 * p.total };
}

/** AdamW's two fp32 moments per parameter, per rank: whole (plain data parallel) or 1/N of them (ZeRO-1). */
export function adamStateBytes(c: ModelConfig, ranks: number, zero1: boolean): number {
  return (8 * countParams(c).total) / (zero1 ? ranks : 1);
}
