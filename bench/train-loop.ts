/**
 * What the training loop costs on top of the raw compiled step, and whether its memory stays flat.
 *
 *  1. Overhead: the demo's dense model (4 layers, d 128, V 2048, 8 × 256 tokens a step). Rounds
 *     alternate a block of raw `Trainer.step` calls (batches already in memory, nothing else) with a
 *     block of `train()` steps (schedule, disk reads ahead, metrics line, routing stats, progress
 *     events), so machine load hits both alike. Per-step wall and process CPU time (ORT's threads
 *     included), medians over rounds; overhead = loop / raw − 1.
 *  2. Memory: a tiny Lory model for 1,000 steps with a checkpoint and validation every 100 steps;
 *     RSS sampled every 100 steps.
 *
 * Run: npm run bench:train   (or: node dist/bench/train-loop.js [rounds] [steps-per-block])
 */
import { join } from 'node:path';
import { compileTrainStep } from '../src/graph/compile/train-step.js';
import { tempDir } from '../src/data/testing.js';
import { prepare } from '../src/data/prepare.js';
import { buildBatches } from '../src/batching/build-batches.js';
import { FIXTURE_TRAIN } from '../src/data/testing.js';
import { initParams, loryTrainSpec, modelSessionOptions, resolveModelConfig } from '../src/model/index.js';
import { InstanceReader, openBatches } from '../src/train/data.js';
import { optimizerConfig, train, type TrainSettings } from '../src/train/loop.js';
import { Trainer } from '../src/train/trainer.js';
import { tinyTrain } from '../src/train/testing.js';
import { median } from './stats.js';

const rounds = Number(process.argv[2] ?? 5);
const block = Number(process.argv[3] ?? 20);

// The tests' settings, with this bench's block length, batch and no intermediate checkpoints.
// ORT's default thread count (all cores), not the tests' single thread.
const settings = (over: Partial<TrainSettings> = {}): TrainSettings => {
  const { threads: _, ...rest } = tinyTrain({ steps: block, micro_batch: 8, warmup: 0.05, checkpoint_every: 1_000_000 });
  return { ...rest, ...over };
};

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

async function main(): Promise<void> {
  const dir = tempDir('bench-train');
  const tokens = join(dir, 'tokens');
  await prepare({ inputs: [FIXTURE_TRAIN], out: tokens, vocabSize: 2048 });
  const batchesDir = join(dir, 'batches');
  await buildBatches({ tokens, out: batchesDir, strategy: 'random', seqLen: 256, validFraction: 0.05, dedup: false });
  const model = resolveModelConfig({ vocabSize: 2048, dModel: 128, nLayers: 4, nHeads: 4, dFf: 384, contextLength: 256 });
  const t = settings();

  // Raw: the compiled step alone, fed batches read beforehand.
  const batches = openBatches(batchesDir);
  const reader = InstanceReader.open(batches, 'train', 0);
  const cursor = { epoch: 0, position: 0 };
  const feedsList = Array.from({ length: block }, () => {
    const b = reader.next(cursor, t.micro_batch);
    return { tokens: { dtype: 'int64' as const, shape: [t.micro_batch, 256], data: b.tokens }, targets: { dtype: 'int64' as const, shape: [t.micro_batch, 256], data: b.targets } };
  });
  reader.close();
  const trainer = await Trainer.create(compileTrainStep(loryTrainSpec(model, { batch: t.micro_batch, seq: 256 }, { optimizer: optimizerConfig(t) })), initParams(model, 0), modelSessionOptions(model));
  let rawStep = 0;
  const raw = async () => {
    const [w0, c0] = [performance.now(), cpuMs()];
    for (const f of feedsList) {
      const r = await trainer.step(f, 1e-3, ++rawStep);
      for (const v of Object.values(r.diagnostics)) v.dispose();
    }
    return { wall: (performance.now() - w0) / block, cpu: (cpuMs() - c0) / block };
  };
  // Loop: train() for `block` steps; timed from the first step's event to the last (setup excluded).
  const loop = async (round: number) => {
    let w0 = 0;
    let c0 = 0;
    let w1 = 0;
    let c1 = 0;
    await train({
      batches: batchesDir,
      out: join(dir, `run-${round}`),
      model,
      train: t,
      config: {},
      peakFlops: 1e11,
      onEvent: (e) => {
        if (e.type !== 'step') return;
        if (e.step === 1) [w0, c0] = [performance.now(), cpuMs()];
        if (e.step === block) [w1, c1] = [performance.now(), cpuMs()];
      },
    });
    return { wall: (w1 - w0) / (block - 1), cpu: (c1 - c0) / (block - 1) };
  };
  await raw(); // warm-up
  const rawWall: number[] = [];
  const rawCpu: number[] = [];
  const loopWall: number[] = [];
  const loopCpu: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const a = await raw();
    const b = await loop(r);
    rawWall.push(a.wall);
    rawCpu.push(a.cpu);
    loopWall.push(b.wall);
    loopCpu.push(b.cpu);
    console.log(`round ${r + 1}: raw ${a.wall.toFixed(1)} ms wall / ${a.cpu.toFixed(1)} ms CPU per step; loop ${b.wall.toFixed(1)} / ${b.cpu.toFixed(1)}`);
  }
  trainer.dispose();
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  console.log(`\noverhead of the loop over the raw step (median of ${rounds} rounds × ${block} steps):`);
  console.log(`  wall: raw ${median(rawWall).toFixed(2)} ms, loop ${median(loopWall).toFixed(2)} ms per step → ${pct(median(loopWall) / median(rawWall) - 1)}`);
  console.log(`  CPU:  raw ${median(rawCpu).toFixed(2)} ms, loop ${median(loopCpu).toFixed(2)} ms per step → ${pct(median(loopCpu) / median(rawCpu) - 1)}`);

  // Memory over 1,000 steps of a tiny Lory model.
  const tinyTokens = join(dir, 'tokens-tiny');
  await prepare({ inputs: [FIXTURE_TRAIN], out: tinyTokens, vocabSize: 320 });
  const tinyBatches = join(dir, 'batches-tiny');
  await buildBatches({ tokens: tinyTokens, out: tinyBatches, strategy: 'random', seqLen: 32, validFraction: 0.05, dedup: false });
  const tiny = resolveModelConfig({ vocabSize: 320, dModel: 32, nLayers: 2, nHeads: 2, dFf: 64, contextLength: 32, segmentLength: 8, experts: 4, ffnImpl: 'standard' });
  const rss: Array<[number, number]> = [];
  const t0 = performance.now();
  await train({
    batches: tinyBatches,
    out: join(dir, 'run-rss'),
    model: tiny,
    train: settings({ steps: 1000, micro_batch: 4, dense_warmup: 0.05, valid_every: 100, checkpoint_every: 100, threads: 1 }),
    config: {},
    peakFlops: 1e11,
    onEvent: (e) => {
      if (e.type === 'step' && e.step % 100 === 0) rss.push([e.step, process.memoryUsage().rss / 1e6]);
    },
  });
  console.log(`\nRSS over 1,000 Lory steps (checkpoint + validation every 100), ${((performance.now() - t0) / 1000).toFixed(1)} s:`);
  console.log(`  ${rss.map(([s, m]) => `${s}: ${m.toFixed(0)} MB`).join(', ')}`);
  const after = rss.filter(([s]) => s >= 200).map(([, m]) => m);
  console.log(`  growth from step 200 to 1000: ${(after[after.length - 1]! - after[0]!).toFixed(1)} MB`);
}

await main();
