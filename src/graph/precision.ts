/**
 * Mixed precision (train.precision bf16): the matrix products (ops flagged `lowPrecision`: MatMul,
 * Einsum, the fused merged-expert FFN) take bf16 operands and give bf16 results; everything else —
 * norms, softmax and its statistics, the loss, the optimizer — stays in the graph's dtype. Parameters
 * stay fp32 (master weights) and are cast where a product uses them, so checkpoints are fp32.
 *
 * Two realisations of the same placement:
 *   real      Cast to bfloat16 → op in bfloat16 → Cast back: for the CUDA provider (ORT's CPU provider
 *             has no bf16 MatMul).
 *   emulated  Cast to bfloat16 and back on every operand and result, op in fp32: the same roundings,
 *             runnable on the CPU. It differs from real only inside the op (accumulation order; the
 *             fused FFN's saved pre-activations stay fp32).
 * Gradients flow through the casts (the Cast VJP casts back), so the backward products of `real` run
 * in bf16 too, and `emulated` rounds their incoming gradient and their results the same way.
 *
 * The policy rewrites ops as they are built (Graph.interceptor), only inside `withPrecision`: the
 * forward pass. grad() builds the backward afterwards from the rewritten nodes.
 */
import type { OpDef, OutSpec } from './op.js';
import { cast } from './ops/shape-ops.js';
import { isFloat, type Graph, type OpInterceptor, type Tensor } from './tensor.js';

/** train.precision. */
export type Precision = 'fp32' | 'bf16';
export const PRECISIONS: readonly Precision[] = ['fp32', 'bf16'];
/** How a bf16 graph is built: bf16 ops (a GPU) or fp32 ops with bf16 rounding (the CPU). */
export type Realisation = 'real' | 'emulated';

/** The realisation a run on `device` uses for `precision`; undefined: fp32, no rewrite. */
export function precisionRealisation(precision: Precision | undefined, device: 'cpu' | 'cuda'): Realisation | undefined {
  if ((precision ?? 'fp32') === 'fp32') return undefined;
  return device === 'cuda' ? 'real' : 'emulated';
}

/** What a run says once when its bf16 is emulated. */
export const EMULATED_NOTE = 'train.precision bf16 on the CPU is emulated: operands and results of the matrix products rounded to bf16, computed in fp32';

/** Build `fn` with the matrix products in bf16 (`r`), or unchanged (undefined). */
export function withPrecision<T>(g: Graph, r: Realisation | undefined, fn: () => T): T {
  const saved = g.interceptor;
  g.interceptor = r ? lowPrecision(g, r) : undefined;
  try {
    return fn();
  } finally {
    g.interceptor = saved;
  }
}

/** Build `fn` in the graph's own dtype even under a bf16 policy (e.g. routers: routing decisions stay fp32). */
export const fullPrecision = <T>(g: Graph, fn: () => T): T => withPrecision(g, undefined, fn);

const BF16 = 'bfloat16';

/** x rounded to bf16 and back to its dtype (round to nearest even, ONNX Cast). */
const roundTrip = (x: Tensor): Tensor => (isFloat(x.dtype) && x.dtype !== BF16 ? cast(cast(x, BF16), x.dtype) : x);

function lowPrecision(g: Graph, r: Realisation): OpInterceptor {
  return (def: OpDef, inputs: readonly Tensor[], attrs: Record<string, unknown>, outs: readonly OutSpec[], label?: string) => {
    if (!def.lowPrecision) return undefined;
    if (r === 'emulated') {
      const node = g.addNode(def, inputs.map(roundTrip), attrs, outs, label);
      return node.outputs.map(roundTrip);
    }
    const ins = inputs.map((t) => (isFloat(t.dtype) ? cast(t, BF16) : t));
    const node = g.addNode(def, ins, attrs, outs.map((o) => (isFloat(o.dtype) ? { ...o, dtype: BF16 } : o)), label);
    return node.outputs.map((t, i) => cast(t, outs[i]!.dtype));
  };
}
