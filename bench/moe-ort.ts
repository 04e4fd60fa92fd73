/**
 * Benchmark of the merged-expert FFN through lory's own runtime (graph builder → ONNX → ORT), issue 5:
 *
 *   1. One layer, d=512 f=1408 E=8 T=128 G=32 (float32): forward and forward+backward (gradients of
 *      Σ y⊙r) for ffn_impl 'custom' (the fused ai.lory op), 'standard' (Einsum + batched MatMul) and a
 *      dense SwiGLU layer of the same d, f over the same G·T tokens (ORT MatMul).
 *   2. A whole train step of a small Lory model: 'custom' vs 'standard', plus the dense model (E=1).
 *
 * Time: all variants live in one process and run interleaved (the order rotates every round), so a
 * busy neighbour on this shared machine slows them alike; medians of wall time per run.
 * Peak memory: each variant runs in a child process of its own (`--child <variant>`); after the runtime
 * is loaded and every input and output buffer exists, VmHWM is reset (/proc/self/clear_refs) and the
 * figure is VmHWM after session creation and 3 runs minus VmRSS at the reset, i.e. what the run itself
 * needs on top of its inputs and outputs (ORT's arena included, as lory runs it).
 *
 * Run: node dist/bench/moe-ort.js [--part layer|step|all] [--repeats 9] [--threads 2] [--layer-G 32]
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as G from '../src/graph/index.js';
import { compileTrainStep } from '../src/graph/compile/train-step.js';
import { Trainer } from '../src/train/trainer.js';
import { normalArray, rng } from '../src/graph/testing/random.js';
import { loadRuntime, type Feed, type ResidentValue, type Session } from '../src/runtime/index.js';
import { resolveModelConfig, type ModelConfig } from '../src/model/config.js';
import { loryTrainSpec } from '../src/model/model.js';
import { denseFfn, modelSessionOptions, moeFfn, requireFfnImpl } from '../src/model/moe.js';
import { initParams } from '../src/model/params.js';
import { randomTokens } from '../src/model/testing.js';
import { median } from './stats.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
function sarg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

const THREADS = arg('threads', 2);
const REPEATS = arg('repeats', 9);
const PART = sarg('part', 'all');
const LAYER = { G: arg('layer-G', 32), T: 128, d: 512, f: 1408, E: 8 };
const STEP = { layers: 4, d: 256, heads: 4, E: 8, T: 128, seq: 512, batch: 4, vocab: 4096 };

// ---------------------------------------------------------------------------------------------
// Peak-memory probes (Linux /proc)

function status(field: 'VmHWM' | 'VmRSS'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}
/** Resets VmHWM to the current RSS; returns that RSS (bytes). */
function resetPeak(): number {
  writeFileSync('/proc/self/clear_refs', '5');
  return status('VmRSS');
}

// ---------------------------------------------------------------------------------------------
// Layer variants

type LayerImpl = 'custom' | 'standard' | 'dense';
type Pass = 'fwd' | 'fwdbwd';
interface LayerVariant {
  impl: LayerImpl;
  pass: Pass;
}
const LAYER_VARIANTS: LayerVariant[] = (['custom', 'standard', 'dense'] as const).flatMap((impl) =>
  (['fwd', 'fwdbwd'] as const).map((pass) => ({ impl, pass })),
);
const layerName = (v: LayerVariant) => `${v.impl}-${v.pass}`;

interface Prepared {
  name: string;
  run: () => Promise<unknown>;
  dispose: () => void;
}

function layerModel(v: LayerVariant): Uint8Array {
  const s = LAYER;
  const g = new G.Graph();
  const dense = v.impl === 'dense';
  const x = g.input('x', 'float32', [s.G, s.T, s.d]);
  const e = dense ? undefined : g.input('e', 'float32', [s.G, s.E]);
  const wg = g.input('wg', 'float32', dense ? [s.d, s.f] : [s.E, s.d, s.f]);
  const wu = g.input('wu', 'float32', dense ? [s.d, s.f] : [s.E, s.d, s.f]);
  const wd = g.input('wd', 'float32', dense ? [s.f, s.d] : [s.E, s.f, s.d]);
  const y = dense ? denseFfn(x, wg, wu, wd) : moeFfn(v.impl as 'custom' | 'standard', x, e!, wg, wu, wd);
  const params = dense ? [x, wg, wu, wd] : [x, e!, wg, wu, wd];
  const outputs: Record<string, G.Tensor> = {};
  const inputs = [...params];
  if (v.pass === 'fwd') outputs.y = y;
  else {
    const r = g.input('r', 'float32', [s.G, s.T, s.d]);
    inputs.push(r);
    const grads = G.grad(G.reduceSum(G.mul(y, r)), params);
    grads.forEach((t, i) => (outputs[`d_${params[i]!.name}`] = t));
  }
  return G.exportModel(g, { outputs, inputs }).bytes;
}

