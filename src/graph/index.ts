/** lory's tensor-graph builder, autodiff and ONNX export: the public surface of src/graph. */
export { Graph, Tensor, type Node, type ParamOptions, type Region, type TensorKind } from './tensor.js';
export { GraphError, broadcastShapes, type Shape } from './shape.js';
export { apply, apply1, type OpDef, type LowerContext, type OutSpec, type Vjp } from './op.js';
export * from './ops/elementwise.js';
export { reduceSum, reduceMean, reduceSumSquare, sumTo } from './ops/reduce.js';
export { reshape, transpose, transposeLast, slice, concat, expand, pad, cast, where, stopGradient, unsqueeze } from './ops/shape-ops.js';
export { matmul, einsum } from './ops/linalg.js';
export { softmax, logSoftmax, layerNorm, rmsNorm } from './ops/nn.js';
export { rope, ropeTables } from './ops/rope.js';
export { embedding } from './ops/embedding.js';
export { SCATTER_ROWS_OP, type ScatterImpl } from './ops/scatter-rows.js';
export { take, scatterAdd, topK, cumsum, equal, less, arange } from './ops/index-ops.js';
export { crossEntropy } from './ops/loss.js';
export { causalMask } from './ops/mask.js';
export { defineOp, type CustomOpSpec } from './ops/custom.js';
export { grad, type GradOptions } from './grad.js';
export { EMULATED_NOTE, PRECISIONS, fullPrecision, precisionRealisation, withPrecision, type Precision, type Realisation } from './precision.js';
export { exportModel, liveNodes, ONNX_OPSET, type ExportOptions, type ExportedModel } from './onnx/lower.js';
