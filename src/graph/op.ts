/**
 * What an op is: its ONNX lowering and its vector-Jacobian product (written in other ops).
 * Builder functions (ops/*.ts) check shapes, then call `apply` with the op's definition.
 */
import type { AttributeValue, InitializerTensor } from './onnx/writer.js';
import type { AnyTypedArray, DType } from './onnx/dtype.js';
import { GraphError, type Shape } from './shape.js';
import { Tensor, type Node } from './tensor.js';

/** Handed to `OpDef.lower`: emits ONNX nodes for one IR node. */
export interface LowerContext {
  /** The ONNX value name of a tensor. */
  value(t: Tensor): string;
  /** The value name(s) the node's outputs must be written to. */
  out(node: Node, index?: number): string;
  /** A fresh intermediate value name, derived from the node's name. */
  tmp(node: Node, hint: string): string;
  /** Emit one ONNX node; the first emitted for an IR node carries its name, later ones `name/hint`. */
  emit(node: Node, opType: string, inputs: string[], outputs: string[], attrs?: Record<string, AttributeValue>, domain?: string): void;
  /** An int64 initializer (shapes, axes, starts...), deduplicated. */
  i64(values: readonly number[], shape?: readonly number[]): string;
  /** An arbitrary initializer. */
  initializer(dtype: DType, shape: readonly number[], data: AnyTypedArray): string;
  /** Record that the model needs `domain` at `version` (custom-op domains such as ai.lory). */
  useOpset(domain: string, version: number): void;
}

/**
 * Vector-Jacobian product: given the node and the gradient of the loss w.r.t. each output (undefined
 * where no gradient flows), return the gradient w.r.t. each input, or undefined where `needs[i]` is
 * false or the input is not differentiable.
 */
export type Vjp = (node: Node, grads: ReadonlyArray<Tensor | undefined>, needs: readonly boolean[]) => Array<Tensor | undefined>;

export interface OpDef {
  /** Identifier used in errors (`matmul`). */
  type: string;
  /** Default node label in names (`MatMul`); falls back to `type`. */
  onnxName?: string;
  lower(ctx: LowerContext, node: Node): void;
  /** Absent: gradients cannot flow through this op (grad() throws if they must). */
  vjp?: Vjp;
  /** True for ops whose outputs carry no gradient by design (stop-gradient, comparisons). */
  nondifferentiable?: boolean;
  /** A matrix product: computed in bf16 under a bf16 precision policy (precision.ts). */
  lowPrecision?: boolean;
}

export interface OutSpec {
  dtype: DType;
  shape: Shape;
}

/** Add a node to the operands' graph and return its outputs. */
export function apply(def: OpDef, inputs: readonly Tensor[], attrs: Record<string, unknown>, outs: readonly OutSpec[], label?: string): Tensor[] {
  const first = inputs[0];
  if (!first) throw new GraphError(`${def.type}: needs at least one operand`);
  const rewritten = first.graph.interceptor?.(def, inputs, attrs, outs, label);
  return rewritten ?? first.graph.addNode(def, inputs, attrs, outs, label).outputs;
}

export function apply1(def: OpDef, inputs: readonly Tensor[], attrs: Record<string, unknown>, out: OutSpec, label?: string): Tensor {
  return apply(def, inputs, attrs, [out], label)[0]!;
}

/** A simple op: one ONNX node with the same operands and attributes. */
export function simpleLowering(opType: string, attrs?: (node: Node) => Record<string, AttributeValue>) {
  return (ctx: LowerContext, node: Node) => {
    ctx.emit(
      node,
      opType,
      node.inputs.map((t) => ctx.value(t)),
      node.outputs.map((_, i) => ctx.out(node, i)),
      attrs?.(node),
    );
  };
}

export function requireFloat(op: string, ...ts: Tensor[]): void {
  for (const t of ts) {
    if (!(t.dtype === 'float32' || t.dtype === 'float64' || t.dtype === 'float16' || t.dtype === 'bfloat16')) {
      throw new GraphError(`${op}: expects floating-point operands, got ${t.dtype}${JSON.stringify(t.shape)}`);
    }
  }
}

export function requireSameDtype(op: string, ...ts: Tensor[]): void {
  const d = ts[0]?.dtype;
  for (const t of ts) {
    if (t.dtype !== d) throw new GraphError(`${op}: dtypes differ: ${ts.map((x) => x.dtype).join(' vs ')}`);
  }
}
