/**
 * Ops outside ai.onnx (e.g. lory's fused merged-expert FFN in domain `ai.lory`): the caller gives the
 * shape function and, if gradients must flow, the VJP (typically another custom op). Models that use
 * them import the domain's opset; ORT needs the custom-op library registered to run them.
 */
import type { AttributeValue } from '../onnx/writer.js';
import { apply, type LowerContext, type OpDef, type OutSpec, type Vjp } from '../op.js';
import type { Node, Tensor } from '../tensor.js';

export interface CustomOpSpec<A extends Record<string, AttributeValue>> {
  /** ONNX op type, e.g. 'LoryMoEFFN'. */
  opType: string;
  domain: string;
  /** The domain's opset version imported by models using the op. Default 1. */
  version?: number;
  /** Output dtypes and shapes from the inputs; throw a GraphError for operands that do not fit. */
  infer(inputs: readonly Tensor[], attrs: A): OutSpec[];
  vjp?: Vjp;
  /** A matrix product (e.g. the fused FFN): bf16 operands and results under a bf16 precision policy. */
  lowPrecision?: boolean;
  /** Replace the default lowering (one node in `domain`), e.g. to expand into standard ops. */
  lower?(ctx: LowerContext, node: Node): void;
}

/** Declare a custom op; returns its builder: (inputs, attrs) → outputs. */
export function defineOp<A extends Record<string, AttributeValue>>(spec: CustomOpSpec<A>): (inputs: Tensor[], attrs: A) => Tensor[] {
  const version = spec.version ?? 1;
  const def: OpDef = {
    type: `${spec.domain}.${spec.opType}`,
    onnxName: spec.opType,
    lower:
      spec.lower ??
      ((ctx, node) => {
        ctx.useOpset(spec.domain, version);
        ctx.emit(
          node,
          spec.opType,
          node.inputs.map((t) => ctx.value(t)),
          node.outputs.map((_, i) => ctx.out(node, i)),
          node.attrs as Record<string, AttributeValue>,
          spec.domain,
        );
      }),
    ...(spec.vjp ? { vjp: spec.vjp } : {}),
    ...(spec.lowPrecision ? { lowPrecision: true } : {}),
  };
  return (inputs, attrs) => apply(def, inputs, attrs, spec.infer(inputs, attrs));
}
