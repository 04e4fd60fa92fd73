/** The model inside the train-step compiler: routing weights leave the train and eval graphs; it learns. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileTrainStep } from '../graph/compile/train-step.js';
import { Trainer } from '../train/trainer.js';
import type { HostTensor } from '../runtime/index.js';
import { resolveModelConfig } from './config.js';
import { ROUTING_DIAG, loryTrainSpec } from './model.js';
import { initParams } from './params.js';
import { modelSessionOptions } from './moe.js';
import { randomTokens } from './testing.js';

const B = 2;
const S = 16;
const T = 4;
const E = 4;
const c = resolveModelConfig({ vocabSize: 32, dModel: 16, nLayers: 2, nHeads: 2, dFf: 32, contextLength: S, experts: E, segmentLength: T, routerInitStd: 0.5 });
const ids = (v: number[]): HostTensor => ({ dtype: 'int64', shape: [B, S], data: BigInt64Array.from(v.map(BigInt)) });

test('the train and eval graphs export every layer routing weights per sequence and segment as diag/routing/layer{l} [B,N,E]', async () => {
  const compiled = compileTrainStep(loryTrainSpec(c, { batch: B, seq: S }));
  const names = Array.from({ length: c.nLayers }, (_, l) => `diag/${ROUTING_DIAG(l)}`);
  for (const graph of [compiled.step, compiled.eval]) {
    for (const n of names) assert.deepEqual(graph.outputs.find((o) => o.name === n)?.shape, [B, S / T, E], `${n} in ${graph === compiled.step ? 'step' : 'eval'}`);
  }
  const trainer = await Trainer.create(compiled, initParams(c, 1), modelSessionOptions(c));
  try {
    const tokens = randomTokens(B * S, 32, 3);
    const batch = { tokens: ids(tokens), targets: ids(tokens.slice(1).concat(0)) };
    const r = await trainer.eval(batch);
    for (const n of names) {
      const w = r.diagnostics[n]!.read() as Float32Array;
      for (let g = 0; g < B * (S / T); g++) {
        const sum = w.subarray(g * E, (g + 1) * E).reduce((a, b) => a + b, 0);
        assert.ok(Math.abs(sum - 1) < 1e-5, `${n}: segment ${g}'s weights sum to 1`);
      }
      // In each sequence, segment 1 uses its own weights and segment 2 gets segment 1's: rows 1 and 2 agree.
      for (let b = 0; b < B; b++) {
        const at = b * (S / T) * E;
        assert.deepEqual(w.subarray(at, at + E), w.subarray(at + E, at + 2 * E), `sequence ${b}`);
      }
    }
    for (const v of Object.values(r.diagnostics)) v.dispose();
    const s = await trainer.step(batch, 1e-3, 1);
    assert.deepEqual(Object.keys(s.diagnostics).sort(), names);
    for (const v of Object.values(s.diagnostics)) v.dispose();
  } finally {
    trainer.dispose();
  }
});

test('a tiny Lory model trained with the compiled step memorises a batch (loss falls by more than half in 40 steps)', async () => {
  const trainer = await Trainer.create(compileTrainStep(loryTrainSpec(c, { batch: B, seq: S }, { optimizer: { weightDecay: {} } })), initParams(c, 2), modelSessionOptions(c));
  try {
    const tokens = randomTokens(B * S, 32, 5);
    const batch = { tokens: ids(tokens), targets: ids(randomTokens(B * S, 32, 6)) };
    let first = NaN;
    let last = NaN;
    for (let step = 1; step <= 40; step++) {
      const r = await trainer.step(batch, 1e-2, step);
      for (const v of Object.values(r.diagnostics)) v.dispose();
      if (step === 1) first = r.loss;
      last = r.loss;
    }
    assert.ok(Math.abs(first - Math.log(32)) < 0.1, `starts near log V: ${first}`);
    assert.ok(last < first / 2, `loss ${first} → ${last}`);
  } finally {
    trainer.dispose();
  }
});
