/** Embedding lookup (Gather on axis 0); its gradient scatters-adds rows back into a zero table. */
import { apply1, requireFloat, simpleLowering, type OpDef } from '../op.js';
import { lowerScatterAddRows, scatterImplFor, type ScatterImpl } from './scatter-rows.js';
import { GraphError, fmt } from '../shape.js';
import type { Tensor } from '../tensor.js';

// dTable = zeros[V,d] with rows ids[n] += g[n]; repeated ids accumulate, deterministically (scatter-rows.ts).
const EmbeddingGradDef: OpDef = {
  type: 'embeddingGrad',
  onnxName: 'EmbeddingGrad',
  lower: (ctx, n) => lowerScatterAddRows(ctx, n, n.inputs[0]!, n.inputs[1]!, n.attrs.scatter as ScatterImpl),
};

const EmbeddingDef: OpDef = {
  type: 'embedding',
  onnxName: 'Gather',
  lower: simpleLowering('Gather', () => ({ axis: 0 })),
  vjp: (n, [g], needs) => {
    const [table, ids] = n.inputs as [Tensor, Tensor];
    const scatter = scatterImplFor(n.attrs.scatter as ScatterImpl | undefined, table.dtype);
    return [needs[0] ? apply1(EmbeddingGradDef, [ids, g!], { scatter }, { dtype: table.dtype, shape: table.shape }) : undefined, undefined];
  },
};

/**
 * table[V, d] looked up at integer ids[...] → [..., d]. `scatter` picks how the gradient's row sums
 * are computed (scatter-rows.ts; 'lory' needs lory's op library in the session).
 */
export function embedding(table: Tensor, ids: Tensor, o: { scatter?: ScatterImpl } = {}): Tensor {
  requireFloat('embedding', table);
  if (table.rank !== 2) throw new GraphError(`embedding: table must be [V, d], got ${fmt(table.shape)}`);
  if (ids.dtype !== 'int64' && ids.dtype !== 'int32') throw new GraphError(`embedding: ids must be int64 or int32, got ${ids.dtype}${fmt(ids.shape)}`);
  return apply1(EmbeddingDef, [table, ids], { scatter: o.scatter ?? 'standard' }, { dtype: table.dtype, shape: [...ids.shape, table.shape[1]!] });
}
