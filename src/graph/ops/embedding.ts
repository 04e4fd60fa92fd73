/** Embedding lookup (Gather on axis 0); its gradient scatters-adds rows back into a zero table. */
import { apply1, requireFloat, simpleLowering, type OpDef } from '../op.js';
import { GraphError, fmt } from '../shape.js';
import type { Tensor } from '../tensor.js';

// dTable = zeros[V,d] with rows ids[n] += g[n]; repeated ids accumulate (ScatterND reduction='add').
const EmbeddingGradDef: OpDef = {
  type: 'embeddingGrad',
  onnxName: 'EmbeddingGrad',
  lower: (ctx, n) => {
    const [ids, g] = n.inputs as [Tensor, Tensor];
    const [V, d] = n.outputs[0]!.shape as [number, number];
    const zeros = ctx.tmp(n, 'zeros');
    ctx.emit(n, 'ConstantOfShape', [ctx.i64([V, d])], [zeros], { value: { dtype: g.dtype, shape: [1], data: g.dtype === 'float64' ? new Float64Array(1) : new Float32Array(1) } });
    const idx = ctx.tmp(n, 'indices');
    const upd = ctx.tmp(n, 'updates');
    // ScatterND takes int64 indices only.
    let ids64 = ctx.value(ids);
    if (ids.dtype !== 'int64') {
      ids64 = ctx.tmp(n, 'ids_int64');
      ctx.emit(n, 'Cast', [ctx.value(ids)], [ids64], { to: 7 });
    }
    ctx.emit(n, 'Reshape', [ids64, ctx.i64([ids.size, 1])], [idx]);
    ctx.emit(n, 'Reshape', [ctx.value(g), ctx.i64([ids.size, d])], [upd]);
    ctx.emit(n, 'ScatterND', [zeros, idx, upd], [ctx.out(n)], { reduction: 'add' });
  },
};

const EmbeddingDef: OpDef = {
  type: 'embedding',
  onnxName: 'Gather',
  lower: simpleLowering('Gather', () => ({ axis: 0 })),
  vjp: (n, [g], needs) => {
    const [table, ids] = n.inputs as [Tensor, Tensor];
    return [needs[0] ? apply1(EmbeddingGradDef, [ids, g!], {}, { dtype: table.dtype, shape: table.shape }) : undefined, undefined];
  },
};

/** table[V, d] looked up at integer ids[...] → [..., d]. */
export function embedding(table: Tensor, ids: Tensor): Tensor {
  requireFloat('embedding', table);
  if (table.rank !== 2) throw new GraphError(`embedding: table must be [V, d], got ${fmt(table.shape)}`);
  if (ids.dtype !== 'int64' && ids.dtype !== 'int32') throw new GraphError(`embedding: ids must be int64 or int32, got ${ids.dtype}${fmt(ids.shape)}`);
  return apply1(EmbeddingDef, [table, ids], {}, { dtype: table.dtype, shape: [...ids.shape, table.shape[1]!] });
}
