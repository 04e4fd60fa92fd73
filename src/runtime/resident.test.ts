import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { writeModel } from '../graph/onnx/writer.js';
import { loadRuntime, type ResidentValue } from './index.js';

// step: state' = state + delta ; count' = count + 1 — integers in float32 stay exact up to 2^24.
function stepModel(n: number): Uint8Array {
  return writeModel({
    graphName: 'resident_step',
    opsets: { '': 21 },
    nodes: [
      { opType: 'Add', name: 'step/state', inputs: ['state', 'delta'], outputs: ['state_next'] },
      { opType: 'Add', name: 'step/count', inputs: ['count', 'one'], outputs: ['count_next'] },
    ],
    inputs: [
      { name: 'state', dtype: 'float32', shape: [n] },
      { name: 'delta', dtype: 'float32', shape: [n] },
      { name: 'count', dtype: 'int64', shape: [] },
    ],
    outputs: [
      { name: 'state_next', dtype: 'float32', shape: [n] },
      { name: 'count_next', dtype: 'int64', shape: [] },
    ],
    initializers: [{ name: 'one', dtype: 'int64', shape: [], data: new BigInt64Array([1n]) }],
  });
}

describe('resident values', () => {
  const runtime = loadRuntime();

  it('runs a 1,000-step state loop in native memory to the exact closed form, with flat RSS', async () => {
    const n = 1 << 20; // 4 MiB of state: a per-step leak would add gigabytes
    const session = await runtime.createSession(stepModel(n), { intraOpThreads: 1 });
    const deltaHost = new Float32Array(n);
    for (let i = 0; i < n; i++) deltaHost[i] = (i % 7) - 3;
    const delta = runtime.tensor('float32', [n], deltaHost);
    // Ping-pong buffers: step k reads one pair and writes the other, so nothing is allocated per step.
    let state: ResidentValue = runtime.tensor('float32', [n]);
    let count: ResidentValue = runtime.tensor('int64', []);
    let nextState: ResidentValue = runtime.tensor('float32', [n]);
    let nextCount: ResidentValue = runtime.tensor('int64', []);
    const live = runtime.liveValues();
    let rssAfterWarmup = 0;
    const steps = 1000;
    for (let step = 0; step < steps; step++) {
      await session.run({ state, delta, count }, { into: { state_next: nextState, count_next: nextCount } });
      [state, nextState] = [nextState, state];
      [count, nextCount] = [nextCount, count];
      if (step === 99) rssAfterWarmup = process.memoryUsage().rss;
    }
    const rssGrowth = process.memoryUsage().rss - rssAfterWarmup;
    assert.deepEqual(runtime.liveValues(), live, 'no value was allocated or freed by the loop');
    assert.ok(rssGrowth < 32 * 1024 * 1024, `RSS grew by ${(rssGrowth / 2 ** 20).toFixed(1)} MiB over 900 steps`);
    assert.equal((count.read() as BigInt64Array)[0], BigInt(steps));
    const final = state.read() as Float32Array;
    for (let i = 0; i < n; i += 9973) assert.equal(final[i], steps * deltaHost[i]!, `state[${i}]`);
    for (const v of [state, count, nextState, nextCount, delta]) v.dispose();
    session.dispose();
  });

  it('lets ORT allocate outputs, which stay valid after the run and free on dispose', async () => {
    const session = await runtime.createSession(stepModel(4));
    const before = runtime.liveValues();
    const out = await session.run({
      state: { dtype: 'float32', shape: [4], data: new Float32Array([1, 2, 3, 4]) },
      delta: { dtype: 'float32', shape: [4], data: new Float32Array([0.5, 0.5, 0.5, 0.5]) },
      count: { dtype: 'int64', shape: [], data: new BigInt64Array([41n]) },
    });
    assert.deepEqual(Array.from(out.state_next!.read() as Float32Array), [1.5, 2.5, 3.5, 4.5]);
    assert.equal((out.count_next!.read() as BigInt64Array)[0], 42n);
    assert.equal(runtime.liveValues().count, before.count + 2, 'host feeds were freed, two outputs remain');
    out.state_next!.dispose();
    out.count_next!.dispose();
    assert.deepEqual(runtime.liveValues(), before);
  });

  it('releases ORT-allocated outputs deterministically: 10,000 runs leave RSS and live values flat', async () => {
    const n = 64 * 1024; // 256 KiB per output: a leak of one output per run would add 2.5 GiB
    const session = await runtime.createSession(stepModel(n), { intraOpThreads: 1 });
    const state = runtime.tensor('float32', [n], new Float32Array(n).fill(1));
    const delta = runtime.tensor('float32', [n], new Float32Array(n).fill(2));
    const count = runtime.tensor('int64', []);
    const before = runtime.liveValues();
    let rssAfterWarmup = 0;
    for (let run = 0; run < 10_000; run++) {
      const out = await session.run({ state, delta, count });
      if (run % 2500 === 0) assert.equal((out.state_next!.read() as Float32Array)[n - 1], 3);
      out.state_next!.dispose();
      out.count_next!.dispose();
      if (run === 999) rssAfterWarmup = process.memoryUsage().rss;
    }
    const growth = process.memoryUsage().rss - rssAfterWarmup;
    assert.deepEqual(runtime.liveValues(), before);
    assert.ok(growth < 32 * 1024 * 1024, `RSS grew by ${(growth / 2 ** 20).toFixed(1)} MiB over 9,000 runs`);
    for (const v of [state, delta, count]) v.dispose();
  });

  it('round-trips every dtype through write and read', () => {
    const cases = [
      ['float32', new Float32Array([1.5, -2.25, 3e-8])],
      ['float64', new Float64Array([Math.PI, -1e300, 5e-324])],
      ['int64', new BigInt64Array([-(2n ** 62n), 7n, 2n ** 62n])],
      ['int32', new Int32Array([-5, 0x7fffffff, 3])],
      ['uint16', new Uint16Array([1, 65535, 300])],
      ['float16', new Uint16Array([0x3c00, 0xc000, 0x7bff])],
      ['uint8', new Uint8Array([0, 255, 9])],
      ['int8', new Int8Array([-128, 127, 0])],
      ['bool', new Uint8Array([1, 0, 1])],
    ] as const;
    for (const [dtype, data] of cases) {
      const value = runtime.tensor(dtype, [3]);
      assert.deepEqual(Array.from(value.read() as ArrayLike<number | bigint>).map(Number), [0, 0, 0], `${dtype} starts zeroed`);
      value.write(data);
      assert.deepEqual(value.read(), data, dtype);
      assert.equal(value.dtype, dtype);
      assert.deepEqual(value.shape, [3]);
      value.dispose();
    }
  });

  it('refuses mismatched writes and any use after dispose', () => {
    const value = runtime.tensor('float32', [2, 2]);
    assert.throws(() => value.write(new Float32Array(3)), /4 elements, data has 3/);
    assert.throws(() => value.write(new Float64Array(4)), /float32 needs Float32Array data, got Float64Array/);
    assert.throws(() => runtime.tensor('float32', [2], new Float32Array(3)), /holds 2 elements but data has 3/);
    assert.throws(() => runtime.tensor('complex' as never, [2]), /unknown dtype 'complex'/);
    assert.throws(() => runtime.tensor('float32', [2, -1]), /non-negative integers/);
    value.dispose();
    value.dispose(); // idempotent
    assert.equal(value.disposed, true);
    assert.throws(() => value.read(), /disposed/);
    assert.throws(() => value.write(new Float32Array(4)), /disposed/);
  });

  it('view() shares the tensor memory without a copy, and keeps it alive past dispose()', async () => {
    const v = runtime.tensor('float32', [5], Float32Array.of(1.5, -2, 3, 4, 5));
    const view = v.view() as Float32Array;
    assert.deepEqual(Array.from(view), [1.5, -2, 3, 4, 5]);
    view[2] = 42; // written through the view: read() sees it
    assert.deepEqual(Array.from(v.read() as Float32Array), [1.5, -2, 42, 4, 5]);
    v.write(Float32Array.of(9, 8, 7, 6, 5)); // written natively: the view sees it
    assert.deepEqual(Array.from(view), [9, 8, 7, 6, 5]);
    v.dispose();
    assert.equal(v.disposed, true);
    assert.throws(() => v.view(), /disposed/);
    // The memory stays valid while the view is reachable.
    view[0] = 1;
    assert.equal(view[0], 1);
    assert.equal(runtime.tensor('int64', [0]).view().length, 0, 'an empty tensor gives an empty array');
    // A view feeds a run like any value's memory: the session reads what was written through it.
    const session = await runtime.createSession(stepModel(3), { intraOpThreads: 1 });
    const state = runtime.tensor('float32', [3]);
    (state.view() as Float32Array).set([1, 2, 3]);
    const out = await session.run({ state, delta: { dtype: 'float32', shape: [3], data: Float32Array.of(10, 20, 30) }, count: { dtype: 'int64', shape: [], data: BigInt64Array.of(0n) } });
    assert.deepEqual(Array.from(out.state_next!.read() as Float32Array), [11, 22, 33]);
    for (const r of Object.values(out)) r.dispose();
    state.dispose();
    session.dispose();
  });

  it('runs through an I/O binding: output targets are written in place (no copy), other outputs come back in host memory', async () => {
    const session = await runtime.createSession(stepModel(4), { intraOpThreads: 1 });
    const state = runtime.tensor('float32', [4], Float32Array.of(1, 2, 3, 4));
    const target = runtime.tensor('float32', [4]);
    const seen = target.view() as Float32Array; // the target's own memory, taken before the run
    const out = await session.run(
      { state, delta: { dtype: 'float32', shape: [4], data: Float32Array.of(0.5, 0.25, -1, 8) }, count: { dtype: 'int64', shape: [], data: BigInt64Array.of(41n) } },
      { into: { state_next: target } },
    );
    assert.equal(out.state_next, target, 'the bound target is the returned value');
    assert.deepEqual(Array.from(seen), [1.5, 2.25, 2, 12], 'the run wrote into the memory bound before it');
    assert.equal(out.count_next!.device, 'cpu');
    assert.equal((out.count_next!.read() as BigInt64Array)[0], 42n);
    assert.equal(state.device, 'cpu');
    for (const v of [state, target, out.count_next!]) v.dispose();
    session.dispose();
  });

  it('refuses device memory with the CUDA runtime\'s reason where no GPU is usable', { skip: runtime.cudaDevices().deviceCount > 0 && 'a GPU is present' }, () => {
    const live = runtime.liveValues();
    assert.throws(
      () => runtime.tensor('float32', [2], Float32Array.of(1, 2), 'cuda:0'),
      (e: Error) => /^allocating a \[2\] float32 tensor on cuda:0: /.test(e.message) && /CUDA runtime|cuda/i.test(e.message),
    );
    assert.throws(() => runtime.tensor('float32', [2], undefined, 'cuda:0'), /on cuda:0/);
    assert.deepEqual(runtime.liveValues(), live, 'nothing was left allocated');
  });
});
