/**
 * Row scatter-adds (scatterAdd and the embedding gradient) with text-like repeated ids, at 1, 2 and 4
 * threads in fresh sessions: both lowerings against a float64 loop, and the same bits from each other
 * and from every thread count (ops/scatter-rows.ts says why ORT's ScatterND is never used).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { customOpLibrary, isBuilt, type SessionOptions } from '../runtime/index.js';
import * as G from './index.js';
import { loadModel, type HostTensor } from './testing/execute.js';
import { mulberry32 } from '../random/index.js';
import { relativeError } from './testing/compare.js';
import { zipfIds } from './testing/random.js';

const lib = customOpLibrary('lory-ops');
const loryBuilt = lib !== undefined && isBuilt(lib);
const IMPLS: G.ScatterImpl[] = loryBuilt ? ['lory', 'standard'] : ['standard'];
const sessionFor = (impl: G.ScatterImpl, threads: number): SessionOptions => ({ intraOpThreads: threads, ...(impl === 'lory' ? { customOpLibraries: [lib!.path] } : {}) });

const [V, N, W] = [4096, 2048, 128];

function reference(ids: number[], u: ArrayLike<number>, rows: number, width: number): Float64Array {
  const out = new Float64Array(rows * width);
  ids.forEach((id, i) => {
    for (let c = 0; c < width; c++) out[id * width + c] = out[id * width + c]! + u[i * width + c]!;
  });
  return out;
}

type Build = (g: G.Graph, impl: G.ScatterImpl, dtype: 'float32' | 'float64') => { out: G.Tensor; inputs: G.Tensor[] };

const CASES: Array<{ name: string; build: Build }> = [
  {
    name: 'scatterAdd(ids, u, V)',
    build: (g, impl, dtype) => {
      const ids = g.input('ids', 'int64', [N]);
      const u = g.input('u', dtype, [N, W]);
      return { out: G.scatterAdd(ids, u, V, { scatter: impl }), inputs: [ids, u] };
    },
  },
  {
    name: 'the embedding gradient (grad of Σ u ⊙ embedding(table, ids))',
    build: (g, impl, dtype) => {
      const ids = g.input('ids', 'int64', [N]);
      const u = g.input('u', dtype, [N, W]);
      const table = g.input('table', dtype, [V, W]);
      const loss = G.reduceSum(G.mul(G.embedding(table, ids, { scatter: impl }), u));
      return { out: G.grad(loss, [table])[0]!, inputs: [ids, u, table] };
    },
  },
];

describe('row scatter-adds are right and identical at every thread count', () => {
  for (const { name, build } of CASES) {
    for (const dtype of ['float32', 'float64'] as const) {
      it(`${name}, ${dtype}: ${IMPLS.join(' and ')} lowerings, 1/2/4 threads, three fresh sessions each`, async () => {
        const ids = zipfIds(7, N, V);
        const rand = mulberry32(8);
        const uData = dtype === 'float32' ? Float32Array.from({ length: N * W }, () => rand() - 0.5) : Float64Array.from({ length: N * W }, () => rand() - 0.5);
        const feeds: Record<string, HostTensor> = {
          ids: { dtype: 'int64', shape: [N], data: BigInt64Array.from(ids.map(BigInt)) },
          u: { dtype, shape: [N, W], data: uData },
          table: { dtype, shape: [V, W], data: dtype === 'float32' ? new Float32Array(V * W) : new Float64Array(V * W) },
        };
        const ref = reference(ids, uData, V, W);
        const tol = dtype === 'float32' ? 1e-5 : 1e-13;
        let first: Uint8Array | undefined;
        for (const impl of IMPLS) {
          const g = new G.Graph();
          const { out, inputs } = build(g, impl, dtype);
          const bytes = G.exportModel(g, { outputs: { out }, inputs }).bytes;
          assert.ok(!Buffer.from(bytes).includes('ScatterND'), 'never lowered to ScatterND');
          for (const threads of [1, 2, 4]) {
            for (let session = 0; session < 3; session++) {
              const model = await loadModel(bytes, sessionFor(impl, threads));
              const got = (await model.run(Object.fromEntries(inputs.map((t) => [t.name, feeds[t.name]!]))))['out']!;
              await model.dispose();
              const data = got.data as Float32Array | Float64Array;
              const err = relativeError(data, ref);
              assert.ok(err < tol, `${impl}, ${threads} threads, session ${session}: relative error ${err.toExponential(2)} (tolerance ${tol})`);
              const bits = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
              if (!first) first = bits.slice();
              else assert.ok(Buffer.compare(Buffer.from(bits), Buffer.from(first)) === 0, `${impl}, ${threads} threads, session ${session}: not the bits of the first run`);
            }
          }
        }
      });
    }
  }

  it('lory op: an id outside the table is an error naming the id, its position and the range', { skip: !loryBuilt && 'lory-ops library is not built' }, async () => {
    const g = new G.Graph();
    const ids = g.input('ids', 'int64', [3]);
    const u = g.input('u', 'float32', [3, 2]);
    const model = await loadModel(G.exportModel(g, { outputs: { out: G.scatterAdd(ids, u, 4, { scatter: 'lory' }) }, inputs: [ids, u] }).bytes, sessionFor('lory', 2));
    try {
      await assert.rejects(model.run({ ids: { dtype: 'int64', shape: [3], data: BigInt64Array.from([1n, 4n, 0n]) }, u: { dtype: 'float32', shape: [3, 2], data: new Float32Array(6).fill(1) } }), /ScatterAddRows: id 4 at position 1 is outside \[0, 4\)/);
    } finally {
      await model.dispose();
    }
  });

  it('integer scatterAdd (slot bookkeeping of the token-level MoE) takes the standard lowering even when lory is asked', () => {
    const g = new G.Graph();
    const ids = g.input('ids', 'int64', [3]);
    const u = g.input('u', 'int64', [3]);
    const bytes = G.exportModel(g, { outputs: { out: G.scatterAdd(ids, u, 4, { scatter: 'lory' }) }, inputs: [ids, u] }).bytes;
    assert.ok(Buffer.from(bytes).includes('ScatterElements') && !Buffer.from(bytes).includes('ScatterAddRows'));
  });
});
