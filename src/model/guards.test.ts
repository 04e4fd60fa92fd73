/** Config and conversion guards found in review: one-segment MoE, YAML names in errors, rope/norm mismatch, --seq checks. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../runtime/index.js';
import { parseModelConfig, resolveModelConfig } from './config.js';
import { denseToMoe } from './convert.js';
import { initParams } from './params.js';
import { loryTrainSpec } from './model.js';

test('a MoE training graph over a single segment per sequence is refused: its routers could never get a gradient', () => {
  // model.test.ts itself proves a one-segment batch gives every router exactly zero gradient, the same
  // failure the config already rejects for router_init_std: 0.
  const c = parseModelConfig({ experts: 8, context_length: 512, segment_length: 256, vocab_size: 64, d_model: 16, n_layers: 1, n_heads: 2 });
  assert.throws(() => loryTrainSpec(c, { batch: 1, seq: 256 }), { name: 'ConfigError', message: /holds one model\.segment_length \(256\) segment/ });
  assert.doesNotThrow(() => loryTrainSpec(c, { batch: 1, seq: 512 }));
});

test('dense → MoE conversion errors name the YAML field (model.d_ff), like every other ConfigError', () => {
  const dense = resolveModelConfig({ vocabSize: 16, dModel: 8, nLayers: 1, nHeads: 2, dFf: 12, contextLength: 8, segmentLength: 4 });
  assert.throws(() => denseToMoe(initParams(dense, 1), dense, { ...dense, experts: 4, dFf: 16 }), { message: /model\.d_ff/ });
});

test('dense → MoE conversion refuses a target whose rope_base / norm_eps differ (outputs would not be preserved)', () => {
  const dense = resolveModelConfig({ vocabSize: 16, dModel: 8, nLayers: 1, nHeads: 2, dFf: 12, contextLength: 8, segmentLength: 4 });
  const pd = initParams(dense, 1);
  assert.throws(() => denseToMoe(pd, dense, resolveModelConfig({ ...dense, experts: 4, ropeBase: 500 })), { name: 'ConfigError' });
  assert.throws(() => denseToMoe(pd, dense, resolveModelConfig({ ...dense, experts: 4, normEps: 1e-2 })), { name: 'ConfigError' });
});

test('lory params --seq is checked against the model (≤ context_length, whole segments for MoE)', () => {
  const lory = (...args: string[]) => spawnSync(join(PROJECT_ROOT, 'bin', 'lory'), args, { encoding: 'utf8', cwd: PROJECT_ROOT });
  assert.notEqual(lory('params', '--seq', '100000', 'pipelines/paper-0.3b-8e.yaml').status, 0, '--seq 100000 > context_length 4096');
  assert.notEqual(lory('params', '--seq', '100', 'pipelines/paper-0.3b-8e.yaml').status, 0, '--seq 100: not a whole number of 256-token segments');
});
