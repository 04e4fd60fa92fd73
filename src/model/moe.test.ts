import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fromBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema } from 'onnx-buf';
import * as G from '../graph/index.js';
import { runModel } from '../graph/testing/execute.js';
import { gradCheck } from '../graph/testing/gradcheck.js';
import { isBuilt } from '../runtime/index.js';
import { resolveModelConfig } from './config.js';
import { buildLory } from './model.js';
import { fusedOpLibrary, moeFfn, moeFfnStandard, requireFfnImpl } from './moe.js';
import { initParams } from './params.js';
import { modelRunner, randomTokens, worstError } from './testing.js';

const [Gn, T, d, f, E] = [3, 2, 4, 5, 3];

/** The merged-expert SwiGLU FFN, one loop at a time: the obviously-correct reference. */
function referenceMoeFfn(x: Float64Array, e: Float64Array, wg: Float64Array, wu: Float64Array, wd: Float64Array): Float64Array {
  const y = new Float64Array(Gn * T * d);
  for (let g = 0; g < Gn; g++) {
    const mg = new Float64Array(d * f);
    const mu = new Float64Array(d * f);
    const md = new Float64Array(f * d);
    for (let i = 0; i < E; i++) {
      const w = e[g * E + i]!;
      for (let k = 0; k < d * f; k++) {
        mg[k] = mg[k]! + w * wg[i * d * f + k]!;
        mu[k] = mu[k]! + w * wu[i * d * f + k]!;
        md[k] = md[k]! + w * wd[i * f * d + k]!;
      }
    }
    for (let t = 0; t < T; t++) {
      const xr = x.subarray((g * T + t) * d, (g * T + t + 1) * d);
      const h = new Float64Array(f);
      for (let j = 0; j < f; j++) {
        let a = 0;
        let b = 0;
        for (let k = 0; k < d; k++) {
          a += xr[k]! * mg[k * f + j]!;
          b += xr[k]! * mu[k * f + j]!;
        }
        h[j] = (a / (1 + Math.exp(-a))) * b;
      }
      for (let k = 0; k < d; k++) {
        let s = 0;
        for (let j = 0; j < f; j++) s += h[j]! * md[j * d + k]!;
        y[(g * T + t) * d + k] = s;
      }
    }
  }
  return y;
}

const rand = (n: number, seed: number) => Float64Array.from(randomTokens(n, 2001, seed), (v) => (v - 1000) / 700);

test('the standard merged-expert FFN (Einsum + batched MatMul) equals a loop-by-loop reference', async () => {
  const g = new G.Graph();
  const ins = [
    g.input('x', 'float64', [Gn, T, d]),
    g.input('e', 'float64', [Gn, E]),
    g.input('wg', 'float64', [E, d, f]),
    g.input('wu', 'float64', [E, d, f]),
    g.input('wd', 'float64', [E, f, d]),
  ] as const;
  const y = moeFfn('standard', ...ins);
  const data = ins.map((t, i) => rand(t.size, i + 1));
  const e = data[1]!;
  for (let r = 0; r < Gn; r++) {
    const s = e.subarray(r * E, (r + 1) * E).reduce((a, b) => a + Math.abs(b), 0);
    for (let i = 0; i < E; i++) e[r * E + i] = Math.abs(e[r * E + i]!) / s; // rows on the simplex
  }
  const feeds = Object.fromEntries(ins.map((t, i) => [t.name, { dtype: 'float64' as const, shape: [...t.shape], data: data[i]! }]));
  const out = await runModel(G.exportModel(g, { outputs: { y } }).bytes, feeds);
  const ref = referenceMoeFfn(...(data as [Float64Array, Float64Array, Float64Array, Float64Array, Float64Array]));
  const { worst, at } = worstError(out.y!.data as Float64Array, ref, 1e-12, 1e-14);
  assert.ok(worst <= 1, `element ${at}`);
});

test('the standard merged-expert FFN has correct gradients w.r.t. x, e and all expert weights (finite differences)', async () => {
  const r = await gradCheck({
    dtype: 'float64',
    inputs: [
      { name: 'x', shape: [Gn, T, d] },
      { name: 'e', shape: [Gn, E] },
      { name: 'wg', shape: [E, d, f] },
      { name: 'wu', shape: [E, d, f] },
      { name: 'wd', shape: [E, f, d] },
    ],
    build: (_g, [x, e, wg, wu, wd]) => moeFfnStandard(x!, e!, wg!, wu!, wd!),
  });
  assert.ok(r.worst <= 1, r.detail);
});

test('moeFfn rejects operands that are not x[G,T,d], e[G,E], Wg/Wu[E,d,f], Wd[E,f,d]', () => {
  const g = new G.Graph();
  const x = g.input('x', 'float32', [2, 3, 4]);
  const e = g.input('e', 'float32', [2, 3]);
  const w = g.input('w', 'float32', [3, 4, 5]);
  const wd = g.input('wd', 'float32', [3, 5, 4]);
  for (const impl of ['standard', 'custom'] as const) {
    assert.throws(() => moeFfn(impl, x, e, w, w, w), { name: 'GraphError', message: /Wd\[E,f,d\]; got \[2,3,4\], \[2,3\], \[3,4,5\], \[3,4,5\], \[3,4,5\]/ });
    assert.throws(() => moeFfn(impl, x, g.input(`e_${impl}`, 'float32', [3, 3]), w, w, wd), { name: 'GraphError' });
  }
});

