/**
 * Training results do not depend on ORT's thread count, and are right at every count.
 *
 * ORT splits an op across its intra-op threads only when the op is large enough, so these tests use
 * the size at which a racy ScatterND once corrupted every embedding gradient at 2 threads (V 4096,
 * d 128, 4 layers, 8 × 256 tokens; docs/graph.md): gradients at 2 and 4 threads against the float64
 * 1-thread reference and finite differences, with and without accumulation, dense and Lory; then
 * fresh `train()` runs compared bit for bit at 2 threads and across 1, 2 and 4 threads.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { compileTrainStep } from '../graph/compile/train-step.js';
import { tempDir } from '../data/testing.js';
import { initParams, loryTrainSpec, modelSessionOptions, paramSpecs, resolveModelConfig, type ModelConfig, type ParamValues } from '../model/index.js';
import { modelRunner, type Batch } from '../model/testing.js';
import { relativeError } from '../graph/testing/compare.js';
import { zipfIds } from '../graph/testing/random.js';
import { readCheckpoint } from './checkpoint.js';
import { optimizerConfig, train, type StepMetrics } from './loop.js';
import { fixtureBatches, tinyTrain } from './testing.js';
import { Trainer } from './trainer.js';

const [B, S, V] = [8, 256, 4096];
const size = (over: Partial<ModelConfig> = {}): ModelConfig =>
  resolveModelConfig({ vocabSize: V, dModel: 128, nLayers: 4, nHeads: 4, dFf: 384, contextLength: S, segmentLength: 64, ...over });
const KINDS = [
  { name: 'dense', over: {} },
  { name: 'Lory 4E', over: { experts: 4 } },
] as const;

/** Token ids with text-like repeats (Zipf-ish: low ids far more frequent), next-token targets. */
function zipfBatch(seed: number): Batch {
  const tokens = zipfIds(seed, B * S + 1, V);
  return { tokens: tokens.slice(0, -1), targets: tokens.slice(1) };
}

const toFloat64 = (p: ParamValues): ParamValues => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, Float64Array.from(v)]));

/** max |got − ref| over max |ref|, per parameter, worst first. */
function worstRelative(got: ParamValues, ref: ParamValues): { name: string; err: number } {
  let worst = { name: '', err: 0 };
  for (const [name, r] of Object.entries(ref)) {
    const rel = relativeError(got[name]!, r);
    if (!(rel <= worst.err)) worst = { name, err: Number.isNaN(rel) ? Infinity : rel };
  }
  return worst;
}

function sumGrads(a: ParamValues, b: ParamValues): ParamValues {
  return Object.fromEntries(Object.entries(a).map(([k, v]) => [k, v.map((x, i) => x + b[k]![i]!)])) as ParamValues;
}

/** float32 against float64 at this size: ~1e-6 of a tensor's largest gradient; a lost update is ~1e-1. */
const GRAD_RTOL = 2e-5;

describe('gradients at 2 and 4 threads', () => {
  for (const kind of KINDS) {
    it(`${kind.name}: equal the float64 1-thread reference, one micro-batch and two accumulated`, async () => {
      const c32 = size(kind.over);
      const c64 = size({ ...kind.over, dtype: 'float64' });
      const init = initParams(c32, 3);
      const batches = [zipfBatch(1), zipfBatch(2)];
      const ref64 = await modelRunner(c64, { batch: B, seq: S }, { grads: true, session: { intraOpThreads: 1 } });
      const refs = [];
      for (const b of batches) refs.push((await ref64.run(toFloat64(init), b)).grads);
      await ref64.dispose();

      for (const threads of [2, 4]) {
        const runner = await modelRunner(c32, { batch: B, seq: S }, { grads: true, session: { intraOpThreads: threads } });
        const one = await runner.run(init, batches[0]!);
        await runner.dispose();
        const w1 = worstRelative(one.grads, refs[0]!);
        assert.ok(w1.err < GRAD_RTOL, `${threads} threads, one micro-batch: ${w1.name} off by ${w1.err.toExponential(2)} of its largest gradient`);

        const spec = loryTrainSpec(c32, { batch: B, seq: S }, { accumulation: true, optimizer: optimizerConfig(tinyTrain()) });
        const trainer = await Trainer.create(compileTrainStep(spec), init, { ...modelSessionOptions(c32), intraOpThreads: threads });
        try {
          for (const b of batches) {
            const r = await trainer.accumulate(feeds(b));
            for (const v of Object.values(r.diagnostics)) v.dispose();
          }
          const acc: ParamValues = {};
          for (const s of paramSpecs(c32)) acc[s.name] = trainer.read(`grad_acc/${s.name}`) as Float32Array;
          const w2 = worstRelative(acc, sumGrads(refs[0]!, refs[1]!));
          assert.ok(w2.err < GRAD_RTOL, `${threads} threads, two accumulated: ${w2.name} off by ${w2.err.toExponential(2)}`);
        } finally {
          trainer.dispose();
        }
      }
    });
  }

  it('dense, float64 at 2 threads: the embedding rows of the most repeated tokens equal central differences', async () => {
    const c = size({ dtype: 'float64' });
    const params = initParams(c, 4);
    const batch = zipfBatch(5);
    const withGrads = await modelRunner(c, { batch: B, seq: S }, { grads: true, session: { intraOpThreads: 2 } });
    const analytic = (await withGrads.run(params, batch)).grads.embed!;
    await withGrads.dispose();
    const lossOnly = await modelRunner(c, { batch: B, seq: S }, { session: { intraOpThreads: 2 } });
    const d = c.dModel;
    const counts = new Map<number, number>();
    for (const t of batch.tokens) counts.set(t, (counts.get(t) ?? 0) + 1);
    const frequent = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, 3);
    assert.ok(frequent[0]![1] > 50, `the batch repeats tokens (top count ${frequent[0]![1]})`);
    const h = 1e-5;
    for (const [token] of frequent) {
      for (const j of [0, d - 1]) {
        const at = token * d + j;
        const saved = params.embed![at]!;
        params.embed![at] = saved + h;
        const up = (await lossOnly.run(params, batch)).loss;
        params.embed![at] = saved - h;
        const down = (await lossOnly.run(params, batch)).loss;
        params.embed![at] = saved;
        const fd = (up - down) / (2 * h);
        const g = analytic[at]!;
        assert.ok(Math.abs(g - fd) <= 1e-6 * Math.abs(fd) + 1e-9, `embed[${token}, ${j}] (token seen ${counts.get(token)}×): analytic ${g} vs central difference ${fd}`);
      }
    }
    await lossOnly.dispose();
  });
});

