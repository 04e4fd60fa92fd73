/**
 * Gradient check: builds f(inputs) → y, differentiates L = Σ y⊙w (w random) with grad(), and compares
 * every analytic gradient entry with a central finite difference of L computed through ORT.
 */
import type { AnyTypedArray, DType } from '../onnx/dtype.js';
import { exportModel } from '../onnx/lower.js';
import { grad } from '../grad.js';
import { mul } from '../ops/elementwise.js';
import { reduceSum } from '../ops/reduce.js';
import { Graph, type Tensor } from '../tensor.js';
import type { SessionOptions } from '../../runtime/index.js';
import { loadModel, type HostTensor } from './execute.js';
import { randomArray, rng } from './random.js';

export interface GradInput {
  name: string;
  shape: number[];
  /** Integer inputs (ids, labels) take `values` and get no gradient. */
  dtype?: DType;
  values?: number[];
  /** Draw from [lo, hi] instead of ±[lo, hi] (log, sqrt, pow bases). */
  positive?: boolean;
  lo?: number;
  hi?: number;
  /** Differentiate w.r.t. this input (default: every float input). */
  grad?: boolean;
}

export interface GradCase {
  dtype: 'float32' | 'float64';
  inputs: GradInput[];
  build(g: Graph, xs: Tensor[]): Tensor;
  seed?: number;
  /** Session options, e.g. the custom-op libraries the graph's ops need. */
  session?: SessionOptions;
}

export interface GradCheckResult {
  /** Largest |analytic − numeric| / (atol + rtol·|numeric|): ≤ 1 passes. */
  worst: number;
  detail: string;
  checked: number;
}

const DEFAULTS = {
  float64: { eps: 1e-6, rtol: 1e-6, atol: 1e-8 },
  float32: { eps: 1e-2, rtol: 2e-2, atol: 2e-3 },
};

function typed(dtype: DType, values: number[]): AnyTypedArray {
  switch (dtype) {
    case 'float64':
      return Float64Array.from(values);
    case 'int64':
      return BigInt64Array.from(values.map((v) => BigInt(v)));
    case 'int32':
      return Int32Array.from(values);
    case 'bool':
      return Uint8Array.from(values);
    default:
      return Float32Array.from(values);
  }
}

export async function gradCheck(c: GradCase, tol: Partial<typeof DEFAULTS.float64> = {}): Promise<GradCheckResult> {
  const { eps, rtol, atol } = { ...DEFAULTS[c.dtype], ...tol };
  const rand = rng(c.seed ?? 1234);
  const g = new Graph();
  const xs = c.inputs.map((i) => g.input(i.name, i.dtype ?? c.dtype, i.shape));
  const y = c.build(g, xs);
  const w = g.constant(c.dtype, y.shape, typed(c.dtype, randomArray(y.size, rand)));
  const loss = reduceSum(mul(y, w));
  const wrt = c.inputs.map((inp, k) => ({ inp, t: xs[k]! })).filter(({ inp, t }) => (inp.grad ?? true) && (t.dtype === 'float32' || t.dtype === 'float64'));
  const grads = grad(loss, wrt.map((x) => x.t));
  const outputs: Record<string, Tensor> = { loss };
  grads.forEach((gr, k) => (outputs[`grad/${wrt[k]!.inp.name}`] = gr));
  const model = exportModel(g, { outputs, inputs: xs });
  const session = await loadModel(model.bytes, c.session ?? {});

  const feeds: Record<string, HostTensor> = {};
  c.inputs.forEach((inp, k) => {
    const dtype = xs[k]!.dtype;
    const n = xs[k]!.size;
    const values = inp.values ?? randomArray(n, rand, { positive: inp.positive ?? false, lo: inp.lo ?? 0.2, hi: inp.hi ?? 1.2 });
    feeds[inp.name] = { dtype, shape: inp.shape, data: typed(dtype, values) };
  });
  const analytic = await session.run(feeds);
  let worst = 0;
  let detail = '';
  let checked = 0;
  for (const { inp } of wrt) {
    const data = feeds[inp.name]!.data as Float32Array | Float64Array;
    const an = analytic[`grad/${inp.name}`]!.data as Float32Array | Float64Array;
    for (let i = 0; i < data.length; i++) {
      const x0 = data[i]!;
      data[i] = x0 + eps;
      const lp = Number((await session.run(feeds, ['loss'])).loss!.data[0]);
      data[i] = x0 - eps;
      const lm = Number((await session.run(feeds, ['loss'])).loss!.data[0]);
      data[i] = x0;
      const numeric = (lp - lm) / (2 * eps);
      const err = Math.abs(an[i]! - numeric) / (atol + rtol * Math.abs(numeric));
      checked++;
      if (err > worst || Number.isNaN(err)) {
        worst = Number.isNaN(err) ? Infinity : err;
        detail = `${inp.name}[${i}]: analytic ${an[i]} vs numeric ${numeric}`;
      }
    }
  }
  await session.dispose();
  return { worst, detail, checked };
}
