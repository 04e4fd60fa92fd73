/**
 * Embedding lookup: rows of a [V, d] table at integer ids — `take` (Gather on axis 0), whose gradient
 * scatter-adds rows back into a zero table, deterministically (scatter-rows.ts).
 */
import { requireFloat } from '../op.js';
import { take } from './index-ops.js';
import type { ScatterImpl } from './scatter-rows.js';
import { GraphError, fmt } from '../shape.js';
import type { Tensor } from '../tensor.js';

/**
 * table[V, d] looked up at integer ids[...] → [..., d]. `scatter` picks how the gradient's row sums
 * are computed (scatter-rows.ts; 'lory' needs lory's op library in the session).
 */
export function embedding(table: Tensor, ids: Tensor, o: { scatter?: ScatterImpl } = {}): Tensor {
  requireFloat('embedding', table);
  if (table.rank !== 2) throw new GraphError(`embedding: table must be [V, d], got ${fmt(table.shape)}`);
  if (ids.dtype !== 'int64' && ids.dtype !== 'int32') throw new GraphError(`embedding: ids must be int64 or int32, got ${ids.dtype}${fmt(ids.shape)}`);
  return take(table, ids, o);
}