function feeds(b: Batch) {
  const ids = (v: number[]) => ({ dtype: 'int64' as const, shape: [B, S], data: BigInt64Array.from(v.map((x) => BigInt(x))) });
  return { tokens: ids(b.tokens), targets: ids(b.targets!) };
}

interface RunBits {
  steps: Array<Pick<StepMetrics, 'loss' | 'gradNorm' | 'phase'>>;
  state: Record<string, ArrayLike<number>>;
}

/** A fresh training run: its per-step loss and grad norm, and every parameter and AdamW moment at the end. */
async function freshRun(model: ModelConfig, threads: number, over: Parameters<typeof tinyTrain>[0]): Promise<RunBits> {
  const { batches } = await fixtureBatches({ vocabSize: V, seqLen: S });
  const out = join(tempDir('threads'), 'run');
  await train({ batches, out, model, config: { test: true }, peakFlops: 1e10, train: tinyTrain({ micro_batch: B, threads, ...over }) });
  const steps = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as StepMetrics)
    .filter((l) => l.type === 'step')
    .map(({ loss, gradNorm, phase }) => ({ loss, gradNorm, phase }));
  const ck = readCheckpoint(out, { optimizer: true });
  const state: Record<string, ArrayLike<number>> = {};
  for (const [name, v] of Object.entries(ck.params)) state[name] = v;
  for (const [name, v] of Object.entries(ck.adam!.m)) state[`m/${name}`] = v;
  for (const [name, v] of Object.entries(ck.adam!.v)) state[`v/${name}`] = v;
  return { steps, state };
}

function assertSameBits(a: RunBits, b: RunBits, what: string): void {
  assert.deepEqual(b.steps, a.steps, `${what}: losses and grad norms`);
  assert.deepEqual(Object.keys(b.state).sort(), Object.keys(a.state).sort());
  for (const [name, v] of Object.entries(a.state)) {
    const w = b.state[name]!;
    const i = Array.prototype.findIndex.call(v, (x: number, k: number) => !Object.is(x, w[k]));
    assert.equal(i, -1, `${what}: ${name}[${i}] ${v[i]} vs ${w[i]}`);
  }
}

describe('training is bit-reproducible at the default thread count', () => {
  const runs = [
    { name: 'dense, 2 micro-batches accumulated', model: () => size(), train: { steps: 2, accumulation: 2 } },
    { name: 'Lory 4E across the dense → MoE conversion', model: () => size({ experts: 4 }), train: { steps: 3, dense_warmup: 0.34 } },
  ];
  for (const r of runs) {
    it(`${r.name}: six fresh runs at 2 threads, then 1 and 4 threads, give the same losses, grad norms, weights and moments`, async () => {
      const first = await freshRun(r.model(), 2, r.train);
      assert.ok(first.steps.every((s) => Number.isFinite(s.loss) && s.gradNorm > 0));
      if (r.model().experts > 1) assert.deepEqual(first.steps.map((s) => s.phase), ['dense', 'moe', 'moe']);
      for (let k = 2; k <= 6; k++) assertSameBits(first, await freshRun(r.model(), 2, r.train), `fresh run ${k} at 2 threads`);
      for (const threads of [1, 4]) assertSameBits(first, await freshRun(r.model(), threads, r.train), `${threads} thread(s) vs 2`);
    });
  }
});
