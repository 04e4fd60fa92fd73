/**
 * The train-step compiler: one model-building function → the ONNX graphs of a training step.
 *
 *   step        batch + params + optimizer state → loss, grad_norm, diagnostics, next params/state
 *   eval        batch + params → loss, diagnostics (forward only)
 *   accumulate  batch + params + grad accumulators → loss, diagnostics, next accumulators (+= grads)
 *   apply       params + state + accumulators → next params/state, grad_norm, zeroed accumulators
 *
 * Every graph that updates state names its outputs `next/<input>`; `stateMap` lists output → input so
 * a loop can swap resident values in O(1) and nothing crosses into JS.
 */
import type { DType } from '../onnx/dtype.js';
import type { ValueSpec } from '../onnx/writer.js';
import { exportModel } from '../onnx/lower.js';
import { grad } from '../grad.js';
import { addN, mul } from '../ops/elementwise.js';
import { cast, expand } from '../ops/shape-ops.js';
import { Graph, type Tensor } from '../tensor.js';
import { GraphError } from '../shape.js';
import { adamw, adamwSlots, type AdamWConfig } from '../optim/adamw.js';

export interface ModelOutputs {
  /** Scalar training loss. */
  loss: Tensor;
  /** Extra tensors every graph exports as `diag/<name>` (e.g. routing weights). */
  diagnostics?: Record<string, Tensor>;
}

export interface TrainStepSpec {
  /** Declares batch inputs and parameters on `g` and returns the loss. Called once. */
  build(g: Graph): ModelOutputs;
  optimizer?: Partial<AdamWConfig>;
  /** Also compile the accumulate/apply pair for gradient accumulation over micro-batches. */
  accumulation?: boolean;
  /**
   * Sharded optimizer state (ZeRO stage 1): `apply` updates, and `state` holds AdamW moments for,
   * only the parameters this returns true for; the clipping norm still covers every gradient, and
   * every accumulator is reset. Needs `accumulation`; the `step` graph is then not for use.
   */
  owns?: (param: string) => boolean;
}

export interface CompiledGraph {
  bytes: Uint8Array;
  inputs: ValueSpec[];
  outputs: ValueSpec[];
  /** Output name → the input it replaces on the next run. */
  stateMap: Record<string, string>;
  nodeCount: number;
}

export interface StateSlot {
  name: string;
  dtype: DType;
  shape: number[];
  kind: 'param' | 'adam_m' | 'adam_v' | 'grad_acc';
  /** Parameter group (params only). */
  group?: string;
}

export interface CompiledTrainStep {
  graph: Graph;
  /** Batch inputs (fed fresh each step). */
  batch: ValueSpec[];
  params: StateSlot[];
  /** Optimizer moments and gradient accumulators: start at zero. */
  state: StateSlot[];
  /** Scalar inputs of the update: learning rate and the 1-based update number. */
  schedule: { lr: string; step: string };
  /** Dtype of the scalar inputs (lr, step, grad scale): the parameters' (float64 models get float64 scalars). */
  scalarDtype: DType;
  /** Scalar input of `apply`: multiplier on the accumulated gradients (1/micro-batches for a mean). */
  gradScale: string;
  diagnostics: string[];
  step: CompiledGraph;
  eval: CompiledGraph;
  accumulate?: CompiledGraph;
  apply?: CompiledGraph;
}

export const NEXT = (name: string) => `next/${name}`;

function compiled(g: Graph, outputs: Record<string, Tensor>, stateInputs: Tensor[], forced: Tensor[], graphName: string): CompiledGraph {
  const m = exportModel(g, { outputs, inputs: forced, graphName });
  const stateMap: Record<string, string> = {};
  for (const t of stateInputs) if (NEXT(t.name) in outputs) stateMap[NEXT(t.name)] = t.name;
  return { bytes: m.bytes, inputs: m.inputs, outputs: m.outputs, stateMap, nodeCount: m.nodeCount };
}

