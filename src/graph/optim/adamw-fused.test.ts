/**
 * AdamW with `fused: true` (one ai.lory::AdamWUpdate node per parameter, kernels/lory-ops) against a
 * float64 hand computation and against the elementwise-op graph, on random float32 tensors; plus the
 * op's shape errors. Needs lory's op library (built by bin/setup).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { customOpLibrary, isBuilt, type HostTensor } from '../../runtime/index.js';
import { exportModel } from '../onnx/lower.js';
import { Graph } from '../tensor.js';
import { loadModel } from '../testing/execute.js';
import { normalArray, rng } from '../testing/random.js';
import { adamw, adamwSlots } from './adamw.js';

const lib = customOpLibrary('lory-ops');
const skip = !(lib && isBuilt(lib)) && 'lory-ops library (kernels/build/lory-ops) is not built';
const cfg = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: { decay: 0.1, no_decay: 0 } };
const SHAPES = { w: [37, 129], b: [129] }; // odd sizes: no vector-width multiple
const lr = 3e-3;
const step = 5;

function randomState(seed: number) {
  const r = rng(seed);
  const n = (s: number[]) => s.reduce((a, b) => a * b, 1);
  const state: Record<string, Float32Array> = {};
  for (const [name, shape] of Object.entries(SHAPES)) {
    state[name] = normalArray(n(shape), r, 1);
    state[`g${name}`] = normalArray(n(shape), r, 0.5);
    state[`opt/m/${name}`] = normalArray(n(shape), r, 0.05);
    state[`opt/v/${name}`] = normalArray(n(shape), r, 0.02).map((x) => x * x);
  }
  return state;
}

async function step1(fused: boolean, clipNorm: number, state: Record<string, Float32Array>): Promise<Record<string, HostTensor>> {
  const g = new Graph();
  const w = g.param('w', SHAPES.w);
  const b = g.param('b', SHAPES.b, { group: 'no_decay' });
  const gw = g.input('gw', 'float32', SHAPES.w);
  const gb = g.input('gb', 'float32', SHAPES.b);
  const slots = adamwSlots(g, [w, b]);
  const r = adamw(g, [w, b], [gw, gb], slots, { ...cfg, clipNorm, fused });
  const m = exportModel(g, { outputs: { w1: r.params[0]!, b1: r.params[1]!, mw: r.m[0]!, mb: r.m[1]!, vw: r.v[0]!, vb: r.v[1]!, norm: r.gradNorm } });
  assert.equal('ai.lory' in m.opsets, fused, `fused=${fused}: opsets ${Object.keys(m.opsets).join(',')}`);
  const model = await loadModel(m.bytes, { customOpLibraries: [lib!.path] });
  try {
    const feeds: Record<string, HostTensor> = { 'opt/lr': { dtype: 'float32', shape: [], data: Float32Array.of(lr) }, 'opt/step': { dtype: 'float32', shape: [], data: Float32Array.of(step) } };
    for (const [name, data] of Object.entries(state)) {
      const base = name.replace(/^(g|opt\/m\/|opt\/v\/)/, '') as keyof typeof SHAPES;
      feeds[name] = { dtype: 'float32', shape: SHAPES[base], data };
    }
    return await model.run(feeds);
  } finally {
    await model.dispose();
  }
}

function reference(clipNorm: number, state: Record<string, Float32Array>) {
  let sq = 0;
  for (const name of ['gw', 'gb']) for (const x of state[name]!) sq += x * x;
  const norm = Math.sqrt(sq);
  const scale = clipNorm > 0 ? Math.min(1, clipNorm / (norm + 1e-6)) : 1;
  const out: Record<string, number[]> = {};
  for (const [name, wd] of [['w', 0.1], ['b', 0]] as const) {
    out[`${name}1`] = [];
    out[`m${name}`] = [];
    out[`v${name}`] = [];
    state[name]!.forEach((p0, i) => {
      const g = state[`g${name}`]![i]! * scale;
      const m = cfg.beta1 * state[`opt/m/${name}`]![i]! + (1 - cfg.beta1) * g;
      const v = cfg.beta2 * state[`opt/v/${name}`]![i]! + (1 - cfg.beta2) * g * g;
      const p = p0 * (1 - lr * wd) - ((lr / (1 - cfg.beta1 ** step)) * m) / (Math.sqrt(v / (1 - cfg.beta2 ** step)) + cfg.eps);
      out[`${name}1`]!.push(p);
      out[`m${name}`]!.push(m);
      out[`v${name}`]!.push(v);
    });
  }
  return { norm, out };
}

/** max |got − want| / max |want|, over the update p' − p for parameters (so |p| does not hide it). */
function relErr(got: ArrayLike<number>, want: number[], base?: ArrayLike<number>): number {
  let err = 0;
  let scale = 0;
  want.forEach((x, i) => {
    const b = base ? Number(base[i]) : 0;
    err = Math.max(err, Math.abs(Number(got[i]) - x));
    scale = Math.max(scale, Math.abs(x - b));
  });
  return err / scale;
}

describe('fused AdamW (ai.lory::AdamWUpdate)', { skip }, () => {
  for (const clipNorm of [1.0, 0]) {
    it(`matches a float64 hand computation and the elementwise graph ${clipNorm ? 'with clipping' : 'without clipping'}`, async () => {
      const state = randomState(clipNorm ? 11 : 12);
      const fused = await step1(true, clipNorm, state);
      const plain = await step1(false, clipNorm, state);
      const ref = reference(clipNorm, state);
      for (const [name, want] of Object.entries(ref.out)) {
        const base = name.endsWith('1') ? state[name[0]!] : undefined;
        const eFused = relErr(fused[name]!.data as Float32Array, want, base);
        const ePlain = relErr(plain[name]!.data as Float32Array, want, base);
        // float32 against float64: a few ulps of the update; the elementwise graph sets the scale.
        assert.ok(eFused < 2e-5, `${name}: fused rel err ${eFused.toExponential(2)}`);
        assert.ok(eFused < Math.max(4 * ePlain, 1e-6), `${name}: fused ${eFused.toExponential(2)} vs elementwise graph ${ePlain.toExponential(2)}`);
      }
      assert.ok(Math.abs(Number(fused.norm!.data[0]) - ref.norm) < 1e-5 * ref.norm, 'grad norm');
    });
  }

  it('rejects a hyper input of the wrong size, naming the op and the input', async () => {
    const g = new Graph();
    const p = g.input('p', 'float32', [3]);
    assert.throws(
      () => adamw(g, [p], [g.input('gp', 'float32', [4])], adamwSlots(g, [p]), { ...cfg, clipNorm: 0, fused: true }),
      /AdamWUpdate: expects float32 p, g, m, v of one shape/,
    );
  });
});
