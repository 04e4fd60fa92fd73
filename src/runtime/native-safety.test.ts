// Failures deep in the addon (bad output types, C++ exceptions, worker threads) must surface as JS errors.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { writeModel } from '../graph/onnx/writer.js';
import { loadRuntime } from './index.js';

const url = (rel: string) => new URL(rel, import.meta.url).href;
/** Runs ES-module code in a child process (a crash must not take the test runner down). */
function child(code: string) {
  return spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 60_000 });
}

describe('native safety: failures inside the addon stay JS errors', () => {
  it('a run that fetches an output of a dtype lory lacks (uint32) rejects, instead of an uncaught exception and a promise that never settles', () => {
    const r = child(`
      import { writeModel } from '${url('../graph/onnx/writer.js')}';
      import { ONNX_DTYPE_CODE } from '${url('../graph/onnx/dtype.js')}';
      import { loadRuntime } from '${url('./index.js')}';
      ONNX_DTYPE_CODE.uint32 = 12;
      const bytes = writeModel({ graphName: 'u32', opsets: { '': 21 },
        nodes: [{ opType: 'Cast', name: 'c', inputs: ['x'], outputs: ['y'], attributes: { to: { int: 12 } } }],
        inputs: [{ name: 'x', dtype: 'float32', shape: [2] }], outputs: [{ name: 'y', dtype: 'uint32', shape: [2] }] });
      const s = await loadRuntime().createSession(bytes);
      try { await s.run({ x: { dtype: 'float32', shape: [2], data: Float32Array.of(1, 2) } }); console.log('resolved'); }
      catch (e) { console.log('rejected: ' + e.message); }`);
    assert.equal(r.status, 0, `child exited ${r.status}: ${r.stderr}`);
    assert.match(r.stdout, /rejected: .*(uint32|12|not supported)/);
  });

  it('a C++ std::exception inside the addon becomes a JS error, not std::terminate (abort)', () => {
    // Api() throws std::runtime_error; node-addon-api only converts Napi::Error unless
    // NODE_ADDON_API_CPP_EXCEPTIONS_ALL is defined. Value::Adopt's ThrowIfError has the same problem.
    const r = child(`
      import { loadAddon } from '${url('./native.js')}';
      try { loadAddon().availableProviders(); console.log('no throw'); } catch (e) { console.log('caught: ' + e.message); }`);
    assert.equal(r.status, 0, `child exited ${r.status} (${r.signal ?? ''}): ${r.stderr.slice(0, 300)}`);
    assert.match(r.stdout, /caught: ONNX Runtime is not loaded/);
  });

  it('loading the addon in a worker thread does not break (segfault) the main thread', () => {
    // Value::constructor_ and Session::constructor_ are process-wide statics holding one env's function.
    const r = child(`
      import { Worker } from 'node:worker_threads';
      import { loadRuntime } from '${url('./index.js')}';
      const rt = loadRuntime();
      const w = new Worker("import('${url('./index.js')}').then((m) => m.loadRuntime().tensor('float32', [1]))", { eval: true });
      await new Promise((r) => w.on('exit', r));
      console.log(Array.from(rt.tensor('float32', [2], Float32Array.of(3, 4)).read()).join(','));`);
    assert.equal(r.status, 0, `child exited ${r.status} (${r.signal ?? ''}): ${r.stderr.slice(0, 300)}`);
    assert.match(r.stdout, /3,4/);
  });

  it('a host feed whose data does not fit names the input and is a FeedError (user error, exit 2)', async () => {
    const rt = loadRuntime();
    const s = await rt.createSession(writeModel({ graphName: 'add', opsets: { '': 21 },
      nodes: [{ opType: 'Add', name: 'a', inputs: ['x', 'y'], outputs: ['z'] }],
      inputs: [{ name: 'x', dtype: 'float32', shape: [2] }, { name: 'y', dtype: 'float32', shape: [2] }],
      outputs: [{ name: 'z', dtype: 'float32', shape: [2] }] }));
    const x = { dtype: 'float32' as const, shape: [2], data: Float32Array.of(1, 2) };
    await assert.rejects(s.run({ x, y: { dtype: 'float32', shape: [2], data: Float64Array.of(1, 2) } }), (e: Error) => {
      assert.equal(e.name, 'FeedError');
      assert.match(e.message, /'y'/);
      return true;
    });
    s.dispose();
  });
});

describe('runs in flight own the values they write', () => {
  const runtime = loadRuntime();
  const model = writeModel({
    graphName: 'pair',
    opsets: { '': 21 },
    nodes: [
      { opType: 'Add', name: 'pair/sum', inputs: ['x', 'y'], outputs: ['s'] },
      { opType: 'Mul', name: 'pair/prod', inputs: ['x', 'y'], outputs: ['p'] },
    ],
    inputs: [
      { name: 'x', dtype: 'float32', shape: [2] },
      { name: 'y', dtype: 'float32', shape: [2] },
    ],
    outputs: [
      { name: 's', dtype: 'float32', shape: [2] },
      { name: 'p', dtype: 'float32', shape: [2] },
    ],
  });

  it('refuses one value as the target of two outputs', async () => {
    const session = await runtime.createSession(model);
    const x = runtime.tensor('float32', [2], Float32Array.of(1, 2));
    const t = runtime.tensor('float32', [2]);
    await assert.rejects(session.run({ x, y: x }, { into: { s: t, p: t } }), /names the same target value/);
  });

  it('refuses to read, feed or retarget a value while a run writes into it, and frees it afterwards', async () => {
    const session = await runtime.createSession(model);
    const x = runtime.tensor('float32', [2], Float32Array.of(3, 4));
    const y = runtime.tensor('float32', [2], Float32Array.of(5, 6));
    const s = runtime.tensor('float32', [2]);
    const pending = session.run({ x, y }, { into: { s } });
    assert.throws(() => s.read(), /while a run is writing into it/);
    assert.throws(() => s.dispose(), /in flight/);
    await assert.rejects(session.run({ x: s, y }), /input 'x' is being written by another run in flight/);
    await assert.rejects(session.run({ x, y }, { into: { s } }), /in use by a run in flight/);
    await pending;
    assert.deepEqual(Array.from(s.read() as Float32Array), [8, 10]);
    s.dispose();
  });

  it('rejects a blocking run that ORT fails, and leaves its values usable', async () => {
    const dynamic = writeModel({
      graphName: 'dyn',
      opsets: { '': 21 },
      nodes: [{ opType: 'Add', name: 'dyn/add', inputs: ['a', 'b'], outputs: ['c'] }],
      inputs: [
        { name: 'a', dtype: 'float32', shape: ['n'] },
        { name: 'b', dtype: 'float32', shape: ['m'] },
      ],
      outputs: [{ name: 'c', dtype: 'float32', shape: ['k'] }],
    });
    const session = await runtime.createSession(dynamic);
    const a = runtime.tensor('float32', [3], Float32Array.of(1, 2, 3));
    const b = runtime.tensor('float32', [2], Float32Array.of(1, 2));
    await assert.rejects(session.run({ a, b }, { blocking: true }), /running model .*(broadcast|dimension)/i);
    a.dispose(); // not left pinned by the failed run
    b.dispose();
  });
});
