/**
 * One train step of the paper's 0.3B shapes (pipelines/paper-0.3b-dense.yaml and paper-0.3b-8e.yaml:
 * d 1024, 24 layers, 16 heads, f 2816, V 32000, context 4096; Lory: 8 experts, T 256), timed through the
 * same trainer `lory train` builds (makeModelTrainer), on random tokens. bin/gpu-check runs it on the GPU
 * in bf16 and, at a small --scale, on the CPU.
 *
 *   node dist/bench/gpu-step.js --model dense|lory8 [--device cpu|cuda[:N]] [--precision fp32|bf16]
 *        [--scale S] [--seq N] [--batch N] [--recompute | --no-recompute] [--steps N] [--peak-tflops X] [--json]
 *
 * --scale S (0 < S ≤ 1) shrinks every size by S (heads, layers, width, context, segment, vocabulary;
 * at least 1 head and 1 layer; head width stays 64). Prints one line: ms/step (median of --steps after
 * one warm-up step), tokens/s, model TFLOP per step (forward + backward = 3 × forward, recomputation not
 * counted) and, with --peak-tflops, MFU. --device and --precision go to train.device / train.precision;
 * a lory without them exits 2 saying so. Exit 2: bad arguments.
 */
import { join } from 'node:path';
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { PROJECT_ROOT } from '../src/artifacts/version.js';
import { countFlops, initParams, resolveModelConfig, type ModelConfig } from '../src/model/index.js';
import { randomTokens } from '../src/model/testing.js';
import { loadPipeline } from '../src/pipeline/load.js';
import { trainSection } from '../src/pipeline/schema.js';
import { makeModelTrainer } from '../src/train/model-trainer.js';
import type { TrainSettings } from '../src/train/settings.js';
import { median } from './stats.js';

export const MODEL_FILES = { dense: 'paper-0.3b-dense.yaml', lory8: 'paper-0.3b-8e.yaml' } as const;
export type BenchModel = keyof typeof MODEL_FILES;

export interface StepBenchOptions {
  model: BenchModel;
  device: string;
  precision: 'fp32' | 'bf16';
  scale: number;
  seq?: number | undefined;
  batch: number;
  recompute: boolean;
  steps: number;
  peakTflops?: number | undefined;
}

export interface StepBenchResult {
  model: BenchModel;
  device: string;
  precision: string;
  dModel: number;
  nLayers: number;
  nHeads: number;
  dFf: number;
  experts: number;
  seq: number;
  batch: number;
  recompute: boolean;
  steps: number;
  /** Parameter init, graph compile and session creation, before the first step. */
  setupSeconds: number;
  msPerStep: number;
  tokensPerSecond: number;
  tflopPerStep: number;
  mfu: number | null;
  losses: number[];
}

class UsageError extends Error {}

/** The paper's 0.3B model of that kind, every size times `scale` (head width 64 kept). */
export function benchModel(kind: BenchModel, scale: number): ModelConfig {
  const paper = loadPipeline(join(PROJECT_ROOT, 'pipelines', MODEL_FILES[kind])).runs[0]!.model;
  if (scale === 1) return paper;
  const by = (n: number, min: number, multiple = 1) => Math.max(min, Math.round((n * scale) / multiple) * multiple);
  const nHeads = by(paper.nHeads, 1);
  const segmentLength = by(paper.segmentLength, 2);
  return resolveModelConfig({
    ...paper,
    nHeads,
    dModel: nHeads * (paper.dModel / paper.nHeads),
    nLayers: by(paper.nLayers, 1),
    dFf: by(paper.dFf, 8, 8),
    vocabSize: by(paper.vocabSize, 16),
    segmentLength,
    contextLength: by(paper.contextLength, 2 * segmentLength, segmentLength),
  });
}

/** train: settings for the step; device and precision only when not the defaults, so a lory without them still runs fp32 on the CPU. */
export function benchSettings(o: Pick<StepBenchOptions, 'batch' | 'recompute' | 'device' | 'precision'>): TrainSettings {
  const extra: Record<string, string> = {};
  if (o.device !== 'cpu') extra.device = o.device;
  if (o.precision !== 'fp32') extra.precision = o.precision;
  const parsed = trainSection.safeParse({ micro_batch: o.batch, recompute: o.recompute, ...extra });
  if (!parsed.success) {
    const unknown = Object.keys(extra).filter((k) => !(k in trainSection.shape));
    const what = unknown.length ? `this lory's train: section has no ${unknown.join(' or ')} (issue 21)` : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new UsageError(`--device ${o.device} --precision ${o.precision}: ${what}`);
  }
  return parsed.data as TrainSettings;
}

