/**
 * Graph-engine benchmark: (1) build + export + ORT session creation of a 24-layer d=1024 LLaMA-style
 * train step; (2) train-step vs forward-only time of a 4-layer d=256 model (backward/forward ratio).
 * Run: npm run build && node dist/bench/graph-build.js [--quick]
 */
import { performance } from 'node:perf_hooks';
import os from 'node:os';
import { compileTrainStep } from '../src/graph/compile/train-step.js';
import { Trainer } from '../src/train/trainer.js';
import { buildTinyLlama, initParams, type TinyLlamaConfig } from '../src/graph/testing/tiny-llama.js';
import { rng } from '../src/graph/testing/random.js';
import { loadRuntime } from '../src/runtime/index.js';

const quick = process.argv.includes('--quick');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (t: number) => `${t.toFixed(1)} ms`;

async function buildAndLoad(cfg: TinyLlamaConfig) {
  const t0 = performance.now();
  const c = compileTrainStep({ build: (g) => buildTinyLlama(g, cfg) });
  const t1 = performance.now();
  const rt = loadRuntime();
  const session = await rt.createSession(c.step.bytes);
  const t2 = performance.now();
  session.dispose();
  const basic = await rt.createSession(c.step.bytes, { graphOptimizationLevel: 'basic' });
  const t3 = performance.now();
  basic.dispose();
  const nParams = c.params.reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);
  return { buildMs: t1 - t0, sessionMs: t2 - t1, basicMs: t3 - t2, nodes: c.step.nodeCount, bytes: c.step.bytes.byteLength, nParams, irNodes: c.graph.nodes.length };
}

function batchFor(cfg: TinyLlamaConfig) {
  const rand = rng(5);
  const n = cfg.batch * cfg.seq;
  const ids = () => BigInt64Array.from({ length: n }, () => BigInt(Math.floor(rand() * cfg.vocab)));
  return { tokens: { dtype: 'int64' as const, shape: [cfg.batch, cfg.seq], data: ids() }, targets: { dtype: 'int64' as const, shape: [cfg.batch, cfg.seq], data: ids() } };
}

async function main() {
  console.log(`node ${process.version}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), ORT ${loadRuntime().info.ortVersion}`);

  const big: TinyLlamaConfig = { vocab: 32000, d: 1024, layers: quick ? 4 : 24, heads: 16, ffn: 2816, seq: 1024, batch: 1 };
  const b = await buildAndLoad(big);
  console.log(
    `[1] ${big.layers}-layer d=${big.d} train step (B=${big.batch}, T=${big.seq}, V=${big.vocab}, ${(b.nParams / 1e6).toFixed(0)}M params): ` +
      `build+grad+optimizer+export ${ms(b.buildMs)}, ${b.irNodes} IR nodes, ${b.nodes} ONNX nodes, ${(b.bytes / 1024).toFixed(0)} KiB; session creation ${ms(b.sessionMs)} (optimization 'all'), ${ms(b.basicMs)} ('basic')`,
  );

  const small: TinyLlamaConfig = { vocab: 4096, d: 256, layers: 4, heads: 4, ffn: 768, seq: 256, batch: 4 };
  const c = compileTrainStep({ build: (g) => buildTinyLlama(g, small) });
  const trainer = await Trainer.create(c, initParams(c.params));
  const batch = batchFor(small);
  const reps = quick ? 3 : 10;
  // Alternate forward and train runs so drifting load on a shared machine hits both alike.
  const fwdTimes: number[] = [];
  const trainTimes: number[] = [];
  let step = 1;
  for (let i = 0; i < reps + 2; i++) {
    let t = performance.now();
    await trainer.eval(batch);
    const f = performance.now() - t;
    t = performance.now();
    await trainer.step(batch, 1e-4, step++);
    const s = performance.now() - t;
    if (i >= 2) {
      fwdTimes.push(f);
      trainTimes.push(s);
    }
  }
  const fwd = median(fwdTimes);
  const train = median(trainTimes);
  trainer.dispose();
  const tokens = small.batch * small.seq;
  console.log(
    `[2] 4-layer d=256 (B=${small.batch}, T=${small.seq}, V=${small.vocab}): forward ${ms(fwd)}, train step ${ms(train)} ` +
      `(medians of ${reps}); train/forward = ${(train / fwd).toFixed(2)}x; ${(tokens / (train / 1000)).toFixed(0)} tok/s training`,
  );
}

await main();
