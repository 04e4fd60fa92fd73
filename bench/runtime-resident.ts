/**
 * Benchmark: resident values vs onnxruntime-node's InferenceSession (which copies every output into
 * a fresh JS buffer), measured side by side in one process.
 *   1. An SGD-style update graph `params' = params − lr·g` over 20M float32 parameters: steps/s.
 *   2. Per-run overhead of a tiny model (one Add of 4 floats): µs per run.
 * Run: npm run bench:runtime  [-- --params 20000000 --steps 30 --threads 2]
 */
import * as ort from 'onnxruntime-node';
import { writeModel } from '../src/graph/onnx/writer.js';
import { loadRuntime, type ResidentValue } from '../src/runtime/index.js';
import { median } from './stats.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const N = arg('params', 20_000_000);
const STEPS = arg('steps', 30);
const THREADS = arg('threads', 2);
const ROUNDS = arg('rounds', 3);

const updateModel = writeModel({
  graphName: 'sgd_update',
  opsets: { '': 21 },
  nodes: [
    { opType: 'Mul', name: 'update/scale', inputs: ['g', 'lr'], outputs: ['step'] },
    { opType: 'Sub', name: 'update/apply', inputs: ['params', 'step'], outputs: ['params_next'] },
  ],
  inputs: [
    { name: 'params', dtype: 'float32', shape: [N] },
    { name: 'g', dtype: 'float32', shape: [N] },
    { name: 'lr', dtype: 'float32', shape: [] },
  ],
  outputs: [{ name: 'params_next', dtype: 'float32', shape: [N] }],
});

const tinyModel = writeModel({
  graphName: 'tiny',
  opsets: { '': 21 },
  nodes: [{ opType: 'Add', name: 'tiny/add', inputs: ['a', 'b'], outputs: ['c'] }],
  inputs: [
    { name: 'a', dtype: 'float32', shape: [4] },
    { name: 'b', dtype: 'float32', shape: [4] },
  ],
  outputs: [{ name: 'c', dtype: 'float32', shape: [4] }],
});

const paramsHost = new Float32Array(N).map((_, i) => (i % 1000) / 1000);
const gradHost = new Float32Array(N).map((_, i) => ((i % 7) - 3) / 7);
const lrHost = new Float32Array([1e-3]);

async function loryUpdate(): Promise<{ stepsPerSec: number; check: number }> {
  const rt = loadRuntime();
  const session = await rt.createSession(updateModel, { intraOpThreads: THREADS });
  let params: ResidentValue = rt.tensor('float32', [N], paramsHost);
  let next: ResidentValue = rt.tensor('float32', [N]);
  const g = rt.tensor('float32', [N], gradHost);
  const lr = rt.tensor('float32', [], lrHost);
  await session.run({ params, g, lr }, { into: { params_next: next } }); // warm-up
  const start = performance.now();
  for (let s = 0; s < STEPS; s++) {
    await session.run({ params, g, lr }, { into: { params_next: next } });
    [params, next] = [next, params];
  }
  const seconds = (performance.now() - start) / 1000;
  const check = (params.read() as Float32Array)[12345]!;
  for (const v of [params, next, g, lr]) v.dispose();
  session.dispose();
  return { stepsPerSec: STEPS / seconds, check };
}

async function ortNodeUpdate(): Promise<{ stepsPerSec: number; check: number }> {
  const session = await ort.InferenceSession.create(updateModel, { intraOpNumThreads: THREADS, interOpNumThreads: 1 });
  let params = new ort.Tensor('float32', paramsHost.slice(), [N]);
  const g = new ort.Tensor('float32', gradHost, [N]);
  const lr = new ort.Tensor('float32', lrHost, []);
  await session.run({ params, g, lr });
  const start = performance.now();
  for (let s = 0; s < STEPS; s++) {
    const out = await session.run({ params, g, lr });
    params = out.params_next as ort.TypedTensor<'float32'>;
  }
  const seconds = (performance.now() - start) / 1000;
  const check = (params.data as Float32Array)[12345]!;
  await session.release();
  return { stepsPerSec: STEPS / seconds, check };
}

async function loryTiny(runs: number, blocking = false): Promise<number> {
  const rt = loadRuntime();
  const session = await rt.createSession(tinyModel, { intraOpThreads: 1 });
  const a = rt.tensor('float32', [4], new Float32Array([1, 2, 3, 4]));
  const b = rt.tensor('float32', [4], new Float32Array([4, 3, 2, 1]));
  const c = rt.tensor('float32', [4]);
  for (let i = 0; i < 200; i++) await session.run({ a, b }, { into: { c }, blocking });
  const start = performance.now();
  for (let i = 0; i < runs; i++) await session.run({ a, b }, { into: { c }, blocking });
  const us = ((performance.now() - start) * 1000) / runs;
  for (const v of [a, b, c]) v.dispose();
  session.dispose();
  return us;
}

async function ortNodeTiny(runs: number): Promise<number> {
  const session = await ort.InferenceSession.create(tinyModel, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const a = new ort.Tensor('float32', new Float32Array([1, 2, 3, 4]), [4]);
  const b = new ort.Tensor('float32', new Float32Array([4, 3, 2, 1]), [4]);
  for (let i = 0; i < 200; i++) await session.run({ a, b });
  const start = performance.now();
  for (let i = 0; i < runs; i++) await session.run({ a, b });
  const us = ((performance.now() - start) * 1000) / runs;
  await session.release();
  return us;
}

async function main(): Promise<void> {
  console.log(`update graph over ${N.toLocaleString()} float32 params, ${STEPS} steps × ${ROUNDS} rounds, ${THREADS} threads`);
  const lory: number[] = [];
  const ortNode: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    // Alternate the order so drift on a noisy machine does not favour one side.
    const [x, y] = r % 2 === 0 ? [await loryUpdate(), await ortNodeUpdate()] : [await ortNodeUpdate(), await loryUpdate()].reverse();
    if (Math.abs(x!.check - y!.check) > 1e-6) throw new Error(`results differ: ${x!.check} vs ${y!.check}`);
    lory.push(x!.stepsPerSec);
    ortNode.push(y!.stepsPerSec);
  }
  const ml = median(lory);
  const mo = median(ortNode);
  console.log(`  lory resident values        ${ml.toFixed(2)} steps/s (median; rounds: ${lory.map((v) => v.toFixed(2)).join(', ')})`);
  console.log(`  onnxruntime-node (copies)   ${mo.toFixed(2)} steps/s (median; rounds: ${ortNode.map((v) => v.toFixed(2)).join(', ')})`);
  console.log(`  ratio lory / onnxruntime-node: ${(ml / mo).toFixed(2)}x`);

  const runs = 5000;
  const tl: number[] = [];
  const tb: number[] = [];
  const to: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    tl.push(await loryTiny(runs));
    tb.push(await loryTiny(runs, true));
    to.push(await ortNodeTiny(runs));
  }
  console.log(`tiny model (Add of 4 floats), ${runs} runs × ${ROUNDS} rounds`);
  console.log(`  lory (worker pool)          ${median(tl).toFixed(1)} µs/run (median)`);
  console.log(`  lory (blocking: true)       ${median(tb).toFixed(1)} µs/run (median)`);
  console.log(`  onnxruntime-node            ${median(to).toFixed(1)} µs/run (median)`);
  console.log(`  ratio to onnxruntime-node: worker pool ${(median(tl) / median(to)).toFixed(2)}x, blocking ${(median(tb) / median(to)).toFixed(2)}x time per run`);
}

await main();
