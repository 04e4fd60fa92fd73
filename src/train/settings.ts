/** What a training run is told: the `train:` section (src/pipeline/schema.ts spells it), and what it reports. */
import type { AdamWConfig } from '../graph/optim/adamw.js';
import type { Precision } from '../graph/precision.js';
import { isMoe, type ModelConfig } from '../model/index.js';
import type { RoutingStats } from './routing-stats.js';

/** The `train:` section, resolved. */
export interface TrainSettings {
  steps: number;
  micro_batch: number;
  accumulation: number;
  lr: number;
  min_lr_ratio: number;
  warmup: number;
  beta1: number;
  beta2: number;
  adam_eps: number;
  weight_decay: number;
  weight_decay_router: boolean;
  clip_norm: number;
  dense_warmup: number;
  seed: number;
  valid_every: number;
  valid_batches: number;
  checkpoint_every: number;
  keep_last: number;
  threads?: number | undefined;
  /** Shard the AdamW state across ranks (ZeRO-1); only under mpirun. */
  shard_optimizer?: boolean | undefined;
  /** Recompute each layer's forward in the backward pass instead of keeping its activations. */
  recompute?: boolean | undefined;
  /** cpu, cuda or cuda:N (validated and checked usable before training starts). */
  device?: string | undefined;
  /** Matrix products in bf16 (master weights, optimizer, norms, softmax, loss in fp32); default fp32. */
  precision?: Precision | undefined;
}

export type Phase = 'dense' | 'moe';

export interface StepMetrics {
  type: 'step';
  step: number;
  phase: Phase;
  tokens: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokensPerSecond: number;
  mfu: number;
  stepMs: number;
  /** Data-parallel runs: rank 0's time in the gradient allreduce this step (including waiting for the other ranks). */
  allreduceMs?: number;
  routing?: Array<{ layer: number } & RoutingStats>;
  diag?: Record<string, number>;
}

export type TrainEvent =
  | { type: 'start'; step: number; steps: number; resumedFrom?: string; phase: Phase; peakFlops: number; tokensPerStep: number; convertAt: number }
  | StepMetrics
  | { type: 'valid'; step: number; loss: number; tokens: number }
  | { type: 'convert'; step: number; experts: number; kind: string }
  | { type: 'checkpoint'; step: number; dir: string; best: boolean };

export interface TrainStats {
  steps: number;
  tokens: number;
  finalLoss: number;
  validLoss: number | null;
  bestValidLoss: number | null;
  convertedAt: number | null;
  peakFlops: number;
  medianTokensPerSecond: number;
  medianMfu: number;
  seconds: number;
}

/** What the optimizer does per parameter group (src/model/params.ts names the groups). */
export function optimizerConfig(t: TrainSettings): AdamWConfig {
  return {
    beta1: t.beta1,
    beta2: t.beta2,
    eps: t.adam_eps,
    weightDecay: { decay: t.weight_decay, no_decay: 0, router: t.weight_decay_router ? t.weight_decay : 0 },
    clipNorm: t.clip_norm,
  };
}

/** The step after whose update a Lory run converts to MoE (0: no dense warm-up). */
export function conversionStep(model: ModelConfig, t: TrainSettings): number {
  return isMoe(model) && t.dense_warmup > 0 ? Math.max(1, Math.round(t.dense_warmup * t.steps)) : 0;
}

/** The dense model a Lory run warms up with: the same model with one plain FFN per layer. */
export const denseOf = (c: ModelConfig): ModelConfig => ({ ...c, experts: 1, ffnImpl: 'standard' });

/**
 * The phase of step `step` (or of the weights after it, for checkpoints): a dense model — a dense run,
 * or a Lory run before its conversion — is 'dense'; experts are 'moe'.
 */
export function phaseAt(model: ModelConfig, convertAt: number, step: number, of: 'step' | 'weights'): Phase {
  if (!isMoe(model)) return 'dense';
  if (convertAt === 0) return 'moe';
  return of === 'step' ? (step <= convertAt ? 'dense' : 'moe') : step < convertAt ? 'dense' : 'moe';
}
