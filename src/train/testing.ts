/** Shared by the training tests: the fixtures corpus prepared and packed once per process (random order, no embeddings needed). */
import { join } from 'node:path';
import { buildBatches } from '../batching/build-batches.js';
import { prepare } from '../data/prepare.js';
import { FIXTURE_TRAIN, tempDir } from '../data/testing.js';
import { resolveModelConfig, type ModelConfig } from '../model/index.js';
import type { TrainSettings } from './loop.js';

const cached = new Map<string, Promise<{ tokens: string; batches: string }>>();

/**
 * The fixtures corpus as training batches (random order, 5% validation). Default: byte-level BPE of
 * 320 tokens, 32-token instances; `{ vocabSize: 4096, seqLen: 256 }` is the size at which ORT splits
 * ops across threads (the thread tests).
 */
export function fixtureBatches(o: { vocabSize?: number; seqLen?: number } = {}): Promise<{ tokens: string; batches: string }> {
  const { vocabSize = 320, seqLen = 32 } = o;
  const key = `${vocabSize}/${seqLen}`;
  let made = cached.get(key);
  if (!made) {
    made = (async () => {
      const dir = tempDir('train-fixture');
      const tokens = join(dir, 'tokens');
      await prepare({ inputs: [FIXTURE_TRAIN], out: tokens, vocabSize });
      const batches = join(dir, 'batches');
      await buildBatches({ tokens, out: batches, strategy: 'random', seqLen, validFraction: 0.05, dedup: false });
      return { tokens, batches };
    })();
    cached.set(key, made);
  }
  return made;
}

export const tinyModel = (over: Partial<ModelConfig> = {}): ModelConfig =>
  resolveModelConfig({ vocabSize: 320, dModel: 32, nLayers: 2, nHeads: 2, dFf: 64, contextLength: 32, segmentLength: 8, ffnImpl: 'standard', ...over });

export const tinyTrain = (over: Partial<TrainSettings> = {}): TrainSettings => ({
  steps: 12,
  micro_batch: 4,
  accumulation: 1,
  lr: 3e-3,
  min_lr_ratio: 0.1,
  warmup: 0.1,
  beta1: 0.9,
  beta2: 0.95,
  adam_eps: 1e-8,
  weight_decay: 0.1,
  weight_decay_router: false,
  clip_norm: 1,
  dense_warmup: 0,
  seed: 0,
  valid_every: 0,
  valid_batches: 2,
  checkpoint_every: 100,
  keep_last: 2,
  threads: 1,
  ...over,
});
