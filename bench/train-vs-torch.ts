/**
 * Train step, lory against PyTorch, issue 11: `npm run bench:torch`.
 *
 * The same model on both sides — LLaMA-style decoder (RMSNorm, RoPE, SwiGLU, untied embeddings), dense
 * or with every FFN a Lory MoE layer (causal segment routing, experts merged per segment) — trained by
 * AdamW with global-norm clipping and lory's weight-decay groups. lory: the train-step compiler and the
 * Trainer exactly as `lory train` runs them (bench/step-worker.ts), Lory layer `custom` (fused op) and
 * `standard` (Einsum + batched MatMul). PyTorch: Debian's python3-torch (bench/torch/, the same module
 * lory's golden tensors come from), the merged FFN as einsum + bmm, the paper's formulation.
 *
 * Every variant is its own process, all started before timing; they then alternate in rounds (one step
 * each, the order rotating), so both sides see the same machine state and never run at once. Same
 * thread count for both (ORT intra-op threads; torch.set_num_threads and OMP_NUM_THREADS). Medians
 * over the recorded rounds after warm-up; tokens/s from the wall-time median; MFU = model FLOPs
 * (src/model/count.ts, the figure `lory train` reports) per second over the GEMM rate measured in the
 * same rounds (n×n×n float32 MatMul through ORT and through PyTorch, the higher of the two); peak RSS
 * per process (getrusage, whole process). Both sides start from the same weights (lory's initParams,
 * exported to PyTorch) on the same batch: their loss at step 1 must agree (a check that it is the
 * same model), and the loss after one AdamW update is shown beside it.
 *
 * Merge overhead: Lory step / dense step at equal active size for E = 8, 16, 32 on the tiny config,
 * the median over rounds of the ratio within a round, against 1 + E/T and the paper's A100 figures.
 *
 * Run: node dist/bench/train-vs-torch.js [--configs tiny,small] [--experts 8,16,32] [--threads 2]
 *      [--repeats-tiny 10] [--repeats-small 4] [--warmup-tiny 2] [--warmup-small 1]
 *      [--small-standard-with-pytorch] [--openblas-coretype auto|NAME] [--gemm-n 2048] [--json FILE]
 *      [--ort-spinning on|off] (ORT's thread-pool spinning for lory; default on, as `lory train` runs)
 *      [--wait-minutes N] (for memory before each alternation: default 5 where it can split, else 30)
 *
 * Memory decides which processes are alive at once (an idle worker keeps its memory): tiny runs one
 * alternation per expert count (both dense models, lory custom and standard, PyTorch Lory, the GEMM
 * yardsticks); small runs one per row (the lory model and its PyTorch counterpart). Small Lory
 * `standard` peaks near 16 GB, so by default it alternates with the yardsticks only and its row shows
 * the PyTorch Lory figures of the `custom` row's alternation (marked); --small-standard-with-pytorch
 * pairs it with PyTorch as well, where memory allows.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ADAMW_DEFAULTS } from '../src/graph/optim/adamw.js';
import { countFlops } from '../src/model/count.js';
import type { FfnImpl } from '../src/model/config.js';
import { initParams, paramSpecs } from '../src/model/params.js';
import { randomTokens } from '../src/model/testing.js';
import { loadRuntime } from '../src/runtime/index.js';
import { median } from './stats.js';
import { loryConfig, type BenchModel, type WorkerSpec } from './step-worker.js';
import { BenchSetupError, DETECTED, chooseTorchCoreType, ensureTorch, machine, PYTHON, TORCH_WORKER, torchEnv, torchGemmWorker, type CoreTypeChoice } from './torch-env.js';
import { alternate, Worker, type Ready, type Samples } from './worker-pool.js';

// ---------------------------------------------------------------------------------------------
// Options

function opt(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
function num(name: string, fallback: number): number {
  const v = opt(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < (name.startsWith('warmup') ? 0 : 1)) usage(`--${name}: expected a positive integer, got '${v}'`);
  return n;
}
function usage(message: string): never {
  console.error(`bench:torch: ${message}`);
  process.exit(2);
}

const THREADS = num('threads', 2);
const GEMM_N = num('gemm-n', 2048);
const SEED = 3;
const ORT_SPINNING = opt('ort-spinning') ?? 'on';
if (!['on', 'off'].includes(ORT_SPINNING)) usage(`--ort-spinning: expected 'on' or 'off', got '${ORT_SPINNING}'`);
const SPIN = ORT_SPINNING === 'off' ? { allowSpinning: false } : {};
const LR = 3e-4;

interface BenchConfig {
  name: 'tiny' | 'small';
  model: Omit<BenchModel, 'experts'>;
  seq: number;
  batch: number;
  /** Experts of the Lory rows; the first is the one in the main table. */
  experts: number[];
  warmup: number;
  repeats: number;
  /** 'per-experts': one alternation per expert count, both dense models in each; 'pairs': one per row. */
  phasing: 'per-experts' | 'pairs';
}

