/**
 * The model sizes issue 13 measures the Lory layer at, shared by bench/moe-ort.ts and
 * bench/moe-profile.ts. "dense" is the same config with E = 1 (the same active size).
 */
import { compileTrainStep } from '../src/graph/compile/train-step.js';
import { Trainer } from '../src/train/trainer.js';
import { resolveModelConfig, type ModelConfig } from '../src/model/config.js';
import { loryTrainSpec } from '../src/model/model.js';
import { modelSessionOptions } from '../src/model/moe.js';
import { initParams } from '../src/model/params.js';
import { randomTokens } from '../src/model/testing.js';
import type { SessionOptions } from '../src/runtime/index.js';

export interface StepShape {
  layers: number;
  d: number;
  heads: number;
  E: number;
  T: number;
  seq: number;
  batch: number;
  vocab: number;
}

export const STEP_SHAPES: Record<string, StepShape> = {
  tiny: { layers: 4, d: 256, heads: 4, E: 8, T: 64, seq: 256, batch: 8, vocab: 4096 },
  small: { layers: 8, d: 512, heads: 8, E: 8, T: 128, seq: 512, batch: 8, vocab: 4096 },
  // The train step of issue 5's benchmark (docs/kernels.md, earlier tables).
  issue5: { layers: 4, d: 256, heads: 4, E: 8, T: 128, seq: 512, batch: 4, vocab: 4096 },
};

export type StepImpl = 'custom' | 'standard' | 'dense';

export function stepShape(name: string): StepShape {
  const s = STEP_SHAPES[name];
  if (!s) throw new Error(`unknown config '${name}'; configs: ${Object.keys(STEP_SHAPES).join(', ')}`);
  return s;
}

export function stepConfig(s: StepShape, impl: StepImpl): ModelConfig {
  return resolveModelConfig({
    vocabSize: s.vocab,
    dModel: s.d,
    nLayers: s.layers,
    nHeads: s.heads,
    contextLength: s.seq,
    experts: impl === 'dense' ? 1 : s.E,
    segmentLength: s.T,
    ffnImpl: impl === 'dense' ? 'standard' : impl,
  });
}

export interface PreparedStep {
  name: string;
  trainer: Trainer;
  /** Bytes of parameters and optimizer state, ×2 (the trainer's ping-pong buffers). */
  stateBytes: number;
  run: () => Promise<void>;
  dispose: () => void;
}

/** Compiles the train step of `impl` at shape `s` and creates its trainer (random tokens, AdamW). */
export async function prepareStep(s: StepShape, impl: StepImpl, options: SessionOptions, beforeCreate?: () => void): Promise<PreparedStep> {
  const c = stepConfig(s, impl);
  const { batch: B, seq: S } = s;
  const compiled = compileTrainStep(loryTrainSpec(c, { batch: B, seq: S }));
  const init = initParams(c, 3);
  const stateBytes = 2 * [...compiled.params, ...compiled.state].reduce((a, p) => a + 4 * p.shape.reduce((x, y) => x * y, 1), 0);
  beforeCreate?.();
  const trainer = await Trainer.create(compiled, init, { ...modelSessionOptions(c), ...options });
  const tokens = randomTokens(B * S, c.vocabSize, 11);
  const batch = {
    tokens: { dtype: 'int64' as const, shape: [B, S], data: BigInt64Array.from(tokens, BigInt) },
    targets: { dtype: 'int64' as const, shape: [B, S], data: BigInt64Array.from(tokens.map((t) => (t * 7 + 3) % c.vocabSize), BigInt) },
  };
  let step = 0;
  return {
    name: `step-${impl}`,
    trainer,
    stateBytes,
    run: async () => {
      const r = await trainer.step(batch, 1e-4, ++step);
      for (const d of Object.values(r.diagnostics)) d.dispose();
    },
    dispose: () => trainer.dispose(),
  };
}
