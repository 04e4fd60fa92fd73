/**
 * Row scatter-add, the lowering shared by `scatterAdd` and the embedding gradient:
 * out = zeros[rows, ...rest] with out[ids[i]] += u[i] for i = 0, 1, …, repeated ids accumulating.
 *
 * Never ScatterND(reduction='add'): ONNX Runtime's CPU ScatterND splits the update rows across its
 * intra-op threads, and two threads adding into one output row lose each other's updates (a
 * read-modify-write race). With repeated ids — every embedding gradient of real text — gradients came
 * out wrong by up to ~20% of a row at 2 threads, differently in every run (docs/graph.md).
 *
 * Both lowerings here sum each output element's contributions in increasing i, starting from 0, so
 * they give the same bits as each other and at every thread count:
 * - 'lory': `ai.lory::ScatterAddRows` (kernels/lory-ops/include/lory/scatter_rows.h): threads own
 *   column blocks and each walks the ids in order. Needs lory's op library registered.
 * - 'standard': ScatterElements(axis 0, reduction add) with the ids broadcast along each row, which ORT
 *   runs as one sequential loop: correct everywhere, several times slower on big tables.
 */
import type { AnyTypedArray, DType } from '../onnx/dtype.js';
import type { LowerContext } from '../op.js';
import { GraphError } from '../shape.js';
import type { Node, Tensor } from '../tensor.js';

export type ScatterImpl = 'lory' | 'standard';
export const SCATTER_ROWS_OP = { domain: 'ai.lory', opType: 'ScatterAddRows', version: 1 } as const;

/** ONNX TensorProto dtype code of int64 (for Cast). */
const INT64 = 7;

function zeroOf(dtype: DType): AnyTypedArray {
  switch (dtype) {
    case 'float64':
      return new Float64Array(1);
    case 'float32':
      return new Float32Array(1);
    case 'int64':
      return new BigInt64Array(1);
    case 'int32':
      return new Int32Array(1);
    default:
      throw new GraphError(`scatterAdd: unsupported dtype ${dtype}`);
  }
}

/** Checks a requested implementation: lory's op exists for float32 and float64 only. */
export function scatterImplFor(impl: ScatterImpl | undefined, dtype: DType): ScatterImpl {
  return impl === 'lory' && (dtype === 'float32' || dtype === 'float64') ? 'lory' : 'standard';
}

/** Lowering of a scatterAdd node (ids, u; attribute `scatter`): the deterministic scatter-add into its output. */
export function lowerScatterAddRows(ctx: LowerContext, n: Node): void {
  const [ids, u] = n.inputs as [Tensor, Tensor];
  const impl = n.attrs.scatter as ScatterImpl;
  const out = n.outputs[0]!;
  const rows = out.shape[0]!;
  const width = out.shape.slice(1).reduce((a, b) => a * b, 1);
  let ids64 = ctx.value(ids);
  if (ids.dtype !== 'int64') {
    ids64 = ctx.tmp(n, 'ids_int64');
    ctx.emit(n, 'Cast', [ctx.value(ids)], [ids64], { to: INT64 });
  }
  const updates = ctx.tmp(n, 'updates'); //                     [N, width]
  ctx.emit(n, 'Reshape', [ctx.value(u), ctx.i64([ids.size, width])], [updates]);
  const summed = ctx.tmp(n, 'summed'); //                       [rows, width]
  if (impl === 'lory') {
    const flat = ctx.tmp(n, 'ids_flat'); //                     [N]
    ctx.emit(n, 'Reshape', [ids64, ctx.i64([ids.size])], [flat]);
    ctx.useOpset(SCATTER_ROWS_OP.domain, SCATTER_ROWS_OP.version);
    ctx.emit(n, SCATTER_ROWS_OP.opType, [flat, updates], [summed], { rows: { int: rows } }, SCATTER_ROWS_OP.domain);
  } else {
    const zeros = ctx.tmp(n, 'zeros');
    ctx.emit(n, 'ConstantOfShape', [ctx.i64([rows, width])], [zeros], { value: { dtype: u.dtype, shape: [1], data: zeroOf(u.dtype) } });
    const column = ctx.tmp(n, 'ids_column');
    ctx.emit(n, 'Reshape', [ids64, ctx.i64([ids.size, 1])], [column]);
    const index = ctx.tmp(n, 'indices'); //                     [N, width]: the row id along each row
    ctx.emit(n, 'Expand', [column, ctx.i64([ids.size, width])], [index]);
    ctx.emit(n, 'ScatterElements', [zeros, index, updates], [summed], { axis: 0, reduction: 'add' });
  }
  ctx.emit(n, 'Reshape', [summed, ctx.i64(out.shape)], [ctx.out(n)]);
}