const parseList = (v: string, flag: string) =>
  v.split(',').map((x) => {
    const n = Number(x);
    if (!Number.isInteger(n) || n < 2) usage(`--${flag}: expected expert counts ≥ 2 separated by commas, got '${v}'`);
    return n;
  });

const CONFIGS: Record<'tiny' | 'small', BenchConfig> = {
  tiny: {
    name: 'tiny',
    model: { vocab: 8192, d: 256, layers: 4, heads: 4, dff: 688, segment: 64, eps: 1e-5, ropeBase: 10000 },
    seq: 256,
    batch: 8,
    experts: parseList(opt('experts') ?? '8,16,32', 'experts'),
    warmup: num('warmup-tiny', 2),
    repeats: num('repeats-tiny', 10),
    phasing: 'per-experts',
  },
  small: {
    name: 'small',
    model: { vocab: 16384, d: 512, layers: 8, heads: 8, dff: 1376, segment: 128, eps: 1e-5, ropeBase: 10000 },
    seq: 512,
    batch: 8,
    experts: [8],
    warmup: num('warmup-small', 1),
    repeats: num('repeats-small', 4),
    phasing: 'pairs',
  },
};
const STANDARD_WITH_TORCH = process.argv.includes('--small-standard-with-pytorch');
const CONFIG_NAMES = (opt('configs') ?? 'tiny,small').split(',');
for (const n of CONFIG_NAMES) if (!(n in CONFIGS)) usage(`--configs: unknown config '${n}' (tiny, small)`);

/** The paper's A100 throughput (tokens/s/GPU): dense 29.0K, 8E 24.5K, 16E 22.9K, 32E 20.8K (T = 256). */
const PAPER_SLOWDOWN: Record<number, number> = { 8: 29.0 / 24.5, 16: 29.0 / 22.9, 32: 29.0 / 20.8 };

// ---------------------------------------------------------------------------------------------
// Workers

type Side = 'lory' | 'torch';
interface Variant {
  id: string;
  side: Side;
  kind: 'step' | 'gemm';
  /** 1: dense. */
  experts: number;
  impl?: FfnImpl;
}

const stepVariants = (c: BenchConfig): Variant[] => [
  { id: 'lory:dense', side: 'lory', kind: 'step', experts: 1, impl: 'standard' },
  { id: 'torch:dense', side: 'torch', kind: 'step', experts: 1 },
  ...c.experts.flatMap((E): Variant[] => [
    { id: `lory:custom:${E}`, side: 'lory', kind: 'step', experts: E, impl: 'custom' },
    { id: `lory:standard:${E}`, side: 'lory', kind: 'step', experts: E, impl: 'standard' },
    { id: `torch:lory:${E}`, side: 'torch', kind: 'step', experts: E },
  ]),
];
const GEMM_VARIANTS: Variant[] = [
  { id: 'gemm:ort', side: 'lory', kind: 'gemm', experts: 0 },
  { id: 'gemm:torch', side: 'torch', kind: 'gemm', experts: 0 },
];

