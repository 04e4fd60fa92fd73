/**
 * Benchmark of the merged-expert FFN through lory's own runtime (graph builder → ONNX → ORT), issue 5:
 *
 *   1. One layer, d=512 f=1408 E=8 T=128 G=32 (float32): forward and forward+backward (gradients of
 *      Σ y⊙r) for ffn_impl 'custom' (the fused ai.lory op), 'standard' (Einsum + batched MatMul) and a
 *      dense SwiGLU layer of the same d, f over the same G·T tokens (ORT MatMul).
 *   2. Whole train steps (issue 13's configs, `--configs tiny,small`): dense (E=1), Lory 'custom' and
 *      Lory 'standard', their ratios to dense against the ideal 1 + E/T, and peak RSS.
 *   3. Per-GEMM efficiency (`--part gemm`): each GEMM of the fused op, timed by the native benchmark
 *      (kernels/build/lory-ops/moe_layer_bench --gemms, CPU time), against ORT's MatMul on the same
 *      shape (batched per segment, and as one dense GEMM over all rows), CPU time, same threads.
 *
 * Time: layers and AdamW variants live in one process and run interleaved (the order rotates every
 * round), so a busy neighbour slows them alike; whole train steps run one variant per process, rounds
 * rotating the order (trainers sharing a process skew each other). Medians per run.
 * Peak memory: each variant runs in a child process of its own (`--child <variant>`); after the runtime
 * is loaded and every input and output buffer exists, VmHWM is reset (/proc/self/clear_refs) and the
 * figure is VmHWM after session creation and 3 runs minus VmRSS at the reset, i.e. what the run itself
 * needs on top of its inputs and outputs (ORT's arena included, as lory runs it).
 *
 * Run: node dist/bench/moe-ort.js [--part gemm|layer|step|all] [--repeats 9] [--threads 2] [--layer-G 32]
 *        [--configs tiny,small] [--small-repeats 3]
 * (`npm run bench:moe` runs --part gemm,step: per-GEMM table for tiny and small, steps for tiny and small.)
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as G from '../src/graph/index.js';
import { normalArray, rng } from '../src/graph/testing/random.js';
import { adamw, adamwSlots } from '../src/graph/optim/adamw.js';
import { loadRuntime, PROJECT_ROOT, type Feed, type ResidentValue, type Session } from '../src/runtime/index.js';
import { denseFfn, moeFfn, requireFfnImpl } from '../src/model/moe.js';
import { defaultDff } from '../src/model/config.js';
import { prepareStep as prepareStepOf, stepConfig, stepShape, type StepImpl, type StepShape } from './moe-configs.js';
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
const PARTS = sarg('part', 'all').split(',');
const wants = (part: string) => PARTS.includes(part) || PARTS.includes('all');
const CONFIGS = sarg('configs', 'tiny,small').split(',');
const SMALL_REPEATS = arg('small-repeats', 3);
/** Variants of the small config (standard needs ≈ 15.5 GB: opt in with --small-variants custom,standard,dense). */
const SMALL_VARIANTS = sarg('small-variants', 'custom,dense').split(',') as StepImpl[];
const LAYER = { G: arg('layer-G', 32), T: 128, d: 512, f: 1408, E: 8 };

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
// Train-step variants (configs in bench/moe-configs.ts)

const STEP_VARIANTS: StepImpl[] = ['custom', 'standard', 'dense'];
/** Bytes of the trainer's resident parameters and optimizer state (two buffers per slot: ping-pong). */
const stateBytes = new Map<StepImpl, number>();

async function prepareStep(config: string, impl: StepImpl, beforeCreate?: () => void): Promise<Prepared> {
  const p = await prepareStepOf(stepShape(config), impl, { intraOpThreads: THREADS }, beforeCreate);
  stateBytes.set(impl, p.stateBytes);
  return p;
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
    const [, config, impl] = name.split('-') as [string, string, StepImpl];
    prepared = await prepareStep(config, impl, () => (base = resetPeak()));
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
  const processPeak = status('VmHWM');
  // Isolated timing (configs too large to hold every variant in one process): N more steps, timed.
  const timed = await timeInterleaved([{ ...prepared, name }], arg('child-steps', 0), false);
  prepared.dispose();
  const t = timed.get(name)!;
  process.stdout.write(JSON.stringify({ name, peakBytes: peak, runPeakBytes: runPeak, processPeakBytes: processPeak, cpu: t.cpu, wall: t.wall, stateBytes: stateBytes.get(name.split('-')[2] as StepImpl) ?? 0 }) + '\n');
}

