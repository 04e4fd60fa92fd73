import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadRuntime, readProfile, sumBy } from './index.js';
import { singleNodeModel } from './testing.js';

const matmul = singleNodeModel(
  { opType: 'MatMul', inputs: ['a', 'b'], outputs: ['c'] },
  [
    { name: 'a', dtype: 'float64', shape: ['batch', 3] },
    { name: 'b', dtype: 'float64', shape: [3, 2] },
  ],
  [{ name: 'c', dtype: 'float64', shape: ['batch', 2] }],
);

describe('sessions', () => {
  const runtime = loadRuntime();

  it('loads from a file path and reports names, dtypes and shapes (-1 for symbolic dimensions)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lory-session-'));
    try {
      const path = join(dir, 'matmul.onnx');
      writeFileSync(path, matmul);
      const session = await runtime.createSession(path, { intraOpThreads: 1, interOpThreads: 1, graphOptimizationLevel: 'basic' });
      assert.deepEqual(session.inputs, [
        { name: 'a', dtype: 'float64', shape: [-1, 3] },
        { name: 'b', dtype: 'float64', shape: [3, 2] },
      ]);
      assert.deepEqual(session.outputs, [{ name: 'c', dtype: 'float64', shape: [-1, 2] }]);
      assert.equal(session.executionProvider, 'cpu');
      const { c } = await session.run({
        a: { dtype: 'float64', shape: [2, 3], data: new Float64Array([1, 2, 3, 4, 5, 6]) },
        b: { dtype: 'float64', shape: [3, 2], data: new Float64Array([1, 0, 0, 1, 1, 1]) },
      });
      assert.deepEqual(c!.shape, [2, 2]);
      assert.deepEqual(Array.from(c!.read() as Float64Array), [4, 5, 10, 11]);
      session.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('gives the same numbers at every graph optimisation level', async () => {
    const a = { dtype: 'float64' as const, shape: [1, 3], data: new Float64Array([0.5, -2, 3.25]) };
    const b = { dtype: 'float64' as const, shape: [3, 2], data: new Float64Array([1.5, 2, -1, 0.25, 4, 8]) };
    const results = [];
    for (const level of ['disable', 'basic', 'extended', 'all'] as const) {
      const session = await runtime.createSession(matmul, { graphOptimizationLevel: level });
      results.push(Array.from((await session.run({ a, b })).c!.read() as Float64Array));
    }
    for (const r of results) assert.deepEqual(r, [0.5 * 1.5 + 2 + 13, 1 - 0.5 + 26]);
  });

  it('rejects an unknown optimisation level or provider by name', async () => {
    await assert.rejects(runtime.createSession(matmul, { graphOptimizationLevel: 'max' as never }), /graphOptimizationLevel must be one of disable, basic, extended, all; got 'max'/);
    await assert.rejects(runtime.createSession(matmul, { executionProvider: 'tpu' as never }), /executionProvider must be 'cpu' or 'cuda'; got 'tpu'/);
  });

  it('gives the same numbers with spinning and the CPU arena switched off', async () => {
    const session = await runtime.createSession(matmul, { allowSpinning: false, cpuMemArena: false, intraOpThreads: 2 });
    const { c } = await session.run({
      a: { dtype: 'float64', shape: [1, 3], data: new Float64Array([1, 2, 3]) },
      b: { dtype: 'float64', shape: [3, 2], data: new Float64Array([1, 0, 0, 1, 1, 1]) },
    });
    assert.deepEqual(Array.from(c!.read() as Float64Array), [4, 5]);
    session.dispose();
  });

  it('records every node run in a profile file when profileFilePrefix is set, and returns its path on endProfiling', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lory-profile-'));
    try {
      const session = await runtime.createSession(matmul, { profileFilePrefix: join(dir, 'run'), intraOpThreads: 1 });
      const feeds = {
        a: { dtype: 'float64' as const, shape: [2, 3], data: new Float64Array([1, 2, 3, 4, 5, 6]) },
        b: { dtype: 'float64' as const, shape: [3, 2], data: new Float64Array([1, 0, 0, 1, 1, 1]) },
      };
      for (let i = 0; i < 3; i++) await session.run(feeds);
      const path = session.endProfiling();
      assert.ok(path.startsWith(join(dir, 'run')) && path.endsWith('.json'), `profile path ${path}`);
      const runs = readProfile(path);
      assert.deepEqual(sumBy(runs, (r) => r.op).map(({ key, count }) => ({ key, count })), [{ key: 'MatMul', count: 3 }]);
      assert.ok(runs.every((r) => r.durUs >= 0 && Number.isFinite(r.durUs)));
      assert.deepEqual(runs.map((r) => r.run), [0, 1, 2], 'each node run is attributed to its Session.run');
      assert.equal(session.endProfiling(), '', 'a second endProfiling has nothing left to write');
      session.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('returns an empty path from endProfiling when profiling was never enabled', async () => {
    const session = await runtime.createSession(matmul, { intraOpThreads: 1 });
    assert.equal(session.endProfiling(), '');
    session.dispose();
  });

  it('fetches only the requested outputs', async () => {
    const session = await runtime.createSession(matmul);
    const out = await session.run(
      { a: { dtype: 'float64', shape: [1, 3], data: new Float64Array(3) }, b: { dtype: 'float64', shape: [3, 2], data: new Float64Array(6) } },
      { outputs: ['c'] },
    );
    assert.deepEqual(Object.keys(out), ['c']);
  });
});
