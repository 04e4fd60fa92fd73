/**
 * train.recompute: each layer built as a recomputation region (Graph.checkpoint). The gradients must be
 * the plain graph's bit for bit, the backward must read no layer intermediate but the layer outputs,
 * and ONNX Runtime must run the recomputed copy (not merge it back) after the backward reaches the layer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as G from '../graph/index.js';
import { loadRuntime, readProfile } from '../runtime/index.js';
import { fusedOpAvailable, resolveModelConfig, type ModelConfig } from './config.js';
import { buildLory, loryTrainSpec } from './model.js';
import { compileTrainStep } from '../graph/compile/train-step.js';
import { Trainer } from '../train/trainer.js';
import { modelSessionOptions } from './moe.js';
import { initParams } from './params.js';
import { modelRunner, randomTokens } from './testing.js';

const B = 2;
const S = 16;
const base = { vocabSize: 32, dModel: 16, nLayers: 3, nHeads: 2, dFf: 32, contextLength: S, routerInitStd: 0.5 };
const configs: Array<[string, ModelConfig]> = [
  ['dense', resolveModelConfig(base)],
  ['Lory, standard ops', resolveModelConfig({ ...base, experts: 4, segmentLength: 4, ffnImpl: 'standard' })],
  ...(fusedOpAvailable() ? ([['Lory, fused op', resolveModelConfig({ ...base, experts: 4, segmentLength: 4, ffnImpl: 'custom' })]] as Array<[string, ModelConfig]>) : []),
  ['top-k MoE with auxiliary losses', resolveModelConfig({ ...base, experts: 4, moe: 'top_k', topK: 2, auxLossWeight: 0.01, routerZLossWeight: 0.001 })],
];

const bits = (a: ArrayLike<number>) => Buffer.from(new Float64Array(Array.from(a)).buffer).toString('hex');

for (const [name, c] of configs) {
  test(`recompute gives the plain graph's loss, logits and every gradient bit for bit (${name})`, async () => {
    const params = initParams(c, 7);
    const tokens = randomTokens(B * S, 32, 11);
    const batch = { tokens, targets: randomTokens(B * S, 32, 12) };
    const results = [];
    for (const recompute of [false, true]) {
      const runner = await modelRunner(c, { batch: B, seq: S, training: true, recompute }, { grads: true });
      try {
        results.push(await runner.run(params, batch));
      } finally {
        await runner.dispose();
      }
    }
    const [plain, re] = results as [NonNullable<(typeof results)[0]>, NonNullable<(typeof results)[0]>];
    assert.ok(Number.isFinite(plain.loss));
    assert.equal(bits([re.loss]), bits([plain.loss]), 'loss');
    assert.equal(bits(re.logits), bits(plain.logits), 'logits');
    for (const p of Object.keys(plain.grads)) {
      assert.ok(plain.grads[p]!.some((v) => v !== 0) || p.includes('router'), `${p} has a gradient`);
      assert.equal(bits(re.grads[p]!), bits(plain.grads[p]!), `gradient of ${p}`);
    }
  });
}

test('the compiled train step with recompute (loryTrainSpec) updates the weights bit for bit as the plain one', async () => {
  const c = configs[1]![1];
  const ids = (v: number[]) => ({ dtype: 'int64' as const, shape: [B, S], data: BigInt64Array.from(v.map(BigInt)) });
  const runs: Array<{ trace: number[]; params: string[] }> = [];
  for (const recompute of [false, true]) {
    const compiled = compileTrainStep(loryTrainSpec(c, { batch: B, seq: S, recompute }));
    assert.equal(compiled.graph.nodes.some((n) => n.name.startsWith('grad/recompute/')), recompute);
    const trainer = await Trainer.create(compiled, initParams(c, 5), { ...modelSessionOptions(c), intraOpThreads: 1 }, ['step']);
    try {
      const trace: number[] = [];
      for (let step = 1; step <= 2; step++) {
        const r = await trainer.step({ tokens: ids(randomTokens(B * S, 32, step)), targets: ids(randomTokens(B * S, 32, 50 + step)) }, 1e-2, step);
        for (const v of Object.values(r.diagnostics)) v.dispose();
        trace.push(r.loss, r.gradNorm!);
      }
      runs.push({ trace, params: compiled.params.map((p) => bits(trainer.read(p.name) as Float32Array)) });
    } finally {
      trainer.dispose();
    }
  }
  assert.equal(bits(runs[1]!.trace), bits(runs[0]!.trace), 'losses and gradient norms');
  assert.deepEqual(runs[1]!.params, runs[0]!.params, 'weights after two updates');
});

/** The model with parameter gradients, built plain or with recomputed layers. */
function differentiated(c: ModelConfig, recompute: boolean) {
  const g = new G.Graph();
  const m = buildLory(g, c, { batch: B, seq: S, training: true, recompute });
  const names = Object.keys(m.params);
  const grads = G.grad(m.loss!, names.map((n) => m.params[n]!));
  return { g, m, names, grads };
}