interface Phase {
  variants: Variant[];
  /**
   * MemAvailable (GiB) to wait for before starting its processes: the sum of their peak RSS as measured
   * on these configs, plus 2 GiB. Idle workers keep their memory, and running out on a shared machine
   * would have the kernel kill someone's process.
   */
  needGiB: number;
  /** Run these instead (one process each beside the yardsticks) when needGiB never becomes available. */
  split?: Phase[];
}

/** Which variants are alive and alternating together, alternation by alternation. */
function phases(c: BenchConfig): Phase[] {
  const steps = stepVariants(c);
  const by = (id: string) => steps.find((v) => v.id === id)!;
  if (c.phasing === 'per-experts') {
    // tiny: 7.8 GiB at E=8 (dense 1.2 + 1.0, custom 1.5, standard 2.2, PyTorch Lory 1.4, yardsticks 0.5), growing with E
    return c.experts.map((E) => ({
      variants: [by('lory:dense'), by('torch:dense'), by(`lory:custom:${E}`), by(`lory:standard:${E}`), by(`torch:lory:${E}`), ...GEMM_VARIANTS],
      needGiB: 10 + 0.15 * (E - 8),
    }));
  }
  // small: dense 7.8 GiB + PyTorch dense 4.9; custom 9.0 + PyTorch Lory 8.6; standard 15.9
  const alone = (id: string, needGiB: number): Phase => ({ variants: [by(id), ...GEMM_VARIANTS], needGiB });
  return [
    { variants: [by('lory:dense'), by('torch:dense'), ...GEMM_VARIANTS], needGiB: 15, split: [alone('lory:dense', 10), alone('torch:dense', 7)] },
    ...c.experts.flatMap((E) => [
      { variants: [by(`lory:custom:${E}`), by(`torch:lory:${E}`), ...GEMM_VARIANTS], needGiB: 20, split: [alone(`lory:custom:${E}`, 11), alone(`torch:lory:${E}`, 11)] },
      { variants: [by(`lory:standard:${E}`), ...(STANDARD_WITH_TORCH ? [by(`torch:lory:${E}`)] : []), ...GEMM_VARIANTS], needGiB: STANDARD_WITH_TORCH ? 27 : 18 },
    ]),
  ];
}

const benchModel = (c: BenchConfig, experts: number): BenchModel => ({ ...c.model, experts });

/** Tokens and targets (int64, [B,S] each) and, per expert count, lory's initial weights for PyTorch. */
function writeInputs(c: BenchConfig, dir: string): { data: string; weights: Map<number, string> } {
  const { batch: B, seq: S } = c;
  const tokens = randomTokens(B * S, c.model.vocab, 11);
  const ids = BigInt64Array.from([...tokens, ...tokens.map((t) => (t * 7 + 3) % c.model.vocab)], BigInt);
  const data = join(dir, `${c.name}-batch.i64`);
  writeFileSync(data, ids);
  const weights = new Map<number, string>();
  for (const E of [1, ...c.experts]) {
    const config = loryConfig(benchModel(c, E), 'standard', S);
    const params = initParams(config, SEED);
    const index: Record<string, { shape: number[]; offset: number }> = {};
    let offset = 0;
    const specs = paramSpecs(config);
    const flat = new Float32Array(specs.reduce((a, p) => a + params[p.name]!.length, 0));
    for (const p of specs) {
      flat.set(params[p.name]!, offset);
      index[p.name] = { shape: p.shape, offset };
      offset += params[p.name]!.length;
    }
    const file = `${c.name}-E${E}-weights.f32`;
    writeFileSync(join(dir, file), flat);
    const json = join(dir, `${c.name}-E${E}-weights.json`);
    writeFileSync(json, JSON.stringify({ file, tensors: index }));
    weights.set(E, json);
  }
  return { data, weights };
}

