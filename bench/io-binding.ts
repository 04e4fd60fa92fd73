/**
 * Does running every session through an I/O binding (issue 21, device-resident state) slow the CPU
 * down? The same measurements with two builds of the runtime addon, in alternating child processes
 * (machine load hits both alike): a baseline build (before the binding) and this checkout's.
 *   - a train step of the tiny dense model and of a tiny Lory model (4 experts, fused FFN): ms per
 *     step, the median of a block of steps (batches in memory, state ping-ponging through `into`);
 *   - the per-run overhead of a one-Add graph: µs per run.
 * Ratios are current / baseline per round; the table gives their medians.
 *
 * Baseline build:  git worktree add /tmp/lory-base 2792bee && (cd /tmp/lory-base && ln -s $PWD/node_modules
 *                  && node kernels/build.mjs runtime)
 * Run:             node dist/bench/io-binding.js --baseline /tmp/lory-base/kernels/runtime/build/Release/lory_runtime.node [--rounds 3] [--steps 15]
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { compileTrainStep } from '../src/graph/compile/train-step.js';
import { writeModel } from '../src/graph/onnx/writer.js';
import { initParams, loryTrainSpec, modelSessionOptions, resolveModelConfig, type ModelConfig } from '../src/model/index.js';
import { ADDON_PATH, loadRuntime } from '../src/runtime/index.js';
import { optimizerConfig } from '../src/train/loop.js';
import { tinyTrain } from '../src/train/testing.js';
import { Trainer } from '../src/train/trainer.js';
import { median } from './stats.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

const SEQ = 256;
const BATCH = 8;

async function stepMs(model: ModelConfig, steps: number): Promise<number> {
  const { threads: _, ...t } = tinyTrain({ micro_batch: BATCH });
  const trainer = await Trainer.create(compileTrainStep(loryTrainSpec(model, { batch: BATCH, seq: SEQ }, { optimizer: optimizerConfig(t) })), initParams(model, 0), modelSessionOptions(model));
  const ids = (k: number) => BigInt64Array.from({ length: BATCH * SEQ }, (_, i) => BigInt((i * 7919 + k * 131) % model.vocabSize));
  const feeds = (k: number) => ({ tokens: { dtype: 'int64' as const, shape: [BATCH, SEQ], data: ids(k) }, targets: { dtype: 'int64' as const, shape: [BATCH, SEQ], data: ids(k + 1) } });
  const times: number[] = [];
  for (let k = 0; k < steps + 2; k++) {
    const f = feeds(k);
    const t0 = performance.now();
    const r = await trainer.step(f, 1e-3, k + 1);
    if (k >= 2) times.push(performance.now() - t0); // two warm-up steps
    for (const v of Object.values(r.diagnostics)) v.dispose();
  }
  trainer.dispose();
  return median(times);
}

async function addRunUs(runs: number): Promise<number> {
  const rt = loadRuntime();
  const model = writeModel({
    graphName: 'add',
    opsets: { '': 21 },
    nodes: [{ opType: 'Add', name: 'add', inputs: ['a', 'b'], outputs: ['c'] }],
    inputs: [{ name: 'a', dtype: 'float32', shape: [4] }, { name: 'b', dtype: 'float32', shape: [4] }],
    outputs: [{ name: 'c', dtype: 'float32', shape: [4] }],
  });
  const session = await rt.createSession(model, { intraOpThreads: 1 });
  const a = rt.tensor('float32', [4], Float32Array.of(1, 2, 3, 4));
  const c = rt.tensor('float32', [4]);
  for (let i = 0; i < 200; i++) await session.run({ a, b: a }, { into: { c } });
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) await session.run({ a, b: a }, { into: { c } });
  const us = ((performance.now() - t0) * 1000) / runs;
  session.dispose();
  return us;
}

async function child(steps: number): Promise<void> {
  const dense = resolveModelConfig({ vocabSize: 2048, dModel: 128, nLayers: 4, nHeads: 4, dFf: 384, contextLength: SEQ });
  const lory = resolveModelConfig({ vocabSize: 2048, dModel: 128, nLayers: 4, nHeads: 4, dFf: 384, contextLength: SEQ, experts: 4, segmentLength: 64 });
  const result = { addon: ADDON_PATH, denseMs: await stepMs(dense, steps), loryMs: await stepMs(lory, steps), addUs: await addRunUs(3000) };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

function parent(baseline: string, rounds: number, steps: number): void {
  const self = fileURLToPath(import.meta.url);
  const run = (addon: string | undefined) => {
    const env = { ...process.env, ...(addon ? { LORY_RUNTIME_ADDON: addon } : {}) };
    const r = spawnSync(process.execPath, [self, '--child', '--steps', String(steps)], { encoding: 'utf8', env });
    if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as { denseMs: number; loryMs: number; addUs: number };
  };
  const keys = ['denseMs', 'loryMs', 'addUs'] as const;
  const ratios: Record<(typeof keys)[number], number[]> = { denseMs: [], loryMs: [], addUs: [] };
  const rows: string[] = [];
  for (let r = 0; r < rounds; r++) {
    // Alternate which build goes first, so a drift in machine load does not favour one.
    const [base, cur] = r % 2 === 0 ? [run(baseline), run(undefined)] : (() => { const c = run(undefined); return [run(baseline), c] as const; })();
    for (const k of keys) ratios[k].push(cur[k] / base[k]);
    rows.push(`round ${r + 1}: baseline ${keys.map((k) => `${k} ${base[k].toFixed(2)}`).join(', ')} | binding ${keys.map((k) => `${k} ${cur[k].toFixed(2)}`).join(', ')}`);
  }
  process.stdout.write(`${rows.join('\n')}\n\n| measure | median ratio (binding / baseline) over ${rounds} rounds |\n|---|---|\n`);
  for (const k of keys) process.stdout.write(`| ${k} | ${median(ratios[k]).toFixed(3)} |\n`);
}

const steps = Number(arg('steps', '15'));
if (process.argv.includes('--child')) await child(steps);
else {
  const baseline = arg('baseline', '');
  if (!baseline) throw new Error('--baseline <path to the baseline build of lory_runtime.node> is required (see the header)');
  parent(baseline, Number(arg('rounds', '3')), steps);
}