interface Peak {
  /** VmHWM above the baseline over session creation and 3 runs. */
  peakBytes: number;
  /** VmHWM of the 3 runs alone above the RSS once the session exists (activations, gradients, scratch). */
  runPeakBytes: number;
  /** The process's VmHWM since the last reset (the runs), whole: the peak RSS a user sees. */
  processPeakBytes: number;
  /** Step children: bytes of parameters and optimizer state (×2 buffers). */
  stateBytes?: number;
}

function peakOf(name: string, steps = 0): Peak & Partial<Times> {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', name, '--child-steps', String(steps), ...process.argv.slice(2)], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  if (r.status !== 0) throw new Error(`child ${name} failed (${r.status}): ${r.stderr}`);
  const line = r.stdout.trim().split('\n').pop()!;
  return JSON.parse(line) as Peak & Partial<Times>;
}

function memAvailableBytes(): number {
  const m = /MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) * 1024 : Infinity;
}

/**
 * Steps of a config too large to keep every variant in one process (small: ~9 GB custom, ~15 GB
 * standard): each round runs each variant in a child process of its own, one at a time, rotating the
 * order; the child warms up with 3 steps (its peak-memory probe), then times `steps` more.
 * A variant whose last known peak (or, before any, `guessBytes`) exceeds MemAvailable is skipped:
 * the machine is shared and an OOM kill would hit a neighbour as likely as this bench.
 */
function isolatedSteps(config: string, variants: StepImpl[], rounds: number, steps: number, guessBytes: Record<StepImpl, number>): Map<StepImpl, (Peak & Times) | undefined> {
  const result = new Map<StepImpl, (Peak & Times) | undefined>();
  const last = new Map<StepImpl, number>();
  const MARGIN = 3 * 2 ** 30; // neighbours' memory moves while a child runs
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < variants.length; k++) {
      const impl = variants[(k + r) % variants.length]!;
      const need = last.get(impl) ?? guessBytes[impl];
      if (need + MARGIN > memAvailableBytes()) {
        console.log(`(skipping ${impl} in round ${r + 1}: needs ≈ ${MiB(need)} MiB + ${MiB(MARGIN)} MiB margin, ${MiB(memAvailableBytes())} MiB available on this shared machine)`);
        continue;
      }
      let p: Peak & Partial<Times>;
      try {
        p = peakOf(`step-${config}-${impl}`, steps);
      } catch (error) {
        console.log(`(${impl} failed in round ${r + 1}: ${(error as Error).message.split('\n')[0]})`);
        continue;
      }
      last.set(impl, p.processPeakBytes);
      const acc = result.get(impl);
      if (!acc) result.set(impl, { ...p, cpu: [...p.cpu!], wall: [...p.wall!] });
      else {
        acc.cpu.push(...p.cpu!);
        acc.wall.push(...p.wall!);
        acc.processPeakBytes = Math.max(acc.processPeakBytes, p.processPeakBytes);
      }
    }
  }
  return result;
}

interface Times {
  wall: number[];
  /** Process CPU time (all threads) divided by the intra-op thread count: less sensitive to neighbours. */
  cpu: number[];
}

