/**
 * Real training runs for the report's tests, trained once per process: a tiny dense run and a tiny
 * Lory run (dense warm-up, then 4 experts) on the fixtures corpus, with the config.json `lory train`
 * writes (resolvedRunConfig of a pipeline), validation every 6 steps and clipping that bites; and a
 * run that diverges (learning rate 1e6, no clipping), whose last metrics line has a null loss.
 */
import { join } from 'node:path';
import { tempDir } from '../data/testing.js';
import { parsePipeline, resolvedRunConfig } from '../pipeline/load.js';
import { train } from '../train/loop.js';
import { fixtureBatches } from '../train/testing.js';

const PIPELINE = `
name: report-test
batches: { seq_len: 32, strategies: [random] }
model: { vocab_size: 320, d_model: 32, n_layers: 2, n_heads: 2, d_ff: 64, context_length: 32, segment_length: 8, ffn_impl: standard }
train: { steps: 24, micro_batch: 4, lr: 3.0e-3, warmup: 0.1, dense_warmup: 0.25, clip_norm: 0.5, valid_every: 6, valid_batches: 2, checkpoint_every: 12, threads: 1 }
runs:
  - { name: dense, batches: random, model: { experts: 1 } }
  - { name: lory, batches: random, model: { experts: 4 }, train: { seed: 1 } }
  - { name: wild, batches: random, model: { experts: 1 }, train: { lr: 1.0e+6, clip_norm: 0, warmup: 0, steps: 40 } }
`;

export interface TestRuns {
  root: string;
  dense: string;
  lory: string;
  /** Stopped by divergence: no manifest, the last step's loss null. */
  wild: string;
}

let made: Promise<TestRuns> | undefined;

export function trainedRuns(): Promise<TestRuns> {
  made ??= (async () => {
    const { batches } = await fixtureBatches();
    const loaded = parsePipeline(PIPELINE, 'report-test.yaml');
    const root = tempDir('report-runs');
    const out: Record<string, string> = {};
    for (const run of loaded.runs) {
      out[run.name] = join(root, 'runs', run.name);
      try {
        await train({ batches, out: out[run.name]!, model: run.model, train: run.train, config: resolvedRunConfig(loaded, run), peakFlops: 1e10 });
      } catch (error) {
        if ((error as Error).name !== 'TrainingDivergedError' || run.name !== 'wild') throw error;
      }
    }
    return { root, dense: out.dense!, lory: out.lory!, wild: out.wild! };
  })();
  return made;
}
