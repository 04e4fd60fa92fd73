/**
 * Golden tensors from an independent PyTorch implementation (src/model/golden/generate_golden.py,
 * float64): the same weights and batch through lory's graph must give the same logits, loss, routing
 * weights and gradient of every parameter.
 *
 * Tolerances, per tensor, as max|lory − torch| ≤ rtol·max|torch| + atol:
 *   lory float64: rtol 1e-10, atol 1e-13 (both sides double; only summation order differs: measured ≤ 1e-12)
 *   lory float32: rtol 1e-5 (logits, loss, routing; measured ≤ 6e-7) and 2e-4 (gradients; measured
 *                 ≤ 1.3e-5, the routers' the largest), atol 0 — weights rounded to float32, float32 sums
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../runtime/index.js';
import { parseModelConfig, type ModelDtype } from './config.js';
import type { ParamArray, ParamValues } from './params.js';
import { modelRunner } from './testing.js';

interface Enc {
  shape: number[];
  f64: string;
}
interface GoldenCase {
  name: string;
  model: Record<string, number>;
  batch: number;
  seq: number;
  tokens: number[];
  targets: number[];
  weights: Record<string, Enc>;
  logits: Enc;
  loss: number;
  grads: Record<string, Enc>;
  routing: Enc[];
  prompt_logits?: Enc;
  prompt_routing?: Enc[];
}

const GOLDEN = join(PROJECT_ROOT, 'src', 'model', 'golden', 'golden.json');
const golden = JSON.parse(readFileSync(GOLDEN, 'utf8')) as { cases: GoldenCase[] };

function decode(e: Enc): Float64Array {
  const buf = Buffer.from(e.f64, 'base64');
  const out = new Float64Array(buf.length / 8);
  for (let i = 0; i < out.length; i++) out[i] = buf.readDoubleLE(i * 8);
  assert.equal(out.length, e.shape.reduce((a, b) => a * b, 1), 'golden tensor size matches its shape');
  return out;
}

function weightsAs(c: GoldenCase, dtype: ModelDtype): ParamValues {
  const out: ParamValues = {};
  for (const [k, v] of Object.entries(c.weights)) out[k] = dtype === 'float64' ? decode(v) : Float32Array.from(decode(v));
  return out;
}

function close(label: string, actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, atol: number): void {
  assert.equal(actual.length, expected.length, `${label}: length`);
  let scale = 0;
  let diff = 0;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]!));
    diff = Math.max(diff, Math.abs(actual[i]! - expected[i]!));
  }
  assert.ok(diff <= rtol * scale + atol, `${label}: max |lory − torch| = ${diff.toExponential(2)} exceeds ${rtol}·${scale.toExponential(2)} + ${atol}`);
}

const TOL = {
  float64: { out: [1e-10, 1e-13], grad: [1e-10, 1e-13] },
  float32: { out: [1e-5, 0], grad: [2e-4, 0] },
} as const;

for (const c of golden.cases) {
  for (const dtype of ['float64', 'float32'] as const) {
    test(`lory (${dtype}, 2 threads as users run it) reproduces the PyTorch golden logits, loss, routing weights and every parameter gradient: ${c.name}`, async () => {
      const config = parseModelConfig({ ...c.model, dtype }, `golden ${c.name}`);
      const runner = await modelRunner(config, { batch: c.batch, seq: c.seq }, { grads: true, session: { intraOpThreads: 2 } });
      try {
        assert.deepEqual([...runner.paramNames].sort(), Object.keys(c.grads).sort(), 'lory has exactly the golden parameters');
        const r = await runner.run(weightsAs(c, dtype), { tokens: c.tokens, targets: c.targets });
        const [ro, ao] = TOL[dtype].out;
        const [rg, ag] = TOL[dtype].grad;
        close('logits', r.logits, decode(c.logits), ro, ao);
        close('loss', [r.loss], [c.loss], ro, ao);
        assert.equal(r.routing.length, c.routing.length, 'one routing tensor per MoE layer');
        r.routing.forEach((w, l) => close(`routing weights of layer ${l}`, w, decode(c.routing[l]!), ro, ao));
        for (const [name, e] of Object.entries(c.grads)) close(`gradient of ${name}`, r.grads[name] as ParamArray, decode(e), rg, ag);
      } finally {
        await runner.dispose();
      }
    });
  }
  if (c.prompt_logits) {
    test(`prompt routing (one decision per layer from the mean over the whole prompt) matches PyTorch: ${c.name}`, async () => {
      const config = parseModelConfig({ ...c.model, dtype: 'float64' });
      const runner = await modelRunner(config, { batch: c.batch, seq: c.seq, routing: 'prompt', loss: false });
      try {
        const r = await runner.run(weightsAs(c, 'float64'), { tokens: c.tokens });
        close('prompt-routed logits', r.logits, decode(c.prompt_logits!), 1e-10, 1e-13);
        r.routing.forEach((w, l) => close(`prompt routing weights of layer ${l}`, w, decode(c.prompt_routing![l]!), 1e-10, 1e-13));
      } finally {
        await runner.dispose();
      }
    });
  }
}