const STEP_WORKER = join(fileURLToPath(new URL('.', import.meta.url)), 'step-worker.js');

function startWorker(v: Variant, c: BenchConfig, dir: string, inputs: ReturnType<typeof writeInputs>, coreType: string | undefined): Worker {
  if (v.kind === 'gemm' && v.side === 'torch') return torchGemmWorker(`${c.name}-${v.id}`, dir, THREADS, GEMM_N, coreType);
  const specPath = join(dir, `${c.name}-${v.id.replaceAll(':', '-')}.json`);
  if (v.side === 'lory') {
    const spec: WorkerSpec =
      v.kind === 'gemm'
        ? { kind: 'gemm', threads: THREADS, n: GEMM_N, ...SPIN }
        : { kind: 'step', threads: THREADS, model: benchModel(c, v.experts), impl: v.impl!, batch: c.batch, seq: c.seq, seed: SEED, data: inputs.data, lr: LR, ...SPIN };
    writeFileSync(specPath, JSON.stringify(spec));
    return new Worker(v.id, process.execPath, [STEP_WORKER, specPath]);
  }
  const m = benchModel(c, v.experts);
  const spec = {
    kind: 'step',
    threads: THREADS,
    model: { vocab: m.vocab, d: m.d, layers: m.layers, heads: m.heads, dff: m.dff, experts: m.experts, segment: m.segment, eps: m.eps, rope_base: m.ropeBase },
    batch: c.batch,
    seq: c.seq,
    weights: inputs.weights.get(v.experts),
    data: inputs.data,
    lr: LR,
    adamw: { beta1: ADAMW_DEFAULTS.beta1, beta2: ADAMW_DEFAULTS.beta2, eps: ADAMW_DEFAULTS.eps, weight_decay: ADAMW_DEFAULTS.weightDecay.decay, clip_norm: ADAMW_DEFAULTS.clipNorm },
  };
  writeFileSync(specPath, JSON.stringify(spec));
  return new Worker(v.id, PYTHON, [TORCH_WORKER, specPath], torchEnv(THREADS, coreType));
}

// ---------------------------------------------------------------------------------------------
// Running

interface Measured {
  variant: Variant;
  samples: Samples;
  ready: Ready;
  peakRssKb: number;
}
interface PhaseResult {
  measured: Map<string, Measured>;
  /** GFLOP/s of the GEMM yardstick per round, each side. */
  gemm: { ort: number[]; torch: number[] };
}

const live = new Set<Worker>();

function availableGiB(): number {
  const m = /MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) / 2 ** 20 : Infinity;
}

/** Waits up to `minutes` until the machine has `gib` available; false if it never did. */
async function waitForMemory(gib: number, label: string, minutes: number): Promise<boolean> {
  const deadline = Date.now() + minutes * 60_000;
  let said = false;
  while (availableGiB() < gib) {
    if (Date.now() > deadline) return false;
    if (!said) process.stderr.write(`${label}: waiting up to ${minutes} min for ${gib} GiB of available memory (now ${availableGiB().toFixed(1)} GiB)…\n`);
    said = true;
    await new Promise((r) => setTimeout(r, 15_000));
  }
  return true;
}

/** Runs a phase, or its split (each process alone beside the yardsticks) when memory never allows it. */
async function runPhaseOrSplit(c: BenchConfig, phase: Phase, dir: string, inputs: ReturnType<typeof writeInputs>, coreType: string | undefined, label: string): Promise<PhaseResult[]> {
  const wait = num('wait-minutes', phase.split ? 5 : 30);
  if (await waitForMemory(phase.needGiB, label, wait)) return [await runPhase(c, phase, dir, inputs, coreType, label)];
  if (!phase.split) usage(`${label}: the machine never had ${phase.needGiB} GiB available (now ${availableGiB().toFixed(1)} GiB); retry when it is quieter`);
  process.stderr.write(`${label}: not enough memory for both processes at once; running each beside the yardsticks instead\n`);
  const out: PhaseResult[] = [];
  for (let i = 0; i < phase.split.length; i++) out.push(...(await runPhaseOrSplit(c, phase.split[i]!, dir, inputs, coreType, `${label}.${i + 1}`)));
  return out;
}