test("ffn_impl 'custom' is the fused ai.lory op: LoryMoEFFN(x, e, Wg, Wu, Wd) forward, LoryMoEFFNGrad(x, e, Wg, Wu, Wd, dy) backward", () => {
  const c = resolveModelConfig({ vocabSize: 16, dModel: 8, nLayers: 2, nHeads: 2, dFf: 12, contextLength: 8, experts: 3, segmentLength: 4, ffnImpl: 'custom' });
  const g = new G.Graph();
  const m = buildLory(g, c, { batch: 2, seq: 8, skipOpLibraryCheck: true });
  const params = Object.values(m.params);
  const grads = G.grad(m.loss!, params);
  const outputs: Record<string, G.Tensor> = { loss: m.loss! };
  params.forEach((p, i) => (outputs[`grad/${p.name}`] = grads[i]!));
  const exported = G.exportModel(g, { outputs });
  assert.equal(exported.opsets['ai.lory'], 1);
  const nodes = fromBinary(ModelProtoSchema, exported.bytes).graph!.node;
  const fwd = nodes.filter((n) => n.opType === 'LoryMoEFFN');
  const bwd = nodes.filter((n) => n.opType === 'LoryMoEFFNGrad');
  assert.equal(fwd.length, 2, 'one fused forward per layer');
  assert.equal(bwd.length, 2, 'one fused backward per layer');
  assert.ok([...fwd, ...bwd].every((n) => n.domain === 'ai.lory'));
  assert.ok(fwd[0]!.input.slice(2).every((v, i) => v === `layers.0.ffn.${['w_gate', 'w_up', 'w_down'][i]}`), `expert weights feed the op directly: ${fwd[0]!.input}`);
  assert.equal(bwd[0]!.input.length, 6);
  assert.equal(bwd[0]!.output.length, 5);
  assert.ok(!nodes.some((n) => n.opType === 'Einsum'), 'no standard merging left');
});

const fused = fusedOpLibrary('cpu');

test("ffn_impl 'custom' without lory's op library is a clear ConfigError; 'standard' needs nothing", { skip: isBuilt(fused) && 'the fused op library is built here' }, () => {
  assert.deepEqual(requireFfnImpl('standard'), []);
  assert.throws(() => requireFfnImpl('custom'), { name: 'ConfigError', message: /model\.ffn_impl: 'custom' is not available: .*not built.*ffn_impl: standard/ });
  const c = resolveModelConfig({ vocabSize: 16, dModel: 8, nLayers: 1, nHeads: 2, contextLength: 8, experts: 2, segmentLength: 4, ffnImpl: 'custom' });
  assert.throws(() => buildLory(new G.Graph(), c, { batch: 1, seq: 8 }), { name: 'ConfigError', message: /not available/ });
});

test("ffn_impl 'custom' is a drop-in replacement: same logits, loss and gradients as 'standard'", { skip: !isBuilt(fused) && `the fused op library is not built (${fused.path})` }, async () => {
  const base = { vocabSize: 16, dModel: 8, nLayers: 2, nHeads: 2, dFf: 12, contextLength: 12, experts: 3, segmentLength: 4, initStd: 0.5, routerInitStd: 2 };
  const std = resolveModelConfig({ ...base, ffnImpl: 'standard' });
  const cus = resolveModelConfig({ ...base, ffnImpl: 'custom' });
  const libs = requireFfnImpl('custom');
  const a = await modelRunner(std, { batch: 2, seq: 12 }, { grads: true });
  const b = await modelRunner(cus, { batch: 2, seq: 12 }, { grads: true, session: { customOpLibraries: libs } });
  try {
    const p = initParams(std, 1);
    const batch = { tokens: randomTokens(24, 16, 1), targets: randomTokens(24, 16, 2) };
    const ra = await a.run(p, batch);
    const rb = await b.run(p, batch);
    const close = (label: string, x: ArrayLike<number>, y: ArrayLike<number>, rtol: number) => {
      const scale = Math.max(...Array.from(y, Math.abs));
      const { worst, at } = worstError(x, y, 0, rtol * scale);
      assert.ok(worst <= 1, `${label}[${at}]: custom ${x[at]} vs standard ${y[at]}`);
    };
    close('logits', rb.logits, ra.logits, 1e-5);
    close('loss', [rb.loss], [ra.loss], 1e-5);
    for (const n of a.paramNames) close(`gradient of ${n}`, rb.grads[n]!, ra.grads[n]!, 1e-4);
  } finally {
    await a.dispose();
    await b.dispose();
  }
});