export async function runStepBench(o: StepBenchOptions): Promise<StepBenchResult> {
  const t0 = performance.now();
  const base = benchModel(o.model, o.scale);
  const seq = o.seq ?? base.contextLength;
  const model = seq === base.contextLength ? base : resolveModelConfig({ ...base, contextLength: seq });
  const phase = await makeModelTrainer(model, benchSettings(o), seq, initParams(model, 1));
  const ids = (seed: number) => ({ dtype: 'int64' as const, shape: [o.batch, seq], data: BigInt64Array.from(randomTokens(o.batch * seq, model.vocabSize, seed).map(BigInt)) });
  const setupSeconds = (performance.now() - t0) / 1000;
  const times: number[] = [];
  const losses: number[] = [];
  try {
    for (let step = 0; step <= o.steps; step++) {
      const batch = { tokens: ids(step + 1), targets: ids(1000 + step) };
      const t0 = performance.now();
      const r = await phase.trainer.step(batch, 1e-4, step + 1);
      const ms = performance.now() - t0;
      for (const v of Object.values(r.diagnostics)) v.dispose();
      if (step > 0) times.push(ms); // step 0 warms up: session allocations, kernel selection
      losses.push(r.loss);
    }
  } finally {
    phase.trainer.dispose();
  }
  const msPerStep = median(times);
  const tokens = o.batch * seq;
  const tflopPerStep = (countFlops(model, seq).train * tokens) / 1e12;
  const mfu = o.peakTflops ? tflopPerStep / (msPerStep / 1000) / o.peakTflops : null;
  const { dModel, nLayers, nHeads, dFf, experts } = model;
  return { model: o.model, device: o.device, precision: o.precision, dModel, nLayers, nHeads, dFf, experts, seq, batch: o.batch, recompute: o.recompute, steps: o.steps, setupSeconds, msPerStep, tokensPerSecond: tokens / (msPerStep / 1000), tflopPerStep, mfu, losses };
}

/** The one-line summary bin/gpu-check's log shows (key=value, so it greps and parses). */
export function formatStepBench(r: StepBenchResult): string {
  const fields: Array<[string, string | number]> = [
    ['model', r.model], ['device', r.device], ['precision', r.precision], ['d', r.dModel], ['layers', r.nLayers], ['heads', r.nHeads],
    ['f', r.dFf], ['experts', r.experts], ['seq', r.seq], ['batch', r.batch], ['recompute', String(r.recompute)], ['steps', r.steps],
    ['setup_s', r.setupSeconds.toFixed(1)], ['ms_per_step', r.msPerStep.toFixed(2)], ['tokens_per_s', r.tokensPerSecond.toFixed(0)], ['tflop_per_step', r.tflopPerStep.toPrecision(4)],
    ['mfu', r.mfu === null ? 'n/a' : r.mfu.toFixed(4)],
  ];
  return `gpu-step ${fields.map(([k, v]) => `${k}=${v}`).join(' ')}`;
}

function positive(name: string, text: string | undefined, integer: boolean): number | undefined {
  if (text === undefined) return undefined;
  const v = Number(text);
  if (!(v > 0) || (integer && !Number.isInteger(v))) throw new UsageError(`--${name}: expected a positive ${integer ? 'integer' : 'number'}, got '${text}'`);
  return v;
}

export function parseBenchArgs(argv: string[]): StepBenchOptions & { json: boolean } {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' }, device: { type: 'string', default: 'cpu' }, precision: { type: 'string', default: 'fp32' },
      scale: { type: 'string', default: '1' }, seq: { type: 'string' }, batch: { type: 'string', default: '1' },
      recompute: { type: 'boolean', default: true }, 'no-recompute': { type: 'boolean' }, steps: { type: 'string', default: '5' },
      'peak-tflops': { type: 'string' }, json: { type: 'boolean', default: false },
    },
  });
  if (values.model !== 'dense' && values.model !== 'lory8') throw new UsageError(`--model: expected dense or lory8, got '${values.model ?? ''}'`);
  if (!/^(cpu|cuda(:\d+)?)$/.test(values.device)) throw new UsageError(`--device: expected cpu, cuda or cuda:N, got '${values.device}'`);
  if (values.precision !== 'fp32' && values.precision !== 'bf16') throw new UsageError(`--precision: expected fp32 or bf16, got '${values.precision}'`);
  const scale = positive('scale', values.scale, false)!;
  if (scale > 1) throw new UsageError(`--scale: expected a number in (0, 1], got '${values.scale}'`);
  return {
    model: values.model, device: values.device, precision: values.precision, scale,
    seq: positive('seq', values.seq, true), batch: positive('batch', values.batch, true)!,
    recompute: values['no-recompute'] ? false : values.recompute, steps: positive('steps', values.steps, true)!,
    peakTflops: positive('peak-tflops', values['peak-tflops'], false), json: values.json,
  };
}

export async function main(argv: string[]): Promise<number> {
  let options: ReturnType<typeof parseBenchArgs>;
  try {
    options = parseBenchArgs(argv);
    benchSettings(options); // refuses an unsupported device/precision before building anything
  } catch (error) {
    if (!(error instanceof UsageError) && !(error instanceof TypeError)) throw error; // parseArgs: unknown option → TypeError
    process.stderr.write(`gpu-step: ${(error as Error).message}\n`);
    return 2;
  }
  const r = await runStepBench(options);
  process.stdout.write(`${options.json ? JSON.stringify(r) : formatStepBench(r)}\n`);
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) process.exitCode = await main(process.argv.slice(2));