async function runPhase(c: BenchConfig, phase: Phase, dir: string, inputs: ReturnType<typeof writeInputs>, coreType: string | undefined, label: string): Promise<PhaseResult> {
  const variants = phase.variants;
  const workers = variants.map((v) => startWorker(v, c, dir, inputs, coreType));
  workers.forEach((w) => live.add(w));
  try {
    // Setup one at a time: graph compilation and session creation are not what is measured.
    const readies: Ready[] = [];
    for (const w of workers) readies.push(await w.ready());
    const rounds = c.warmup + c.repeats;
    const samples = await alternate(workers, c.warmup, c.repeats, (r) => process.stderr.write(`\r${label}: round ${r + 1}/${rounds} `));
    process.stderr.write('\n');
    const measured = new Map<string, Measured>();
    for (let i = 0; i < workers.length; i++) {
      const peakRssKb = await workers[i]!.quit();
      measured.set(variants[i]!.id, { variant: variants[i]!, samples: samples.get(workers[i]!.id)!, ready: readies[i]!, peakRssKb });
    }
    const rate = (id: string) => measured.get(id)!.samples.wall.map((ms) => (2 * GEMM_N ** 3) / (ms / 1000) / 1e9);
    return { measured, gemm: { ort: rate('gemm:ort'), torch: rate('gemm:torch') } };
  } finally {
    for (const w of workers) {
      w.kill();
      live.delete(w);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Reporting

const f0 = (x: number) => x.toFixed(0);
const f2 = (x: number) => x.toFixed(2);
const GiB = (kb: number) => (kb / 2 ** 20).toFixed(2);
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

interface Row {
  label: string;
  lory: Measured;
  torch: Measured;
  /** The lory worker's alternation (its GEMM yardstick gives the row's MFU). */
  phase: PhaseResult;
  /** False where the PyTorch figures come from another alternation (memory): ratios of medians then. */
  paired: boolean;
  flopsPerStep: number;
}

function rowsOf(c: BenchConfig, results: PhaseResult[]): Row[] {
  const E = c.experts[0]!;
  const flops = (experts: number) => countFlops(loryConfig(benchModel(c, experts), 'standard', c.seq), c.seq).train * c.batch * c.seq;
  const row = (label: string, loryId: string, torchId: string, experts: number): Row => {
    const phase = results.find((p) => p.measured.has(loryId))!;
    const together = phase.measured.get(torchId);
    const torch = together ?? results.find((p) => p.measured.has(torchId))!.measured.get(torchId)!;
    return { label, lory: phase.measured.get(loryId)!, torch, phase, paired: together !== undefined, flopsPerStep: flops(experts) };
  };
  return [
    row('dense', 'lory:dense', 'torch:dense', 1),
    row(`Lory E=${E}, lory \`custom\` / PyTorch`, `lory:custom:${E}`, `torch:lory:${E}`, E),
    row(`Lory E=${E}, lory \`standard\` / PyTorch`, `lory:standard:${E}`, `torch:lory:${E}`, E),
  ];
}

/** Median over rounds of a/b within the same round (both in one alternation), else the ratio of medians. */
function ratioOf(a: number[], b: number[], paired: boolean): number {
  return paired ? median(a.map((x, i) => x / b[i]!)) : median(a) / median(b);
}

const peakOf = (p: PhaseResult) => Math.max(median(p.gemm.ort), median(p.gemm.torch));

function printConfig(c: BenchConfig, results: PhaseResult[], coreType: CoreTypeChoice): string[] {
  const lines: string[] = [];
  const out = (s = '') => lines.push(s);
  const m = c.model;
  const tokens = c.batch * c.seq;
  out(`\n## ${c.name}: vocab ${m.vocab}, d ${m.d}, ${m.layers} layers, ${m.heads} heads, d_ff ${m.dff}, seq ${c.seq}, batch ${c.batch} (${tokens} tokens/step); Lory E=${c.experts[0]}, T=${m.segment}`);
  out(
    `\n${c.warmup} warm-up + ${c.repeats} recorded rounds; ${THREADS} threads each side; ` +
      (c.phasing === 'per-experts' ? `one alternation per expert count (this table: E=${c.experts[0]}'s)` : 'each row its own alternation (the lory variant and its PyTorch counterpart), to bound memory') +
      '. PyTorch / lory: median over rounds of the ratio within a round (wall; CPU time per thread in brackets).',
  );
  out('\n| model | GFLOP/step | lory ms/step | lory CPU ms/thread | lory tokens/s | lory MFU | lory peak RSS GiB | PyTorch ms/step | PyTorch CPU ms/thread | PyTorch tokens/s | PyTorch MFU | PyTorch peak RSS GiB | PyTorch / lory |');
  out('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rowsOf(c, results)) {
    const peak = peakOf(r.phase) * 1e9;
    const side = (x: Measured) => {
      const wall = median(x.samples.wall);
      return [f0(wall), f0(median(x.samples.cpu) / THREADS), f0(tokens / (wall / 1000)), pct(r.flopsPerStep / (wall / 1000) / peak), GiB(x.peakRssKb)];
    };
    const wall = ratioOf(r.torch.samples.wall, r.lory.samples.wall, r.paired);
    const cpu = ratioOf(r.torch.samples.cpu, r.lory.samples.cpu, r.paired);
    const mark = r.paired ? '' : ' †';
    out(`| ${r.label} | ${f2(r.flopsPerStep / 1e9)} | ${side(r.lory).join(' | ')} | ${side(r.torch).join(' | ')}${mark} | ${f2(wall)}x (${f2(cpu)}x)${mark} |`);
  }
  if (rowsOf(c, results).some((r) => !r.paired)) {
    out(`\n† PyTorch figures from another alternation (memory: the two processes did not fit at once; see the alternations below); the ratio is of medians from different alternations: trust it less.`);
  }
  out(`\nGEMM yardstick (${GEMM_N}³ float32, ${THREADS} threads, median over the rounds; MFU is against the higher of the two in the row's alternation):`);
  results.forEach((p, i) => {
    const label = results.length > 1 ? ` (alternation ${i + 1}: ${[...p.measured.keys()].filter((k) => !k.startsWith('gemm')).join(', ')})` : '';
    out(`- ORT MatMul ${f0(median(p.gemm.ort))} GFLOP/s, PyTorch mm (OpenBLAS ${coreType.probes.find((x) => x.requested === (coreType.value ?? DETECTED))?.core ?? coreType.value}) ${f0(median(p.gemm.torch))} GFLOP/s${label}`);
  });
  return lines;
}

interface LossCheck {
  label: string;
  lory: (number | null)[];
  torch: (number | null)[];
  ok: boolean;
}
const LOSS_RTOL = 1e-4;

/** Every lory model against its PyTorch counterpart (the step-1 loss is deterministic: any alternation will do). */
function lossChecks(c: BenchConfig, results: PhaseResult[]): LossCheck[] {
  const find = (id: string) => results.find((p) => p.measured.has(id))?.measured.get(id);
  const pairs: [string, string, string][] = [
    ['dense', 'lory:dense', 'torch:dense'],
    ...c.experts.flatMap((E): [string, string, string][] => [
      [`Lory E=${E}, \`custom\``, `lory:custom:${E}`, `torch:lory:${E}`],
      [`Lory E=${E}, \`standard\``, `lory:standard:${E}`, `torch:lory:${E}`],
    ]),
  ];
  return pairs.flatMap(([label, loryId, torchId]) => {
    const lory = find(loryId)?.samples.losses;
    const torch = find(torchId)?.samples.losses;
    if (!lory || !torch) return [];
    const [l0, l1] = lory;
    const [t0, t1] = torch;
    const ok = l0 != null && t0 != null && Math.abs(l0 - t0) <= LOSS_RTOL * Math.abs(t0);
    return [{ label: `${c.name} ${label}`, lory: [l0 ?? null, l1 ?? null], torch: [t0 ?? null, t1 ?? null], ok }];
  });
}

function printLossChecks(checks: LossCheck[]): string[] {
  const lines = ['\n## Same model on both sides: loss from the same initial weights on the same batch', ''];
  lines.push(`| model | lory loss, step 1 | PyTorch loss, step 1 | relative difference (≤ ${LOSS_RTOL}) | lory, after 1 AdamW update | PyTorch, after 1 AdamW update | relative difference |`);
  lines.push('|---|---|---|---|---|---|---|');
  const rel = (a: number | null, b: number | null) => (a == null || b == null ? '—' : (Math.abs(a - b) / Math.abs(b)).toExponential(1));
  const v = (x: number | null) => (x == null ? '—' : x.toFixed(6));
  for (const k of checks) lines.push(`| ${k.label} | ${v(k.lory[0]!)} | ${v(k.torch[0]!)} | ${rel(k.lory[0]!, k.torch[0]!)}${k.ok ? '' : ' **MISMATCH**'} | ${v(k.lory[1]!)} | ${v(k.torch[1]!)} | ${rel(k.lory[1]!, k.torch[1]!)} |`);
  return lines;
}

function printMergeOverhead(c: BenchConfig, results: PhaseResult[]): string[] {
  const lines = [`\n## Merge overhead (${c.name}): Lory step / dense step at equal active size, T=${c.model.segment}`, ''];
  lines.push('Each E its own alternation with both dense models; median over rounds of the ratio of the two steps in the same round (wall; CPU time per thread in brackets).', '');
  lines.push('| E | ideal 1 + E/T | model FLOP ratio | paper, A100 (T=256) | lory `custom` | lory `standard` | PyTorch | ms/step: lory dense, custom, standard; PyTorch dense, Lory |');
  lines.push('|---|---|---|---|---|---|---|---|');
  const flops = (E: number) => countFlops(loryConfig(benchModel(c, E), 'standard', c.seq), c.seq).train;
  for (const E of c.experts) {
    const p = results.find((r) => r.measured.has(`lory:custom:${E}`))!;
    const w = (id: string) => p.measured.get(id)!.samples;
    const both = (id: string, dense: string) => `${f2(ratioOf(w(id).wall, w(dense).wall, true))}x (${f2(ratioOf(w(id).cpu, w(dense).cpu, true))}x)`;
    const ms = [`lory:dense`, `lory:custom:${E}`, `lory:standard:${E}`, 'torch:dense', `torch:lory:${E}`].map((id) => f0(median(w(id).wall))).join(', ');
    lines.push(
      `| ${E} | ${f2(1 + E / c.model.segment)}x | ${f2(flops(E) / flops(1))}x | ${PAPER_SLOWDOWN[E] ? `${f2(PAPER_SLOWDOWN[E]!)}x` : '—'} | ` +
        `${both(`lory:custom:${E}`, 'lory:dense')} | ${both(`lory:standard:${E}`, 'lory:dense')} | ${both(`torch:lory:${E}`, 'torch:dense')} | ${ms} |`,
    );
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  try {
    ensureTorch();
  } catch (e) {
    if (e instanceof BenchSetupError) usage(e.message);
    throw e;
  }
  const dir = mkdtempSync(join(tmpdir(), 'lory-bench-torch-'));
  const cleanup = () => {
    for (const w of live) w.kill();
    rmSync(dir, { recursive: true, force: true });
  };
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.on(signal, () => {
      cleanup();
      process.exit(code);
    });
  }
  try {
    const mach = machine();
    const coreType = await chooseTorchCoreType(dir, THREADS, GEMM_N, opt('openblas-coretype'));
    const torchInfo = await torchDescription(dir, coreType.value);
    const lines: string[] = [];
    const out = (s = '') => {
      lines.push(s);
      console.log(s);
    };
    out(`# Train step: lory vs PyTorch (${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC)`);
    out(`\nMachine: ${mach.cpu}, ${mach.cores} cores, ${mach.memoryGiB.toFixed(0)} GiB; ISA: ${mach.isa.join(' ')}; load average at start ${mach.loadAverage}.`);
    out(`lory: ONNX Runtime ${loadRuntime().info.ortVersion}, ${THREADS} intra-op threads, thread-pool spinning ${ORT_SPINNING}. PyTorch ${torchInfo.torch} (${PYTHON}), ${torchInfo.threads} threads, OMP_WAIT_POLICY=${torchEnv(THREADS, undefined).OMP_WAIT_POLICY}; ${torchInfo.blasLine}.`);
    out(`OPENBLAS_CORETYPE for PyTorch: ${coreType.value ?? '(unset)'} (${coreType.how}); GEMM probes ${GEMM_N}³: ` + coreType.probes.map((p) => `${p.requested} → ${p.core} ${f0(p.gflops)} GFLOP/s`).join(', ') + '.');
    const checks: LossCheck[] = [];
    const json: Record<string, unknown> = { machine: mach, coreType, torch: torchInfo, configs: {} };
    for (const name of CONFIG_NAMES) {
      const c = CONFIGS[name as 'tiny' | 'small'];
      const inputs = writeInputs(c, dir);
      const results: PhaseResult[] = [];
      const ps = phases(c);
      for (let i = 0; i < ps.length; i++) results.push(...(await runPhaseOrSplit(c, ps[i]!, dir, inputs, coreType.value, `${c.name} ${i + 1}/${ps.length}`)));
      for (const l of printConfig(c, results, coreType)) out(l);
      if (c.phasing === 'per-experts') for (const l of printMergeOverhead(c, results)) out(l);
      checks.push(...lossChecks(c, results));
      (json.configs as Record<string, unknown>)[c.name] = results.map((p) => ({ gemm: p.gemm, workers: Object.fromEntries([...p.measured].map(([id, m]) => [id, { ...m.samples, ready: m.ready, peakRssKb: m.peakRssKb }])) }));
    }
    for (const l of printLossChecks(checks)) out(l);
    out(`\nLoad average at the end: ${machine().loadAverage}.`);
    const jsonPath = opt('json');
    if (jsonPath) writeFileSync(jsonPath, JSON.stringify({ ...json, report: lines.join('\n') }, null, 1));
    if (checks.some((k) => !k.ok)) {
      console.error('bench:torch: lory and PyTorch disagree on the loss at the same weights (see the table): the two sides are not the same model');
      process.exitCode = 1;
    }
  } finally {
    cleanup();
  }
}

/** Torch version, threads and BLAS as a PyTorch worker reports them (with the chosen core type). */
async function torchDescription(dir: string, coreType: string | undefined) {
  const w = torchGemmWorker('describe', dir, THREADS, 64, coreType);
  try {
    const r = await w.ready();
    await w.quit();
    const b = r.blas as Record<string, string | boolean | null>;
    const blasLine =
      `float32 GEMMs through ${b.blas_info === 'generic' ? 'libblas.so.3' : `BLAS_INFO=${b.blas_info}`} → ${b.libblas}` +
      (b.openblas_core ? ` (OpenBLAS, kernel family ${b.openblas_core}; ${b.openblas_config})` : ' (not OpenBLAS)') +
      `, MKL ${b.mkl ? 'available' : 'not available'}, oneDNN ${b.mkldnn ? 'available' : 'not available'}, ATen CPU capability ${b.cpu_capability}`;
    return { torch: r.torch as string, threads: r.threads as number, blas: b, blasLine };
  } finally {
    w.kill();
  }
}

await main();
