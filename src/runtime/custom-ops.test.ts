import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadRuntime, OrtError, FeedError } from './index.js';
import { singleNodeModel, TEST_OPS_LIBRARY } from './testing.js';

const scaleShiftModel = (alpha: number, beta: number) =>
  singleNodeModel(
    { opType: 'ScaleShift', domain: 'ai.lory.test', inputs: ['x'], outputs: ['y'], attributes: { alpha: { float: alpha }, beta: { float: beta } } },
    [{ name: 'x', dtype: 'float32', shape: [2, 3] }],
    [{ name: 'y', dtype: 'float32', shape: [2, 3] }],
    { '': 21, 'ai.lory.test': 1 },
  );

describe('custom-op libraries', () => {
  const runtime = loadRuntime();
  const x = new Float32Array([0.5, -1.25, 3, 7.75, -0.125, 2]);

  it('registers a library and runs its op with the attributes the model sets', async () => {
    const session = await runtime.createSession(scaleShiftModel(2.5, -1), { customOpLibraries: [TEST_OPS_LIBRARY], intraOpThreads: 1 });
    const { y } = await session.run({ x: { dtype: 'float32', shape: [2, 3], data: x } });
    assert.deepEqual(Array.from(y!.read() as Float32Array), Array.from(x, (v) => Math.fround(2.5 * v - 1)));
    session.dispose();
  });

  it('gives different numbers for different attribute values (the attribute is really read)', async () => {
    const session = await runtime.createSession(scaleShiftModel(-3, 0.5), { customOpLibraries: [TEST_OPS_LIBRARY] });
    const { y } = await session.run({ x: { dtype: 'float32', shape: [2, 3], data: x } });
    assert.deepEqual(Array.from(y!.read() as Float32Array), Array.from(x, (v) => Math.fround(-3 * v + 0.5)));
  });

  it('fails with ORT naming the op when the library is not registered', async () => {
    await assert.rejects(runtime.createSession(scaleShiftModel(1, 0)), (error: Error) => {
      assert.ok(error instanceof OrtError);
      assert.match(error.message, /ScaleShift|ai\.lory\.test/);
      return true;
    });
  });

  it('surfaces an error returned by a custom kernel as a rejected run', async () => {
    const model = singleNodeModel(
      { opType: 'Fail', domain: 'ai.lory.test', inputs: ['x'], outputs: ['y'] },
      [{ name: 'x', dtype: 'float32', shape: [2] }],
      [{ name: 'y', dtype: 'float32', shape: [2] }],
      { '': 21, 'ai.lory.test': 1 },
    );
    const session = await runtime.createSession(model, { customOpLibraries: [TEST_OPS_LIBRARY] });
    await assert.rejects(session.run({ x: { dtype: 'float32', shape: [2], data: new Float32Array([1, 2]) } }), /asked to fail/);
  });

  it('rejects an unknown library path with a clear message', async () => {
    await assert.rejects(runtime.createSession(scaleShiftModel(1, 0), { customOpLibraries: ['/nonexistent/libnope.so'] }), (error: Error) => {
      assert.ok(error instanceof FeedError);
      assert.match(error.message, /custom-op library not found: \/nonexistent\/libnope\.so/);
      return true;
    });
  });

  it('rejects a file that is not a custom-op library with ORT\'s reason', async () => {
    await assert.rejects(runtime.createSession(scaleShiftModel(1, 0), { customOpLibraries: ['/etc/hostname'] }), /cannot register custom-op library \/etc\/hostname/);
  });
});