export function compileTrainStep(spec: TrainStepSpec): CompiledTrainStep {
  const g = new Graph();
  const { loss, diagnostics = {} } = g.scope('model', () => spec.build(g));
  if (loss.rank !== 0) throw new GraphError(`compileTrainStep: loss must be a scalar, got shape [${loss.shape}]`);
  const params = [...g.params];
  if (params.length === 0) throw new GraphError('compileTrainStep: the model declares no parameters');
  const batch = g.inputs.slice();
  const diag: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(diagnostics)) diag[`diag/${k}`] = t;

  const grads = grad(loss, params);
  // The schedule scalars follow the parameters: a float32 lr would round float64 updates.
  const scalarDtype: DType = params.some((p) => p.dtype === 'float64') ? 'float64' : 'float32';
  const slots = adamwSlots(g, params, scalarDtype);
  const forced = [...batch, ...params, ...slots.m, ...slots.v, slots.lr, slots.step];
  const opt = adamw(g, params, grads, slots, spec.optimizer);
  const stepOut: Record<string, Tensor> = { loss, grad_norm: opt.gradNorm, ...diag };
  params.forEach((p, i) => {
    stepOut[NEXT(p.name)] = opt.params[i]!;
    stepOut[NEXT(slots.m[i]!.name)] = opt.m[i]!;
    stepOut[NEXT(slots.v[i]!.name)] = opt.v[i]!;
  });
  const state = [...params, ...slots.m, ...slots.v];
  const result: CompiledTrainStep = {
    graph: g,
    batch: batch.map((t) => ({ name: t.name, dtype: t.dtype, shape: [...t.shape] })),
    params: params.map((p) => ({ name: p.name, dtype: p.dtype, shape: [...p.shape], kind: 'param', group: g.groupOf(p) })),
    state: [
      ...slots.m.map((t) => ({ name: t.name, dtype: t.dtype, shape: [...t.shape], kind: 'adam_m' as const })),
      ...slots.v.map((t) => ({ name: t.name, dtype: t.dtype, shape: [...t.shape], kind: 'adam_v' as const })),
    ],
    schedule: { lr: slots.lr.name, step: slots.step.name },
    scalarDtype,
    gradScale: 'opt/grad_scale',
    diagnostics: Object.keys(diag),
    step: compiled(g, stepOut, state, forced, 'train_step'),
    eval: compiled(g, { loss, ...diag }, [], [...batch, ...params], 'eval'),
  };

  if (spec.accumulation) {
    const acc = params.map((p) => g.input(`grad_acc/${p.name}`, p.dtype, p.shape));
    const accOut: Record<string, Tensor> = { loss, ...diag };
    // Sum, not Add: ORT fuses MatMul + Add into a Gemm that adds each K-block into the accumulator,
    // so the sum would depend on how the micro-batches are split. With Sum each micro-batch's gradient
    // is complete before it is added, and a data-parallel run (src/parallel) adds the same terms.
    g.scope('accumulate', () => params.forEach((_, i) => (accOut[NEXT(acc[i]!.name)] = addN([acc[i]!, grads[i]!]))));
    result.accumulate = compiled(g, accOut, acc, [...batch, ...params, ...acc], 'accumulate');

    const scale = g.input(result.gradScale, scalarDtype, []);
    const owned = params.map((p, i) => i).filter((i) => spec.owns?.(params[i]!.name) ?? true);
    const pick = <T>(xs: readonly T[]) => owned.map((i) => xs[i]!);
    const ownSlots = { ...slots, m: pick(slots.m), v: pick(slots.v) };
    const applied = g.scope('apply', () => {
      const scaled = acc.map((a) => mul(a, cast(scale, a.dtype)));
      return adamw(g, pick(params), pick(scaled), ownSlots, spec.optimizer, scaled);
    });
    const applyOut: Record<string, Tensor> = { grad_norm: applied.gradNorm };
    owned.forEach((i, j) => {
      applyOut[NEXT(params[i]!.name)] = applied.params[j]!;
      applyOut[NEXT(slots.m[i]!.name)] = applied.m[j]!;
      applyOut[NEXT(slots.v[i]!.name)] = applied.v[j]!;
    });
    params.forEach((p, i) => (applyOut[NEXT(acc[i]!.name)] = g.scope('apply/reset', () => expand(g.scalar(0, p.dtype), p.shape))));
    const ownState = [...pick(params), ...ownSlots.m, ...ownSlots.v];
    result.apply = compiled(g, applyOut, [...ownState, ...acc], [...pick(params), ...ownSlots.m, ...ownSlots.v, ...acc, slots.lr, slots.step, scale], 'apply');
    if (spec.owns) result.state = result.state.filter((s) => s.kind === 'param' || spec.owns!(s.name.replace(/^opt\/[mv]\//, '')));
    result.state.push(...acc.map((t) => ({ name: t.name, dtype: t.dtype, shape: [...t.shape], kind: 'grad_acc' as const })));
  }
  return result;
}