/** Forward tensors of the layers (`layer{l}/…`) that some backward node reads. */
function layerTensorsReadByBackward(g: G.Graph): Set<G.Tensor> {
  const read = new Set<G.Tensor>();
  for (const n of g.nodes) {
    if (!n.name.startsWith('grad/')) continue;
    for (const t of n.inputs) if (t.node && /^model\/layer\d+\/|^layer\d+\//.test(t.node.name)) read.add(t);
  }
  return read;
}

test('with recompute the backward reads only each layer output; without, many layer intermediates', () => {
  const c = configs[1]![1];
  const plain = layerTensorsReadByBackward(differentiated(c, false).g);
  const { g } = differentiated(c, true);
  const re = layerTensorsReadByBackward(g);
  const lastNodeOfLayer = (l: number) => g.nodes.filter((n) => n.name.startsWith(`layer${l}/`) && !n.name.includes('routing')).at(-1)!;
  const outputs = new Set(Array.from({ length: c.nLayers }, (_, l) => lastNodeOfLayer(l).outputs[0]!));
  assert.deepEqual([...re].map((t) => t.name).sort(), [...outputs].map((t) => t.name).sort());
  assert.ok(plain.size > 10 * c.nLayers, `the plain backward keeps ${plain.size} layer tensors`);
  assert.ok(g.nodes.some((n) => n.name.startsWith('grad/recompute/layer0/attn/')), 'the copy is named grad/recompute/<layer scope>/…');
});

test('ONNX Runtime runs the recomputed copy (no merging it back) and only after the backward reached the layer', async () => {
  const c = configs[0]![1];
  const { g, m, names, grads } = differentiated(c, true);
  const outputs: Record<string, G.Tensor> = { loss: m.loss! };
  names.forEach((n, i) => (outputs[`grad/${n}`] = grads[i]!));
  const exported = G.exportModel(g, { outputs, inputs: [m.tokens, m.targets!, ...names.map((n) => m.params[n]!)] });
  const dir = mkdtempSync(join(tmpdir(), 'lory-recompute-'));
  try {
    const session = await loadRuntime().createSession(exported.bytes, { ...modelSessionOptions(c), intraOpThreads: 1, profileFilePrefix: join(dir, 'p') });
    const params = initParams(c, 3);
    const ids = (v: number[]) => ({ dtype: 'int64' as const, shape: [B, S], data: BigInt64Array.from(v.map(BigInt)) });
    const feeds: Record<string, G.Tensor | object> = { tokens: ids(randomTokens(B * S, 32, 1)), targets: ids(randomTokens(B * S, 32, 2)) };
    for (const n of names) feeds[n] = { dtype: c.dtype, shape: [...m.params[n]!.shape], data: params[n]! };
    const res = await session.run(feeds as never);
    for (const v of Object.values(res)) v.dispose();
    const runs = readProfile(session.endProfiling());
    session.dispose();
    const order = runs.map((r) => r.node);
    const at = (prefix: string) => order.flatMap((n, i) => (n.startsWith(prefix) ? [i] : []));
    const forward = at('layer');
    for (let l = 0; l < c.nLayers; l++) {
      const copy = at(`grad/recompute/layer${l}/`);
      assert.ok(at(`grad/recompute/layer${l}/attn/`).length >= 4, `layer ${l}'s recomputed attention ran: ${copy.map((i) => order[i]).join(', ')}`);
      assert.ok(Math.min(...copy) > Math.max(...forward), `layer ${l}'s copy runs after the whole forward`);
      if (l + 1 < c.nLayers) {
        // The gate waits for the gradient of layer l's output, which needs layer l+1's attention backward.
        const attnBackward = at(`grad/layer${l + 1}/attn/`);
        assert.ok(attnBackward.length > 0 && Math.min(...copy) > Math.min(...attnBackward), `layer ${l} is recomputed after layer ${l + 1}'s attention backward began`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