async function timeInterleaved(prepared: Prepared[], repeats: number, warmup = true): Promise<Map<string, Times>> {
  const times = new Map<string, Times>(prepared.map((p) => [p.name, { wall: [], cpu: [] }]));
  if (warmup) for (const p of prepared) await p.run(); // warm-up (arena growth, first-run allocations)
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

function cpuModel(): string {
  const info = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /model name\s*:\s*(.*)/.exec(info)?.[1] ?? 'unknown CPU';
  const flags = /flags\s*:\s*(.*)/.exec(info)?.[1]?.split(' ') ?? [];
  return `${model}, ${flags.includes('avx512f') ? 'AVX-512' : flags.includes('avx2') ? 'AVX2' : 'no AVX2'}, load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`;
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

async function stepBench(config: string): Promise<void> {
  const s: StepShape = stepShape(config);
  const repeats = config === 'small' ? SMALL_REPEATS : REPEATS;
  console.log(
    `\n## Train step, config ${config}: ${s.layers} layers, d=${s.d}, ${s.heads} heads, f=${stepConfig(s, 'custom').dFf}, E=${s.E}, T=${s.T}, ` +
      `seq ${s.seq}, batch ${s.batch}, vocab ${s.vocab}, AdamW; ${THREADS} intra-op threads; ${repeats} interleaved repeats`,
  );
  const times = new Map<string, Times>();
  const peaks = new Map<StepImpl, Peak>();
  // Isolated for every config: one variant per process at a time (see isolatedSteps), as a user runs
  // one trainer. Trainers sharing a process skewed the ratio (tiny: 1.17× interleaved in one process
  // against 1.25× each alone, same build), so rounds of separate processes, rotating the order.
  // tiny: 3 rounds × ⌈repeats/3⌉+ steps; small: rounds × 2 steps.
  const GiB = 2 ** 30;
  const small = config === 'small';
  const rounds = small ? Math.max(1, Math.ceil(repeats / 2)) : 3;
  const steps = small ? 2 : Math.max(3, Math.ceil((3 * repeats) / rounds));
  const guess = small ? { custom: 10 * GiB, standard: 16 * GiB, dense: 6 * GiB } : { custom: 2 * GiB, standard: 3 * GiB, dense: 2 * GiB };
  const runs = isolatedSteps(config, small ? SMALL_VARIANTS : STEP_VARIANTS, rounds, steps, guess);
  for (const [impl, r] of runs) {
    if (!r) continue;
    times.set(`step-${impl}`, r);
    peaks.set(impl, r);
    stateBytes.set(impl, r.stateBytes ?? NaN);
  }
  const have = (impl: StepImpl) => times.has(`step-${impl}`);
  const med = (impl: StepImpl) => (have(impl) ? median(times.get(`step-${impl}`)!.wall) : NaN);
  const cpu = (impl: StepImpl) => (have(impl) ? median(times.get(`step-${impl}`)!.cpu) : NaN);
  const lo = (impl: StepImpl) => (have(impl) ? Math.min(...times.get(`step-${impl}`)!.wall) : NaN);
  console.log(
    `\n| model | CPU ms / threads (median) | wall ms/step (median) | wall ms (min) | tokens/s (median wall) | peak RSS MiB (process) | peak MiB above the runtime | of which params + AdamW state (×2 buffers) | peak MiB of the steps alone |\n|---|---|---|---|---|---|---|---|---|`,
  );
  for (const impl of STEP_VARIANTS) {
    const label = impl === 'dense' ? 'dense (E=1)' : `Lory E=${s.E}, ${impl}`;
    const pk = peaks.get(impl);
    if (!pk) {
      const why = small && !SMALL_VARIANTS.includes(impl) ? 'not run (not in --small-variants)' : 'not run (memory)';
      console.log(`| ${label} | ${why} | | | | | | | |`);
      continue;
    }
    console.log(
      `| ${label} | ${ms(cpu(impl))} | ${ms(med(impl))} | ${ms(lo(impl))} | ${((s.batch * s.seq) / (med(impl) / 1000)).toFixed(0)} | ${MiB(pk.processPeakBytes)} | ${MiB(pk.peakBytes)} | ${MiB(stateBytes.get(impl)!)} | ${MiB(pk.runPeakBytes)} |`,
    );
  }
  const ideal = 1 + s.E / s.T;
  const verdict = (r: number) => (r <= ideal + 0.05 ? 'within goal' : `over goal by ${(r - ideal - 0.05).toFixed(2)}`);
  // A variant that did not run (not in --small-variants, or no memory) is left out of the ratios, not printed as NaN.
  const vs = (impl: 'custom' | 'standard') =>
    have(impl) && have('dense') ? `${impl} ${ratio(cpu(impl), cpu('dense'))} (${ratio(med(impl), med('dense'))})` : `${impl} not run`;
  const goal = (impl: 'custom' | 'standard') => (have(impl) && have('dense') ? `${impl} ${verdict(cpu(impl) / cpu('dense'))}` : `${impl} not run`);
  const both = have('custom') && have('standard');
  console.log(
    `\nRatios to dense (CPU time; wall in brackets): ${vs('custom')}, ${vs('standard')}; ideal 1 + E/T = ${ideal.toFixed(3)}x, ` +
      `goal ≤ ${(ideal + 0.05).toFixed(3)}x: ${goal('custom')}, ${goal('standard')}.` +
      (both
        ? ` custom/standard ${ratio(cpu('custom'), cpu('standard'))}; peak RSS standard/custom ${ratio(peaks.get('standard')!.processPeakBytes, peaks.get('custom')!.processPeakBytes)} ` +
          `(steps alone ${ratio(peaks.get('standard')!.runPeakBytes, peaks.get('custom')!.runPeakBytes)})`
        : ''),
  );
}

// ---------------------------------------------------------------------------------------------
// Per-GEMM efficiency: the fused op's GEMMs (native bench) against ORT MatMul on the same shapes

interface NativeGemm {
  gemm: string;
  batch: number;
  M: number;
  N: number;
  K: number;
  ms: number;
}

// ---------------------------------------------------------------------------------------------
// AdamW on a config's expert weights: the elementwise-op graph vs the fused ai.lory::AdamWUpdate

async function adamwBench(config: string): Promise<void> {
  const st = stepShape(config);
  const c = stepConfig(st, 'custom');
  const shapes = Array.from({ length: 3 * st.layers }, (_, i) => (i % 3 === 2 ? [st.E, c.dFf, st.d] : [st.E, st.d, c.dFf]));
  const rt = loadRuntime();
  const lib = requireFfnImpl('custom');
  const rand = rng(9);
  const resident: ResidentValue[] = [];
  const tensor = (shape: number[], std: number) => {
    const v = rt.tensor('float32', shape, normalArray(shape.reduce((a, b) => a * b, 1), rand, std));
    resident.push(v);
    return v;
  };
  const feeds: Record<string, Feed> = {
    'opt/lr': { dtype: 'float32', shape: [], data: Float32Array.of(1e-3) },
    'opt/step': { dtype: 'float32', shape: [], data: Float32Array.of(3) },
  };
  shapes.forEach((shape, i) => {
    feeds[`w${i}`] = tensor(shape, 0.02);
    feeds[`g${i}`] = tensor(shape, 0.001);
    feeds[`opt/m/w${i}`] = tensor(shape, 0.001);
    feeds[`opt/v/w${i}`] = tensor(shape, 1e-4);
  });
  const prepared: Prepared[] = [];
  for (const fused of [false, true]) {
    const g = new G.Graph();
    const params = shapes.map((shape, i) => g.param(`w${i}`, shape));
    const grads = shapes.map((shape, i) => g.input(`g${i}`, 'float32', shape));
    const slots = adamwSlots(g, params);
    const r = adamw(g, params, grads, slots, { fused });
    const outputs: Record<string, G.Tensor> = {};
    r.params.forEach((t, i) => (outputs[`next/w${i}`] = t));
    r.m.forEach((t, i) => (outputs[`next/m${i}`] = t));
    r.v.forEach((t, i) => (outputs[`next/v${i}`] = t));
    const into: Record<string, ResidentValue> = {};
    shapes.forEach((shape, i) => {
      for (const k of ['w', 'm', 'v']) {
        const v = rt.tensor('float32', shape);
        resident.push(v);
        into[`next/${k}${i}`] = v;
      }
    });
    const session = await rt.createSession(G.exportModel(g, { outputs }).bytes, { intraOpThreads: THREADS, customOpLibraries: lib });
    prepared.push({ name: fused ? 'fused' : 'graph', run: () => session.run(feeds, { into }), dispose: () => session.dispose() });
  }
  const times = await timeInterleaved(prepared, REPEATS);
  for (const p of prepared) p.dispose();
  for (const v of resident) v.dispose();
  const n = shapes.reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);
  const cpu = (k: string) => median(times.get(k)!.cpu);
  console.log(
    `\n## AdamW + clipping on the expert weights of config ${config} (${shapes.length} tensors, ${(n / 1e6).toFixed(1)}M parameters; ${THREADS} threads, CPU ms / threads, medians of ${REPEATS})\n\n` +
      `| optimizer | CPU ms | wall ms |\n|---|---|---|\n` +
      ['graph', 'fused'].map((k) => `| ${k === 'graph' ? 'elementwise ONNX ops' : 'fused AdamWUpdate'} | ${cpu(k).toFixed(1)} | ${median(times.get(k)!.wall).toFixed(1)} |`).join('\n') +
      `\n\nfused/graph ${ratio(cpu('fused'), cpu('graph'))}; the fused op moves 7 floats per parameter (${((7 * 4 * n) / 2 ** 20).toFixed(0)} MiB)`,
  );
}

const NATIVE_BENCH = join(PROJECT_ROOT, 'kernels', 'build', 'lory-ops', 'moe_layer_bench');

function nativeGemms(shape: { G: number; T: number; d: number; f: number; E: number }): { path: string; gemms: NativeGemm[] } {
  const args = ['--gemms', '--threads', String(THREADS), '--repeats', String(REPEATS)];
  for (const [k, v] of Object.entries(shape)) args.push(`--${k}`, String(v));
  const r = spawnSync(NATIVE_BENCH, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${NATIVE_BENCH} failed (${r.status}): ${r.stderr || r.error?.message} — build it with node kernels/build.mjs lory-ops`);
  const lines = r.stdout.split('\n');
  const path = /# GEMM path (\S+)/.exec(r.stdout)?.[1] ?? '?';
  return { path, gemms: lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as NativeGemm) };
}

/** ORT MatMul of a[batch,M,K]·b[batch,K,N] (batch 1: a plain 2-D MatMul), CPU time per run. */
async function ortMatmul(batch: number, M: number, N: number, K: number): Promise<number> {
  const rt = loadRuntime();
  const g = new G.Graph();
  const a = g.input('a', 'float32', batch > 1 ? [batch, M, K] : [M, K]);
  const b = g.input('b', 'float32', batch > 1 ? [batch, K, N] : [K, N]);
  const bytes = G.exportModel(g, { outputs: { c: G.matmul(a, b) }, inputs: [a, b] }).bytes;
  const rand = rng(5);
  const av = rt.tensor('float32', a.shape as number[], normalArray(batch * M * K, rand, 1));
  const bv = rt.tensor('float32', b.shape as number[], normalArray(batch * K * N, rand, 0.05));
  const cv = rt.tensor('float32', batch > 1 ? [batch, M, N] : [M, N]);
  // No spinning: idle pool threads would otherwise burn CPU time that is not MatMul work.
  const session = await rt.createSession(bytes, { intraOpThreads: THREADS, allowSpinning: false });
  const times = await timeInterleaved([{ name: 'mm', run: () => session.run({ a: av, b: bv }, { into: { c: cv } }), dispose: () => {} }], REPEATS);
  session.dispose();
  for (const v of [av, bv, cv]) v.dispose();
  return median(times.get('mm')!.cpu);
}

async function gemmBench(config: string): Promise<void> {
  const st = stepShape(config);
  const f = defaultDff(st.d);
  const shape = { G: (st.batch * st.seq) / st.T, T: st.T, d: st.d, f, E: st.E };
  // Native runs before and after ORT's; the smaller median of the two is kept (less interference).
  const first = nativeGemms(shape);
  const ort: Array<{ batched: number; dense: number }> = [];
  for (const gm of first.gemms) {
    // "a + b" rows are two GEMMs of the op (batch 2·G): ORT runs them as 2·G per-segment products.
    ort.push({ batched: await ortMatmul(gm.batch, gm.M, gm.N, gm.K), dense: await ortMatmul(1, gm.batch * gm.M, gm.N, gm.K) });
  }
  const second = nativeGemms(shape);
  console.log(
    `\n## GEMMs of one Lory layer, config ${config} (G=${shape.G} segments, T=${shape.T}, d=${shape.d}, f=${shape.f}, E=${shape.E}); ` +
      `our kernels (path ${first.path}) vs ORT MatMul (MLAS); CPU ms / ${THREADS} threads, medians of ${REPEATS}\n`,
  );
  console.log('| GEMM | batch × (M×K · K×N) | ours ms | ours GFLOP/s | ORT batched MatMul ms | ORT dense MatMul ms (batch·M rows) | ORT dense / ours |\n|---|---|---|---|---|---|---|');
  first.gemms.forEach((gm, i) => {
    const ours = Math.min(gm.ms, second.gemms[i]!.ms);
    const gflop = (2 * gm.batch * gm.M * gm.N * gm.K) / 1e9;
    console.log(
      `| ${gm.gemm} | ${gm.batch} × (${gm.M}×${gm.K} · ${gm.K}×${gm.N}) | ${ours.toFixed(1)} | ${(gflop / (ours / 1000)).toFixed(0)} | ${ort[i]!.batched.toFixed(1)} | ${ort[i]!.dense.toFixed(1)} | ${(ort[i]!.dense / ours).toFixed(2)} |`,
    );
  });
}

const childIdx = process.argv.indexOf('--child');
if (childIdx >= 0) {
  await child(process.argv[childIdx + 1]!);
} else {
  console.log(`# moe-ort bench: ${REPEATS} interleaved repeats, medians; ORT ${loadRuntime().info.ortVersion}; ${cpuModel()}`);
  if (wants('gemm')) for (const c of CONFIGS) await gemmBench(c);
  if (wants('layer')) await layerBench();
  if (wants('adamw')) for (const c of CONFIGS) await adamwBench(c);
  if (wants('step')) for (const c of CONFIGS) await stepBench(c);
}
