import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph } from '../tensor.js';
import { exportModel } from '../onnx/lower.js';
import { runModel, type HostTensor } from '../testing/execute.js';
import { adamw, adamwSlots } from './adamw.js';

// Two parameters in different groups, fed their gradients directly so the optimizer alone is tested.
const P = { w: [0.5, -1.25, 2.0, 0.75], s: [1.5, -0.5] };
const GR = { w: [3.0, -4.0, 0.5, 2.0], s: [-6.0, 1.0] };
const M = { w: [0.1, -0.2, 0.0, 0.3], s: [0.05, -0.1] };
const V = { w: [0.01, 0.02, 0.005, 0.04], s: [0.2, 0.01] };
const cfg = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: { decay: 0.1, no_decay: 0 } };
const lr = 0.01;
const step = 3;

/** The same update written out longhand in float64. */
function reference(clipNorm: number) {
  const norm = Math.sqrt([...GR.w, ...GR.s].reduce((a, x) => a + x * x, 0));
  const scale = clipNorm > 0 ? Math.min(1, clipNorm / (norm + 1e-6)) : 1;
  const out: Record<string, { p: number[]; m: number[]; v: number[] }> = {};
  for (const [name, wd] of [['w', 0.1], ['s', 0]] as const) {
    out[name] = { p: [], m: [], v: [] };
    P[name].forEach((p0, i) => {
      const g = GR[name][i]! * scale;
      const m = cfg.beta1 * M[name][i]! + (1 - cfg.beta1) * g;
      const v = cfg.beta2 * V[name][i]! + (1 - cfg.beta2) * g * g;
      const mhat = m / (1 - cfg.beta1 ** step);
      const vhat = v / (1 - cfg.beta2 ** step);
      const p = p0 * (1 - lr * wd) - (lr * mhat) / (Math.sqrt(vhat) + cfg.eps);
      out[name]!.p.push(p);
      out[name]!.m.push(m);
      out[name]!.v.push(v);
    });
  }
  return { norm, out };
}

for (const clipNorm of [2.0, 0]) {
  test(`one AdamW step ${clipNorm ? 'with global-norm clipping ' : 'without clipping '}matches a float64 hand computation`, async () => {
    const g = new Graph();
    const w = g.param('w', [4], { dtype: 'float64' });
    const s = g.param('s', [2], { dtype: 'float64', group: 'no_decay' });
    const gw = g.input('gw', 'float64', [4]);
    const gs = g.input('gs', 'float64', [2]);
    const slots = adamwSlots(g, [w, s], 'float64');
    const r = adamw(g, [w, s], [gw, gs], slots, { ...cfg, clipNorm });
    const m = exportModel(g, { outputs: { w1: r.params[0]!, s1: r.params[1]!, mw: r.m[0]!, ms: r.m[1]!, vw: r.v[0]!, vs: r.v[1]!, norm: r.gradNorm } });
    const f = (d: number[]): HostTensor => ({ dtype: 'float64', shape: d.length ? [d.length] : [], data: Float64Array.from(d) });
    const scalar = (x: number): HostTensor => ({ dtype: 'float64', shape: [], data: Float64Array.of(x) });
    const out = await runModel(m.bytes, {
      w: f(P.w), s: f(P.s), gw: f(GR.w), gs: f(GR.s),
      'opt/m/w': f(M.w), 'opt/m/s': f(M.s), 'opt/v/w': f(V.w), 'opt/v/s': f(V.s),
      'opt/lr': scalar(lr), 'opt/step': scalar(step),
    });
    const ref = reference(clipNorm);
    const close = (got: HostTensor, want: number[], what: string) =>
      want.forEach((x, i) => assert.ok(Math.abs(Number(got.data[i]) - x) <= 1e-12 * Math.max(1, Math.abs(x)), `${what}[${i}]: ${got.data[i]} vs ${x}`));
    close(out.w1!, ref.out.w!.p, 'w');
    close(out.s1!, ref.out.s!.p, 's (no weight decay)');
    close(out.mw!, ref.out.w!.m, 'm(w)');
    close(out.ms!, ref.out.s!.m, 'm(s)');
    close(out.vw!, ref.out.w!.v, 'v(w)');
    close(out.vs!, ref.out.s!.v, 'v(s)');
    close(out.norm!, [ref.norm], 'grad norm');
  });
}
