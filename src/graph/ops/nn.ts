/** Softmax, LogSoftmax, LayerNorm and RMSNorm (ORT's fused kernels forward, VJPs written here). */
import { apply1, requireFloat, requireSameDtype, simpleLowering, type OpDef } from '../op.js';
import { GraphError, fmt, normAxis } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { add, exp, mul, pow, sub } from './elementwise.js';
import { reduceMean, reduceSum, sumTo } from './reduce.js';

const SoftmaxDef: OpDef = {
  type: 'softmax',
  onnxName: 'Softmax',
  lower: simpleLowering('Softmax', (n) => ({ axis: n.attrs.axis as number })),
  vjp: (n, [g], needs) => {
    if (!needs[0]) return [undefined];
    const y = n.outputs[0]!;
    const axis = n.attrs.axis as number;
    // dx = y ⊙ (g − Σ_axis g⊙y)
    return [mul(y, sub(g!, reduceSum(mul(g!, y), axis, true)))];
  },
};

export function softmax(x: Tensor, axis = -1): Tensor {
  requireFloat('softmax', x);
  return apply1(SoftmaxDef, [x], { axis: normAxis('softmax', axis, x.rank) }, { dtype: x.dtype, shape: x.shape });
}

const LogSoftmaxDef: OpDef = {
  type: 'logSoftmax',
  onnxName: 'LogSoftmax',
  lower: simpleLowering('LogSoftmax', (n) => ({ axis: n.attrs.axis as number })),
  vjp: (n, [g], needs) => {
    if (!needs[0]) return [undefined];
    const y = n.outputs[0]!;
    // dx = g − softmax(x)·Σ_axis g
    return [sub(g!, mul(exp(y), reduceSum(g!, n.attrs.axis as number, true)))];
  },
};

export function logSoftmax(x: Tensor, axis = -1): Tensor {
  requireFloat('logSoftmax', x);
  return apply1(LogSoftmaxDef, [x], { axis: normAxis('logSoftmax', axis, x.rank) }, { dtype: x.dtype, shape: x.shape });
}

function checkNorm(op: string, x: Tensor, ...ws: Array<Tensor | undefined>): void {
  requireFloat(op, x);
  const d = x.shape[x.rank - 1];
  for (const w of ws) {
    if (!w) continue;
    requireSameDtype(op, x, w);
    if (w.rank !== 1 || w.shape[0] !== d) throw new GraphError(`${op}: weight ${fmt(w.shape)} does not match the last axis of ${fmt(x.shape)}`);
  }
}

/**
 * Shared backward of the normalisations over the last axis, with x̂ the normalised input, r the
 * reciprocal scale and ĝ = g⊙γ:  dx = r·(ĝ − mean(ĝ) − x̂·mean(ĝ⊙x̂)); RMSNorm drops the mean(ĝ) term.
 */
function normInputGrad(gh: Tensor, xhat: Tensor, r: Tensor, centred: boolean): Tensor {
  let inner = sub(gh, mul(xhat, reduceMean(mul(gh, xhat), -1, true)));
  if (centred) inner = sub(inner, reduceMean(gh, -1, true));
  return mul(r, inner);
}

/**
 * ONNX declares the norms' epsilon a float32 attribute, so ORT adds float32(ε) even in float64 graphs;
 * the VJP must differentiate that forward, not one with the exact ε.
 */
const ortEpsilon = (eps: number) => Math.fround(eps);

const LayerNormDef: OpDef = {
  type: 'layerNorm',
  onnxName: 'LayerNorm',
  lower: (ctx, n) => {
    const ins = n.inputs.map((t) => ctx.value(t));
    ctx.emit(n, 'LayerNormalization', ins, [ctx.out(n)], { axis: -1, epsilon: { float: n.attrs.eps as number } });
  },
  vjp: (n, [g], needs) => {
    const [x, gamma, beta] = n.inputs as [Tensor, Tensor, Tensor | undefined];
    const eps = ortEpsilon(n.attrs.eps as number);
    // The forward's mean and 1/σ are recomputed: ORT's LayerNormalization only emits them in float32.
    const xc = sub(x, reduceMean(x, -1, true));
    const r = pow(add(reduceMean(mul(xc, xc), -1, true), eps), -0.5);
    const xhat = mul(xc, r);
    return [
      needs[0] ? normInputGrad(mul(g!, gamma), xhat, r, true) : undefined,
      needs[1] ? sumTo(mul(g!, xhat), gamma.shape) : undefined,
      beta && needs[2] ? sumTo(g!, beta.shape) : undefined,
    ];
  },
};

/** LayerNorm over the last axis: (x − mean)/√(var + eps)·γ (+ β). */
export function layerNorm(x: Tensor, gamma: Tensor, beta?: Tensor, eps = 1e-5): Tensor {
  checkNorm('layerNorm', x, gamma, beta);
  return apply1(LayerNormDef, beta ? [x, gamma, beta] : [x, gamma], { eps }, { dtype: x.dtype, shape: x.shape });
}

const RmsNormDef: OpDef = {
  type: 'rmsNorm',
  onnxName: 'RMSNorm',
  lower: (ctx, n) => {
    ctx.emit(n, 'RMSNormalization', n.inputs.map((t) => ctx.value(t)), [ctx.out(n)], { axis: -1, epsilon: { float: n.attrs.eps as number } });
  },
  vjp: (n, [g], needs) => {
    const [x, scale] = n.inputs as [Tensor, Tensor];
    const r = pow(add(reduceMean(mul(x, x), -1, true), ortEpsilon(n.attrs.eps as number)), -0.5);
    const xhat = mul(x, r);
    return [needs[0] ? normInputGrad(mul(g!, scale), xhat, r, false) : undefined, needs[1] ? sumTo(mul(g!, xhat), scale.shape) : undefined];
  },
};

/** RMSNorm over the last axis (LLaMA): x/√(mean(x²) + eps)·scale. */
export function rmsNorm(x: Tensor, scale: Tensor, eps = 1e-5): Tensor {
  checkNorm('rmsNorm', x, scale);
  return apply1(RmsNormDef, [x, scale], { eps }, { dtype: x.dtype, shape: x.shape });
}
