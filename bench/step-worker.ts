/**
 * lory side of `npm run bench:torch` (bench/train-vs-torch.ts): one worker process the bench drives
 * over stdin/stdout, one JSON object per line, with the same protocol as bench/torch/train_worker.py,
 * so that lory and PyTorch steps alternate in rounds and never run at the same time.
 *
 *   node dist/bench/step-worker.js SPEC.json
 *
 * SPEC (WorkerSpec below): a train step of a model (compiled by lory's train-step compiler, run by the
 * Trainer with parameters and AdamW state resident, exactly as `lory train` runs it) or one n×n×n
 * ORT MatMul (the attainable GEMM rate through the same runtime).
 * Commands: {"cmd":"step"} → {"wall_ms","cpu_ms","loss"}; {"cmd":"quit"} → {"peak_rss_kb"}, exit.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as G from '../src/graph/index.js';
import { compileTrainStep } from '../src/graph/compile/train-step.js';
import { Trainer } from '../src/train/trainer.js';
import { normalArray, rng } from '../src/graph/testing/random.js';
import { loadRuntime, type Feed, type ResidentValue } from '../src/runtime/index.js';
import { resolveModelConfig, type FfnImpl } from '../src/model/config.js';
import { loryTrainSpec } from '../src/model/model.js';
import { modelSessionOptions } from '../src/model/moe.js';
import { initParams } from '../src/model/params.js';

export interface BenchModel {
  vocab: number;
  d: number;
  layers: number;
  heads: number;
  dff: number;
  experts: number;
  segment: number;
  eps: number;
  ropeBase: number;
}

export type WorkerSpec =
  | {
      kind: 'step';
      threads: number;
      model: BenchModel;
      /** ffn_impl of the Lory layer ('standard' for the dense model, where it does not matter). */
      impl: FfnImpl;
      batch: number;
      seq: number;
      /** initParams seed: the bench writes the same values for the PyTorch side. */
      seed: number;
      /** int64 tokens then targets, [batch, seq] each. */
      data: string;
      lr: number;
      /** ORT's thread-pool spinning (default: ORT's, on, as `lory train` runs). */
      allowSpinning?: boolean;
    }
  | { kind: 'gemm'; threads: number; n: number; allowSpinning?: boolean };

export function loryConfig(m: BenchModel, impl: FfnImpl, seq: number) {
  return resolveModelConfig({
    vocabSize: m.vocab,
    dModel: m.d,
    nLayers: m.layers,
    nHeads: m.heads,
    dFf: m.dff,
    experts: m.experts,
    segmentLength: m.segment,
    normEps: m.eps,
    ropeBase: m.ropeBase,
    contextLength: seq,
    ffnImpl: impl,
  });
}

function rssKb(): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : NaN;
}

type Step = () => Promise<number | null>;

async function trainStep(spec: Extract<WorkerSpec, { kind: 'step' }>): Promise<{ step: Step; dispose: () => void }> {
  const c = loryConfig(spec.model, spec.impl, spec.seq);
  const { batch: B, seq: S } = spec;
  const compiled = compileTrainStep(loryTrainSpec(c, { batch: B, seq: S }));
  const trainer = await Trainer.create(compiled, initParams(c, spec.seed), {
    ...modelSessionOptions(c),
    intraOpThreads: spec.threads,
    ...(spec.allowSpinning !== undefined ? { allowSpinning: spec.allowSpinning } : {}),
  });
  const raw = readFileSync(spec.data);
  const ids = new BigInt64Array(raw.buffer, raw.byteOffset, raw.byteLength / 8);
  if (ids.length !== 2 * B * S) throw new Error(`step-worker: ${spec.data} holds ${ids.length} ids, expected ${2 * B * S}`);
  const batch: Record<string, Feed> = {
    tokens: { dtype: 'int64', shape: [B, S], data: ids.slice(0, B * S) },
    targets: { dtype: 'int64', shape: [B, S], data: ids.slice(B * S) },
  };
  let n = 0;
  return {
    step: async () => {
      const r = await trainer.step(batch, spec.lr, ++n);
      for (const d of Object.values(r.diagnostics)) d.dispose();
      return r.loss;
    },
    dispose: () => trainer.dispose(),
  };
}

async function gemm(spec: Extract<WorkerSpec, { kind: 'gemm' }>): Promise<{ step: Step; dispose: () => void }> {
  const { n } = spec;
  const rt = loadRuntime();
  const g = new G.Graph();
  const a = g.input('a', 'float32', [n, n]);
  const b = g.input('b', 'float32', [n, n]);
  const bytes = G.exportModel(g, { outputs: { c: G.matmul(a, b) }, inputs: [a, b] }).bytes;
  const session = await rt.createSession(bytes, {
    intraOpThreads: spec.threads,
    logId: 'gemm',
    ...(spec.allowSpinning !== undefined ? { allowSpinning: spec.allowSpinning } : {}),
  });
  const rand = rng(1);
  const values: ResidentValue[] = [rt.tensor('float32', [n, n], normalArray(n * n, rand, 1)), rt.tensor('float32', [n, n], normalArray(n * n, rand, 1))];
  const out = rt.tensor('float32', [n, n]);
  return {
    step: async () => {
      await session.run({ a: values[0]!, b: values[1]! }, { into: { c: out } });
      return null;
    },
    dispose: () => {
      session.dispose();
      for (const v of [...values, out]) v.dispose();
    },
  };
}

async function main(): Promise<void> {
  const spec = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as WorkerSpec;
  const rt = loadRuntime();
  const start = performance.now();
  const work = spec.kind === 'step' ? await trainStep(spec) : await gemm(spec);
  const send = (obj: unknown) => process.stdout.write(JSON.stringify(obj) + '\n');
  send({ ready: true, setup_s: (performance.now() - start) / 1000, rss_kb: rssKb(), ort: rt.info.ortVersion, threads: spec.threads });
  for await (const line of createInterface({ input: process.stdin })) {
    const { cmd } = JSON.parse(line) as { cmd: string };
    if (cmd === 'step') {
      const cpu0 = process.cpuUsage();
      const w0 = performance.now();
      const loss = await work.step();
      const wall = performance.now() - w0;
      const cpu = process.cpuUsage(cpu0);
      send({ wall_ms: wall, cpu_ms: (cpu.user + cpu.system) / 1000, loss });
    } else if (cmd === 'quit') {
      work.dispose();
      // Exit once the reply is written: stdin's reader and ORT's thread pool would keep the process alive.
      process.stdout.write(JSON.stringify({ peak_rss_kb: process.resourceUsage().maxRSS }) + '\n', () => process.exit(0));
      return;
    } else throw new Error(`step-worker: unknown command ${cmd}`);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
