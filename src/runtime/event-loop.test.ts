import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { writeModel } from '../graph/onnx/writer.js';
import { loadRuntime } from './index.js';

// A chain of k MatMuls of n×n: ~2kn³ FLOPs, long enough to notice a blocked event loop.
function matmulChain(n: number, k: number): Uint8Array {
  const nodes = Array.from({ length: k }, (_, i) => ({
    opType: 'MatMul',
    name: `chain/matmul_${i}`,
    inputs: [i === 0 ? 'x' : `h${i}`, 'w'],
    outputs: [i === k - 1 ? 'y' : `h${i + 1}`],
  }));
  return writeModel({
    graphName: 'matmul_chain',
    opsets: { '': 21 },
    nodes,
    inputs: [
      { name: 'x', dtype: 'float32', shape: [n, n] },
      { name: 'w', dtype: 'float32', shape: [n, n] },
    ],
    outputs: [{ name: 'y', dtype: 'float32', shape: [n, n] }],
  });
}

describe('runs on a worker thread', () => {
  it('keeps the event loop turning while a long run executes', async () => {
    const runtime = loadRuntime();
    const n = 768;
    const session = await runtime.createSession(matmulChain(n, 24), { intraOpThreads: 1 });
    const w = new Float32Array(n * n).map((_, i) => ((i % 13) - 6) / (13 * n));
    const x = runtime.tensor('float32', [n, n], new Float32Array(n * n).fill(0.25));
    const wValue = runtime.tensor('float32', [n, n], w);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const start = performance.now();
    const { y } = await session.run({ x, w: wValue });
    const elapsed = performance.now() - start;
    clearInterval(timer);
    assert.ok(elapsed > 100, `the run should be long enough to measure (took ${elapsed.toFixed(0)} ms)`);
    // A blocked loop would give 0–1 ticks; a free one about elapsed/5. Allow a loaded 2-core machine slack.
    assert.ok(ticks >= elapsed / 5 / 4, `${ticks} timer ticks during a ${elapsed.toFixed(0)} ms run`);
    assert.equal(y!.shape.join('x'), `${n}x${n}`);

    // The same run with blocking: true holds the loop: the control that proves the count above means something.
    let blockedTicks = 0;
    const blockedTimer = setInterval(() => blockedTicks++, 5);
    const blockedStart = performance.now();
    const blocked = await session.run({ x, w: wValue }, { blocking: true });
    const blockedElapsed = performance.now() - blockedStart;
    clearInterval(blockedTimer);
    assert.ok(blockedTicks <= 1, `${blockedTicks} ticks during a ${blockedElapsed.toFixed(0)} ms blocking run`);
    assert.deepEqual(blocked.y!.read(), y!.read(), 'blocking and worker runs agree');
    for (const v of [x, wValue, y!, blocked.y!]) v.dispose();
  });

  it('reports a failed blocking run as a rejected promise', async () => {
    const runtime = loadRuntime();
    const session = await runtime.createSession(matmulChain(2, 1));
    const good = { dtype: 'float32' as const, shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) };
    const { y } = await session.run({ x: good, w: good }, { blocking: true });
    assert.deepEqual(Array.from(y!.read() as Float32Array), [7, 10, 15, 22]);
    session.dispose();
    await assert.rejects(session.run({ x: good, w: good }, { blocking: true }), /disposed/);
  });
});