/** Inputs and pre-allocated outputs of a layer variant, resident; `open` then creates its session. */
function layerBuffers(v: LayerVariant) {
  const rt = loadRuntime();
  const s = LAYER;
  const rand = rng(1234);
  const dense = v.impl === 'dense';
  const resident: ResidentValue[] = [];
  const t = (shape: number[], data?: Float32Array) => {
    const r = rt.tensor('float32', shape, data);
    resident.push(r);
    return r;
  };
  const shapes: Record<string, number[]> = {
    x: [s.G, s.T, s.d],
    ...(dense ? {} : { e: [s.G, s.E] }),
    wg: dense ? [s.d, s.f] : [s.E, s.d, s.f],
    wu: dense ? [s.d, s.f] : [s.E, s.d, s.f],
    wd: dense ? [s.f, s.d] : [s.E, s.f, s.d],
  };
  const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
  const std: Record<string, number> = { x: 1, e: 1, wg: 0.04, wu: 0.04, wd: 0.03 };
  const feeds: Record<string, Feed> = {};
  for (const [name, shape] of Object.entries(shapes)) {
    const data = normalArray(size(shape), rand, std[name]);
    feeds[name] = t(shape, name === 'e' ? data.map(Math.exp) : data);
  }
  const into: Record<string, ResidentValue> = {};
  if (v.pass === 'fwd') into.y = t(shapes.x!);
  else {
    feeds.r = t(shapes.x!, normalArray(size(shapes.x!), rand, 1));
    for (const [name, shape] of Object.entries(shapes)) into[`d_${name}`] = t(shape);
  }
  return {
    /** Creates the session; runs write into the pre-allocated outputs (no allocation or copy into JS). */
    async open(): Promise<Prepared> {
      const session: Session = await rt.createSession(layerModel(v), {
        customOpLibraries: v.impl === 'custom' ? requireFfnImpl('custom') : [],
        intraOpThreads: THREADS,
        logId: layerName(v),
      });
      return {
        name: layerName(v),
        run: () => session.run(feeds, { into }),
        dispose: () => {
          session.dispose();
          for (const r of resident) r.dispose();
        },
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Train-step variants

type StepImpl = 'custom' | 'standard' | 'dense';
const STEP_VARIANTS: StepImpl[] = ['custom', 'standard', 'dense'];
/** Bytes of the trainer's resident parameters and optimizer state (two buffers per slot: ping-pong). */
const stateBytes = new Map<StepImpl, number>();

function stepConfig(impl: StepImpl): ModelConfig {
  return resolveModelConfig({
    vocabSize: STEP.vocab,
    dModel: STEP.d,
    nLayers: STEP.layers,
    nHeads: STEP.heads,
    contextLength: STEP.seq,
    experts: impl === 'dense' ? 1 : STEP.E,
    segmentLength: STEP.T,
    ffnImpl: impl === 'dense' ? 'standard' : impl,
  });
}

async function prepareStep(impl: StepImpl, beforeCreate?: () => void): Promise<Prepared> {
  const c = stepConfig(impl);
  const { batch: B, seq: S } = STEP;
  const compiled = compileTrainStep(loryTrainSpec(c, { batch: B, seq: S }));
  const init = initParams(c, 3);
  stateBytes.set(impl, 2 * [...compiled.params, ...compiled.state].reduce((a, p) => a + 4 * p.shape.reduce((x, y) => x * y, 1), 0));
  beforeCreate?.();
  const trainer = await Trainer.create(compiled, init, {
    ...modelSessionOptions(c),
    intraOpThreads: THREADS,
  });
  const tokens = randomTokens(B * S, c.vocabSize, 11);
  const batch = {
    tokens: { dtype: 'int64' as const, shape: [B, S], data: BigInt64Array.from(tokens, BigInt) },
    targets: { dtype: 'int64' as const, shape: [B, S], data: BigInt64Array.from(tokens.map((t) => (t * 7 + 3) % c.vocabSize), BigInt) },
  };
  let step = 0;
  return {
    name: `step-${impl}`,
    run: async () => {
      const r = await trainer.step(batch, 1e-4, ++step);
      for (const d of Object.values(r.diagnostics)) d.dispose();
    },
    dispose: () => trainer.dispose(),
  };
}

// ---------------------------------------------------------------------------------------------
// Driver

/** Child mode: one variant, report its peak memory above its inputs and outputs as JSON. */
async function child(name: string): Promise<void> {
  loadRuntime();
  let prepared: Prepared;
  let base = 0;
  if (name.startsWith('step-')) {
    // The trainer's parameters and optimizer state count (the table shows how much of it they are);
    // graph compilation in JS does not (it happens before the reset, as in a real run before step 1).
    const impl = name.slice(5) as StepImpl;
    prepared = await prepareStep(impl, () => (base = resetPeak()));
  } else {
    const v = LAYER_VARIANTS.find((x) => layerName(x) === name);
    if (!v) throw new Error(`unknown variant ${name}`);
    // Inputs and outputs exist before the reset: they are the layer's interface, not its working memory.
    const buffers = layerBuffers(v);
    base = resetPeak();
    prepared = await buffers.open();
  }
  const created = status('VmHWM') - base;
  const runBase = resetPeak();
  for (let i = 0; i < 3; i++) await prepared.run();
  const runPeak = status('VmHWM') - runBase;
  const peak = Math.max(created, status('VmHWM') - base);
  prepared.dispose();
  process.stdout.write(JSON.stringify({ name, peakBytes: peak, runPeakBytes: runPeak }) + '\n');
}

interface Peak {
  /** VmHWM above the baseline over session creation and 3 runs. */
  peakBytes: number;
  /** VmHWM of the 3 runs alone above the RSS once the session exists (activations, gradients, scratch). */
  runPeakBytes: number;
}

function peakOf(name: string): Peak {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', name, ...process.argv.slice(2)], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  if (r.status !== 0) throw new Error(`child ${name} failed (${r.status}): ${r.stderr}`);
  const line = r.stdout.trim().split('\n').pop()!;
  return JSON.parse(line) as Peak;
}

interface Times {
  wall: number[];
  /** Process CPU time (all threads) divided by the intra-op thread count: less sensitive to neighbours. */
  cpu: number[];
}

async function timeInterleaved(prepared: Prepared[], repeats: number): Promise<Map<string, Times>> {
  const times = new Map<string, Times>(prepared.map((p) => [p.name, { wall: [], cpu: [] }]));
  for (const p of prepared) await p.run(); // warm-up (arena growth, first-run allocations)
  for (let r = 0; r < repeats; r++) {
    for (let k = 0; k < prepared.length; k++) {
      const p = prepared[(k + r) % prepared.length]!;
      const cpu0 = process.cpuUsage();
      const start = performance.now();
      await p.run();
      const wall = performance.now() - start;
      const cpu = process.cpuUsage(cpu0);
      times.get(p.name)!.wall.push(wall);
      times.get(p.name)!.cpu.push((cpu.user + cpu.system) / 1000 / THREADS);
    }
  }
  return times;
}

const MiB = (b: number) => (b / 2 ** 20).toFixed(0);
const ms = (x: number) => x.toFixed(0);
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;

async function layerBench(): Promise<void> {
  const s = LAYER;
  console.log(`\n## Layer: d=${s.d} f=${s.f} E=${s.E} T=${s.T} G=${s.G} (G·T = ${s.G * s.T} tokens), float32, ${THREADS} intra-op threads`);
  const prepared: Prepared[] = [];
  for (const v of LAYER_VARIANTS) prepared.push(await layerBuffers(v).open());
  const times = await timeInterleaved(prepared, REPEATS);
  for (const p of prepared) p.dispose();
  const peaks = new Map(LAYER_VARIANTS.map((v) => [layerName(v), peakOf(layerName(v))]));
  const med = (n: string) => median(times.get(n)!.wall);
  const cpu = (n: string) => median(times.get(n)!.cpu);
  const lo = (n: string) => Math.min(...times.get(n)!.wall);
  console.log(`\n| variant | wall ms (median) | wall ms (min) | CPU ms / threads (median) | peak MiB above inputs+outputs |\n|---|---|---|---|---|`);
  for (const v of LAYER_VARIANTS) {
    const n = layerName(v);
    console.log(`| ${v.impl} ${v.pass === 'fwd' ? 'forward' : 'forward+backward'} | ${ms(med(n))} | ${ms(lo(n))} | ${ms(cpu(n))} | ${MiB(peaks.get(n)!.peakBytes)} |`);
  }
  console.log('\nRatios (this run):');
  for (const pass of ['fwd', 'fwdbwd'] as const) {
    const c = `custom-${pass}`;
    const st = `standard-${pass}`;
    const de = `dense-${pass}`;
    console.log(
      `- ${pass === 'fwd' ? 'forward' : 'forward+backward'}: time custom/standard ${ratio(med(c), med(st))} (CPU ${ratio(cpu(c), cpu(st))}), ` +
        `custom/dense ${ratio(med(c), med(de))} (CPU ${ratio(cpu(c), cpu(de))}; target ≤ 1.25x); ` +
        `peak memory standard/custom ${ratio(peaks.get(st)!.peakBytes, peaks.get(c)!.peakBytes)} (target ≥ 2x)`,
    );
  }
}

async function stepBench(): Promise<void> {
  const s = STEP;
  console.log(
    `\n## Train step: ${s.layers} layers, d=${s.d}, ${s.heads} heads, f=${stepConfig('custom').dFf}, E=${s.E}, T=${s.T}, ` +
      `seq ${s.seq}, batch ${s.batch}, vocab ${s.vocab}, AdamW; ${THREADS} intra-op threads`,
  );
  const prepared: Prepared[] = [];
  for (const impl of STEP_VARIANTS) prepared.push(await prepareStep(impl));
  const times = await timeInterleaved(prepared, REPEATS);
  for (const p of prepared) p.dispose();
  const peaks = new Map(STEP_VARIANTS.map((impl) => [impl, peakOf(`step-${impl}`)]));
  const med = (impl: StepImpl) => median(times.get(`step-${impl}`)!.wall);
  const cpu = (impl: StepImpl) => median(times.get(`step-${impl}`)!.cpu);
  const lo = (impl: StepImpl) => Math.min(...times.get(`step-${impl}`)!.wall);
  console.log(
    `\n| model | wall ms/step (median) | wall ms (min) | CPU ms / threads (median) | tokens/s (median wall) | peak MiB above the runtime | of which params + AdamW state (×2 buffers) | peak MiB of the steps alone |\n|---|---|---|---|---|---|---|---|`,
  );
  for (const impl of STEP_VARIANTS) {
    const label = impl === 'dense' ? 'dense (E=1)' : `Lory E=${s.E}, ${impl}`;
    console.log(`| ${label} | ${ms(med(impl))} | ${ms(lo(impl))} | ${ms(cpu(impl))} | ${((s.batch * s.seq) / (med(impl) / 1000)).toFixed(0)} | ${MiB(peaks.get(impl)!.peakBytes)} | ${MiB(stateBytes.get(impl)!)} | ${MiB(peaks.get(impl)!.runPeakBytes)} |`);
  }
  console.log(
    `\nRatios (this run): time custom/standard ${ratio(med('custom'), med('standard'))} (CPU ${ratio(cpu('custom'), cpu('standard'))}), ` +
      `custom/dense ${ratio(med('custom'), med('dense'))} (CPU ${ratio(cpu('custom'), cpu('dense'))}); ` +
      `peak memory standard/custom ${ratio(peaks.get('standard')!.peakBytes, peaks.get('custom')!.peakBytes)} ` +
      `(steps alone ${ratio(peaks.get('standard')!.runPeakBytes, peaks.get('custom')!.runPeakBytes)})`,
  );
}

const childIdx = process.argv.indexOf('--child');
if (childIdx >= 0) {
  await child(process.argv[childIdx + 1]!);
} else {
  console.log(`# moe-ort bench: ${REPEATS} interleaved repeats, medians; ORT ${loadRuntime().info.ortVersion}`);
  if (PART === 'layer' || PART === 'all') await layerBench();
  if (PART === 'step' || PART === 'all') await stepBench();
}
