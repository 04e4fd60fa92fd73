/**
 * Mean cross-entropy over logits with an ignore-index, forward by ORT's SoftmaxCrossEntropyLoss.
 * Backward: dlogits = (softmax − onehot(label))·valid/count·g, written in standard ops.
 */
import { apply, apply1, requireFloat, type OpDef } from '../op.js';
import { ONNX_DTYPE_CODE } from '../onnx/dtype.js';
import { GraphError, fmt, sameShape } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { reshape } from './shape-ops.js';

// Inputs: log-probabilities [N,C] (the forward's second output), labels [N], upstream gradient [].
const CrossEntropyGradDef: OpDef = {
  type: 'crossEntropyGrad',
  onnxName: 'CrossEntropyGrad',
  lower: (ctx, n) => {
    const [logp, labels, g] = n.inputs as [Tensor, Tensor, Tensor];
    const [N, C] = logp.shape as [number, number];
    const ignore = n.attrs.ignoreIndex as number;
    const dt = { int: ONNX_DTYPE_CODE[logp.dtype] };
    const t = (h: string) => ctx.tmp(n, h);
    const lab = ctx.value(labels);
    ctx.emit(n, 'Exp', [ctx.value(logp)], [t('probs')]);
    // onehot via label == arange(C): no OneHot, whose negative indices would wrap around.
    const range = new BigInt64Array(C).map((_, i) => BigInt(i));
    ctx.emit(n, 'Reshape', [lab, ctx.i64([N, 1])], [t('labels_col')]);
    ctx.emit(n, 'Cast', [t('labels_col')], [t('labels_i64')], { to: { int: ONNX_DTYPE_CODE.int64 } });
    ctx.emit(n, 'Equal', [t('labels_i64'), ctx.initializer('int64', [1, C], range)], [t('onehot_bool')]);
    ctx.emit(n, 'Cast', [t('onehot_bool')], [t('onehot')], { to: dt });
    ctx.emit(n, 'Sub', [t('probs'), t('onehot')], [t('diff')]);
    ctx.emit(n, 'Equal', [t('labels_i64'), ctx.i64([ignore], [])], [t('ignored')]);
    ctx.emit(n, 'Not', [t('ignored')], [t('valid_bool')]);
    ctx.emit(n, 'Cast', [t('valid_bool')], [t('valid')], { to: dt });
    ctx.emit(n, 'ReduceSum', [t('valid'), ctx.i64([0, 1])], [t('count_raw')], { keepdims: 0 });
    const one = ctx.initializer(logp.dtype, [], logp.dtype === 'float64' ? Float64Array.of(1) : Float32Array.of(1));
    ctx.emit(n, 'Max', [t('count_raw'), one], [t('count')]);
    ctx.emit(n, 'Div', [ctx.value(g), t('count')], [t('scale')]);
    ctx.emit(n, 'Mul', [t('valid'), t('scale')], [t('row_scale')]);
    ctx.emit(n, 'Mul', [t('diff'), t('row_scale')], [ctx.out(n)]);
  },
};

const CrossEntropyDef: OpDef = {
  type: 'crossEntropy',
  onnxName: 'SoftmaxCrossEntropyLoss',
  lower: (ctx, n) => {
    // Sum, then divide by max(count, 1): ORT's 'mean' gives 0/0 = NaN when every label is ignored
    // (a padding-only micro-batch), while the backward's scale is finite; both now agree on 0.
    const [logits, labels] = n.inputs as [Tensor, Tensor];
    const t = (h: string) => ctx.tmp(n, h);
    const dt = { int: ONNX_DTYPE_CODE[logits.dtype] };
    ctx.emit(n, 'SoftmaxCrossEntropyLoss', [ctx.value(logits), ctx.value(labels)], [t('loss_sum'), ctx.out(n, 1)], {
      reduction: 'sum',
      ignore_index: n.attrs.ignoreIndex as number,
    });
    ctx.emit(n, 'Cast', [ctx.value(labels)], [t('labels_i64')], { to: { int: ONNX_DTYPE_CODE.int64 } });
    ctx.emit(n, 'Equal', [t('labels_i64'), ctx.i64([n.attrs.ignoreIndex as number], [])], [t('ignored')]);
    ctx.emit(n, 'Not', [t('ignored')], [t('valid_bool')]);
    ctx.emit(n, 'Cast', [t('valid_bool')], [t('valid')], { to: dt });
    ctx.emit(n, 'ReduceSum', [t('valid')], [t('count_raw')], { keepdims: 0 });
    const one = ctx.initializer(logits.dtype, [], logits.dtype === 'float64' ? Float64Array.of(1) : Float32Array.of(1));
    ctx.emit(n, 'Max', [t('count_raw'), one], [t('count')]);
    ctx.emit(n, 'Div', [t('loss_sum'), t('count')], [ctx.out(n, 0)]);
  },
  vjp: (n, [g, glogp], needs) => {
    if (glogp) throw new GraphError(`crossEntropy: no gradient through its log-probabilities output (node ${n.name})`);
    const [logits, labels] = n.inputs as [Tensor, Tensor];
    if (!needs[0]) return [undefined, undefined];
    const logp = n.outputs[1]!;
    return [apply1(CrossEntropyGradDef, [logp, labels, g!], n.attrs, { dtype: logits.dtype, shape: logits.shape }), undefined];
  },
};

/**
 * Mean over non-ignored positions of −log softmax(logits)[label]. logits [..., C], labels [...]
 * (int64/int32); positions whose label equals `ignoreIndex` count neither in the sum nor the mean.
 * When every position is ignored the loss is 0 (and so is its gradient).
 */
export function crossEntropy(logits: Tensor, labels: Tensor, options: { ignoreIndex?: number } = {}): Tensor {
  requireFloat('crossEntropy', logits);
  if (labels.dtype !== 'int64' && labels.dtype !== 'int32') throw new GraphError(`crossEntropy: labels must be int64 or int32, got ${labels.dtype}${fmt(labels.shape)}`);
  if (logits.rank < 2 || !sameShape(logits.shape.slice(0, -1), labels.shape)) {
    throw new GraphError(`crossEntropy: logits ${fmt(logits.shape)} must be labels ${fmt(labels.shape)} plus a class axis`);
  }
  const C = logits.shape[logits.rank - 1]!;
  const flatLogits = reshape(logits, [-1, C]);
  const flatLabels = reshape(labels, [-1]);
  const N = flatLogits.shape[0]!;
  const [loss] = apply(CrossEntropyDef, [flatLogits, flatLabels], { ignoreIndex: options.ignoreIndex ?? -100 }, [
    { dtype: logits.dtype, shape: [] },
    { dtype: logits.dtype, shape: [N, C] },
  ]);
  return loss!;
}
