/**
 * The training loop: packed instances → a run directory with metrics.jsonl and checkpoints.
 *
 *   for step = 1..steps:  lr from the schedule; one update (or `accumulation` micro-batches summed,
 *   then applied), the next micro-batch read from disk while the step runs on ORT's worker thread;
 *   a metrics line; dense → Lory conversion after the dense warm-up's last step; validation and
 *   checkpoints every N steps; on Ctrl-C/SIGTERM a checkpoint, then InterruptedError.
 *
 * Parameters and AdamW moments stay resident in native memory (Trainer); they cross into JS only
 * for checkpoints and the conversion. Everything random derives from train.seed, so a run is
 * deterministic and a resume from a checkpoint continues bit for bit.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, appendFileSync, readdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { artifactInput, canonicalJson, fingerprint, hashFile, InputError, InterruptedError, readManifest, toolVersion, tryReadManifest, upToDate, type FileEntry, type InputRef, type Manifest } from '../artifacts/index.js';
import { compileTrainStep } from '../graph/compile/train-step.js';
import type { AdamWConfig } from '../graph/optim/adamw.js';
import {
  ConfigError,
  checkTrainingSequenceLength,
  countFlops,
  denseToMoe,
  initParams,
  isMoe,
  loryTrainSpec,
  moeKindName,
  modelConfigToYamlObject,
  modelSessionOptions,
  paramSpecs,
  type ModelConfig,
  type ParamArray,
  type ParamValues,
} from '../model/index.js';
import type { ResidentValue } from '../runtime/index.js';
import { listCheckpoints, readCheckpoint, writeCheckpoint, pruneCheckpoints, type CheckpointState, type DataCursor } from './checkpoint.js';
import { InstanceReader, openBatches, type MicroBatch } from './data.js';
import { measureGemmPeak } from './peak.js';
import { StepDiagnostics } from './diagnostics.js';
import type { RoutingStats } from './routing-stats.js';
import { lrAt, type Schedule } from './schedule.js';
import { Trainer } from './trainer.js';

export const RUN_KIND = 'run';
export const RUN_VERSION = 1;
export const METRICS_FILE = 'metrics.jsonl';
const FINGERPRINT_FILE = '.fingerprint';

/** The `train:` section, resolved (src/pipeline/schema.ts spells it). */
export interface TrainSettings {
  steps: number;
  micro_batch: number;
  accumulation: number;
  lr: number;
  min_lr_ratio: number;
  warmup: number;
  beta1: number;
  beta2: number;
  adam_eps: number;
  weight_decay: number;
  weight_decay_router: boolean;
  clip_norm: number;
  dense_warmup: number;
  seed: number;
  valid_every: number;
  valid_batches: number;
  checkpoint_every: number;
  keep_last: number;
  threads?: number | undefined;
}

export interface TrainOptions {
  /** A batches artifact (made by `lory build-batches`). */
  batches: string;
  /** The run directory. */
  out: string;
  model: ModelConfig;
  train: TrainSettings;
  /** The resolved config saved with the run and every checkpoint (its model section is rewritten per phase). */
  config: Record<string, unknown>;
  /** Batches whose valid.bin is the validation set (default: `batches`' own). */
  valid?: string;
  /** Start over even when the run directory holds a finished run or checkpoints. */
  force?: boolean;
  signal?: AbortSignal;
  onEvent?(event: TrainEvent): void;
  /** Measured GEMM peak in FLOP/s (default: measured at start). */
  peakFlops?: number;
  /** Stop after this step as if interrupted (tests of resume). */
  stopAfter?: number;
}

export interface StepMetrics {
  type: 'step';
  step: number;
  phase: 'dense' | 'moe';
  tokens: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokensPerSecond: number;
  mfu: number;
  stepMs: number;
  routing?: Array<{ layer: number } & RoutingStats>;
  diag?: Record<string, number>;
}

export type TrainEvent =
  | { type: 'start'; step: number; steps: number; resumedFrom?: string; phase: 'dense' | 'moe'; peakFlops: number; tokensPerStep: number; convertAt: number }
  | StepMetrics
  | { type: 'valid'; step: number; loss: number; tokens: number }
  | { type: 'convert'; step: number; experts: number; kind: string }
  | { type: 'checkpoint'; step: number; dir: string; best: boolean };

export interface TrainStats {
  steps: number;
  tokens: number;
  finalLoss: number;
  validLoss: number | null;
  bestValidLoss: number | null;
  convertedAt: number | null;
  peakFlops: number;
  medianTokensPerSecond: number;
  medianMfu: number;
  seconds: number;
}

export interface TrainResult {
  runDir: string;
  skipped: boolean;
  manifest?: Manifest<TrainStats>;
  /** Losses of the steps this call ran (a resumed call: from the resume point). */
  losses: number[];
}

const median = (xs: number[]) => {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

/** What the optimizer does per parameter group (src/model/params.ts names the groups). */
export function optimizerConfig(t: TrainSettings): AdamWConfig {
  return {
    beta1: t.beta1,
    beta2: t.beta2,
    eps: t.adam_eps,
    weightDecay: { decay: t.weight_decay, no_decay: 0, router: t.weight_decay_router ? t.weight_decay : 0 },
    clipNorm: t.clip_norm,
  };
}

/** The step after whose update a Lory run converts to MoE (0: no dense warm-up). */
export function conversionStep(model: ModelConfig, t: TrainSettings): number {
  return isMoe(model) && t.dense_warmup > 0 ? Math.max(1, Math.round(t.dense_warmup * t.steps)) : 0;
}

/** The dense model a Lory run warms up with: the same model with one plain FFN per layer. */
export const denseOf = (c: ModelConfig): ModelConfig => ({ ...c, experts: 1, ffnImpl: 'standard' });

const M = (p: string) => `opt/m/${p}`;
const V = (p: string) => `opt/v/${p}`;

/**
 * The AdamW moments of the converted model. Every expert starts as a copy of the dense FFN and, with
 * the near-uniform fresh router, receives about eᵢ·g ≈ g/E of the dense gradient g; so its moments
 * are the dense ones tiled with m/E and v/E² — the moments it would hold had it seen g/E all along
 * (Adam's update m/√v is scale-free, so the first MoE updates continue the dense trajectory). Routers
 * are new: their moments start at zero. Non-FFN moments are copied. The step counter continues.
 */
export function convertMoments(dense: { m: ParamValues; v: ParamValues }, denseModel: ModelConfig, moe: ModelConfig): { m: ParamValues; v: ParamValues } {
  const E = moe.experts;
  const tile = (src: ParamValues, scale: number) => {
    const out = denseToMoe(src, denseModel, moe, 0);
    for (const s of paramSpecs(moe, 'moe')) {
      const a = out[s.name]!;
      if (s.role === 'router') a.fill(0);
      else if (s.role === 'ffn') for (let i = 0; i < a.length; i++) a[i] = a[i]! * scale;
    }
    return out;
  };
  return { m: tile(dense.m, 1 / E), v: tile(dense.v, 1 / (E * E)) };
}

interface Phase {
  model: ModelConfig;
  trainer: Trainer;
}

async function makePhase(model: ModelConfig, t: TrainSettings, seq: number, params: ParamValues, adam?: { m: ParamValues; v: ParamValues }): Promise<Phase> {
  const compiled = compileTrainStep(loryTrainSpec(model, { batch: t.micro_batch, seq }, { optimizer: optimizerConfig(t), accumulation: t.accumulation > 1 }));
  const trainer = await Trainer.create(compiled, params, { ...modelSessionOptions(model), ...(t.threads ? { intraOpThreads: t.threads } : {}) });
  if (adam) {
    for (const s of paramSpecs(model)) {
      trainer.resident(M(s.name))!.write(adam.m[s.name]!);
      trainer.resident(V(s.name))!.write(adam.v[s.name]!);
    }
  }
  return { model, trainer };
}

function readState(phase: Phase): { params: ParamValues; adam: { m: ParamValues; v: ParamValues } } {
  const params: ParamValues = {};
  const m: ParamValues = {};
  const v: ParamValues = {};
  for (const s of paramSpecs(phase.model)) {
    params[s.name] = phase.trainer.read(s.name) as ParamArray;
    m[s.name] = phase.trainer.read(M(s.name)) as ParamArray;
    v[s.name] = phase.trainer.read(V(s.name)) as ParamArray;
  }
  return { params, adam: { m, v } };
}

const feeds = (b: MicroBatch, batch: number, seq: number) => ({
  tokens: { dtype: 'int64' as const, shape: [batch, seq], data: b.tokens },
  targets: { dtype: 'int64' as const, shape: [batch, seq], data: b.targets },
});

/** Run-directory bookkeeping: what is there, and whether it may be continued. */
function prepareRunDir(out: string, wanted: string, force: boolean): 'fresh' | 'continue' | 'done' {
  if (!existsSync(out)) return 'fresh';
  const manifest = tryReadManifest(out);
  if (manifest && manifest.kind !== RUN_KIND) throw new InputError(`${out}: holds a ${manifest.kind}, not a training run; lory will not overwrite it (choose another -o)`);
  const key = createHash('sha256').update(wanted).digest('hex');
  const fpPath = join(out, FINGERPRINT_FILE);
  const isRun = existsSync(fpPath) || manifest !== undefined;
  if (!isRun && readdirSync(out).length > 0) throw new InputError(`${out}: exists and is not a lory run; lory will not overwrite it (choose another -o)`);
  if (force) {
    if (isRun) rmSync(out, { recursive: true, force: true });
    return 'fresh';
  }
  if (manifest && upToDate(out, wanted)) return 'done';
  if (existsSync(fpPath) && readFileSync(fpPath, 'utf8').trim() !== key) {
    throw new InputError(`${out}: holds a run of another config or other batches; use --force to start it over, or another -o`);
  }
  return 'continue';
}

export async function train(o: TrainOptions): Promise<TrainResult> {
  const started = performance.now();
  const t = o.train;
  const out = o.out; // as the user typed it: every message names it so
  const batches = openBatches(o.batches);
  const seq = batches.seqLen;
  const model = o.model;
  const tokensMeta = readManifest<{ vocabSize: number }>(batches.tokensDir, 'token-store', 1);
  if (model.vocabSize < tokensMeta.stats.vocabSize) {
    throw new ConfigError(`model.vocab_size (${model.vocabSize}) is smaller than the tokenizer's vocabulary (${tokensMeta.stats.vocabSize}) of ${batches.tokensDir}`);
  }
  checkTrainingSequenceLength(model, seq);
  const tokenizerPath = join(batches.tokensDir, 'tokenizer.json');
  const validDir = o.valid ?? o.batches;
  const validBatches = o.valid ? openBatches(o.valid) : batches;
  if (validBatches.seqLen !== seq) throw new InputError(`${validDir}: sequence length ${validBatches.seqLen} differs from the training batches' ${seq}`);
  const inputs: InputRef[] = [artifactInput('batches', o.batches, batches.manifest)];
  if (o.valid) inputs.push(artifactInput('valid', o.valid, validBatches.manifest));
  // What the run is: the config as given, and (whatever the caller's config holds) the model and settings trained.
  const params = { ...o.config, model: modelConfigToYamlObject(model), train: { ...t } };
  const tool = { name: 'lory' as const, version: toolVersion() };
  const wanted = fingerprint({ kind: RUN_KIND, formatVersion: RUN_VERSION, tool, inputs, params });

  const status = prepareRunDir(out, wanted, o.force ?? false);
  if (status === 'done') return { runDir: out, skipped: true, manifest: tryReadManifest(out) as unknown as Manifest<TrainStats>, losses: [] };
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, FINGERPRINT_FILE), `${createHash('sha256').update(wanted).digest('hex')}\n`);
  writeFileSync(join(out, 'config.json'), `${JSON.stringify(o.config, null, 2)}\n`);

  const convertAt = conversionStep(model, t);
  const dense = denseOf(model);
  const phaseModel = (done: number) => (convertAt > 0 && done < convertAt ? dense : model);
  const metricsPath = join(out, METRICS_FILE);

  let step = 0;
  let cursor: DataCursor = { epoch: 0, position: 0 };
  let tokensSeen = 0;
  let validLoss: number | undefined;
  let bestValidLoss: number | undefined;
  let resumedFrom: string | undefined;
  let phase: Phase;
  if (status === 'continue' && listCheckpoints(out).length > 0) {
    const ck = readCheckpoint(out, { optimizer: true });
    const expected = phaseModel(ck.state.step);
    if (canonicalJson(ck.model) !== canonicalJson(expected)) {
      throw new InputError(`${ck.dir}: its model (config.json) is not the one this run trains at step ${ck.state.step}; use --force to start over`);
    }
    step = ck.state.step;
    cursor = { ...ck.state.cursor };
    tokensSeen = ck.state.tokensSeen;
    validLoss = ck.state.validLoss;
    bestValidLoss = ck.state.bestValidLoss;
    resumedFrom = ck.dir;
    phase = await makePhase(ck.model, t, seq, ck.params, ck.adam);
    // Metrics past the checkpoint belong to steps that will run again.
    if (existsSync(metricsPath)) {
      // (A kill -9 mid-append can leave a torn last line: it is dropped with the rest.)
      const stepOf = (l: string) => {
        try {
          return (JSON.parse(l) as { step: number }).step;
        } catch {
          return Infinity;
        }
      };
      const kept = readFileSync(metricsPath, 'utf8')
        .split('\n')
        .filter((l) => l && stepOf(l) <= step);
      writeFileSync(metricsPath, kept.map((l) => `${l}\n`).join(''));
    }
  } else {
    const first = phaseModel(0);
    phase = await makePhase(first, t, seq, initParams(first, t.seed));
    writeFileSync(metricsPath, '');
  }

  const sessionOptions = { ...modelSessionOptions(dense), ...(t.threads ? { intraOpThreads: t.threads } : {}) };
  const peakFlops = o.peakFlops ?? (await measureGemmPeak(sessionOptions)).flops;
  const reader = InstanceReader.open(batches, 'train', t.seed);
  const validReader = InstanceReader.open(validBatches, 'valid', t.seed);
  const schedule: Schedule = { lr: t.lr, steps: t.steps, warmup: t.warmup, minLrRatio: t.min_lr_ratio };
  const B = t.micro_batch;
  const tokensPerStep = B * t.accumulation * seq;
  const losses: number[] = [];
  const rates: number[] = [];
  const mfus: number[] = [];
  let lastLoss = NaN;
  const emit = (e: TrainEvent) => o.onEvent?.(e);
  const log = (line: object) => appendFileSync(metricsPath, `${JSON.stringify(line)}\n`);
  emit({ type: 'start', step, steps: t.steps, ...(resumedFrom ? { resumedFrom } : {}), phase: convertAt > 0 && step < convertAt ? 'dense' : 'moe', peakFlops, tokensPerStep, convertAt });

  // The next micro-batch, read ahead; `cursorBefore` is where the data stood before it was read.
  let ahead: { batch: MicroBatch; cursorBefore: DataCursor } | undefined;
  const take = (): MicroBatch => {
    const b = ahead?.batch ?? reader.next(cursor, B);
    ahead = undefined;
    return b;
  };
  const readAhead = () => {
    const before = { ...cursor };
    ahead = { batch: reader.next(cursor, B), cursorBefore: before };
  };
  const consumedCursor = (): DataCursor => (ahead ? { ...ahead.cursorBefore } : { ...cursor });

  const collect = (diagnostics: Record<string, ResidentValue>, into: StepDiagnostics) => {
    for (const [name, v] of Object.entries(diagnostics)) {
      into.add(name, v.read() as Float32Array | Float64Array);
      v.dispose();
    }
  };

  const validate = async (): Promise<number | undefined> => {
    const total = validReader.count;
    if (total === 0) return undefined;
    const limit = t.valid_batches > 0 ? Math.min(total, t.valid_batches * B) : total;
    let sum = 0;
    let rows = 0;
    for (let start = 0; start < limit; start += B) {
      const n = Math.min(B, limit - start);
      const r = await phase.trainer.eval(feeds(validReader.slice(start, n, B), B, seq));
      // Token-level MoE kinds train on LM loss + auxiliary terms; validation compares the LM loss alone.
      const lmLoss = r.diagnostics['diag/lm_loss'];
      const loss = lmLoss ? Number(lmLoss.read()[0]) : r.loss;
      for (const v of Object.values(r.diagnostics)) v.dispose();
      sum += loss * n; // the mean over this batch's n real rows (padding rows are ignored: label -100)
      rows += n;
    }
    return sum / rows;
  };

  const checkpoint = async (withValidation: boolean) => {
    let fresh: number | undefined;
    if (withValidation) {
      fresh = await validate();
      if (fresh !== undefined) {
        validLoss = fresh;
        log({ type: 'valid', step, loss: fresh, tokens: tokensSeen });
        emit({ type: 'valid', step, loss: fresh, tokens: tokensSeen });
      }
    }
    const isBest = fresh !== undefined && (bestValidLoss === undefined || fresh < bestValidLoss);
    if (isBest) bestValidLoss = fresh;
    const { params: values, adam } = readState(phase);
    const state: CheckpointState = {
      step,
      tokensSeen,
      cursor: consumedCursor(),
      rng: { seed: t.seed },
      ...(validLoss !== undefined ? { validLoss } : {}),
      ...(bestValidLoss !== undefined ? { bestValidLoss } : {}),
      phase: convertAt > 0 && step < convertAt ? 'dense' : 'moe',
    };
    const dir = await writeCheckpoint({ runDir: out, state, model: phase.model, config: o.config, params: values, adam, tokenizerPath, inputs }, { isBest });
    pruneCheckpoints(out, t.keep_last);
    emit({ type: 'checkpoint', step, dir, best: isBest });
  };

  try {
    while (step < t.steps) {
      const s = step + 1;
      const lr = lrAt(schedule, s);
      const t0 = performance.now();
      const diagnostics = new StepDiagnostics();
      let loss: number;
      let gradNorm: number;
      if (t.accumulation === 1) {
        const run = phase.trainer.step(feeds(take(), B, seq), lr, s);
        readAhead();
        const r = await run;
        collect(r.diagnostics, diagnostics);
        loss = r.loss;
        gradNorm = r.gradNorm ?? NaN;
      } else {
        let sum = 0;
        for (let k = 0; k < t.accumulation; k++) {
          const run = phase.trainer.accumulate(feeds(take(), B, seq));
          readAhead();
          const r = await run;
          collect(r.diagnostics, diagnostics);
          sum += r.loss;
        }
        const r = await phase.trainer.apply(lr, s, 1 / t.accumulation);
        for (const v of Object.values(r.diagnostics)) v.dispose();
        loss = sum / t.accumulation;
        gradNorm = r.gradNorm ?? NaN;
      }
      step = s;
      tokensSeen += tokensPerStep;
      const seconds = (performance.now() - t0) / 1000;
      const flops = countFlops(phase.model, seq).train * tokensPerStep;
      const metrics: StepMetrics = {
        type: 'step',
        step,
        phase: convertAt > 0 && step <= convertAt ? 'dense' : 'moe',
        tokens: tokensSeen,
        loss,
        lr,
        gradNorm,
        tokensPerSecond: tokensPerStep / seconds,
        mfu: flops / seconds / peakFlops,
        stepMs: seconds * 1000,
      };
      Object.assign(metrics, diagnostics.summary(phase.model.experts));
      log(metrics);
      emit(metrics);
      losses.push(loss);
      rates.push(metrics.tokensPerSecond);
      mfus.push(metrics.mfu);
      lastLoss = loss;

      if (step === convertAt) {
        const st = readState(phase);
        const moeParams = denseToMoe(st.params, dense, model, t.seed);
        const moments = convertMoments(st.adam, dense, model);
        phase.trainer.dispose();
        phase = await makePhase(model, t, seq, moeParams, moments);
        emit({ type: 'convert', step, experts: model.experts, kind: moeKindName(model) });
      }

      const interrupted = o.signal?.aborted || (o.stopAfter !== undefined && step >= o.stopAfter);
      const due = step % t.checkpoint_every === 0 || step === t.steps;
      const validDue = t.valid_every > 0 && step % t.valid_every === 0;
      if (validDue && !due && !interrupted) {
        const v = await validate();
        if (v !== undefined) {
          validLoss = v;
          log({ type: 'valid', step, loss: v, tokens: tokensSeen });
          emit({ type: 'valid', step, loss: v, tokens: tokensSeen });
        }
      }
      if (due || interrupted) await checkpoint(!interrupted);
      if (interrupted && step < t.steps) {
        throw new InterruptedError(`training stopped after step ${step} of ${t.steps}; checkpoint saved in ${join(out, 'checkpoints')}; run the same command again to resume`);
      }
    }
  } finally {
    phase.trainer.dispose();
    reader.close();
    validReader.close();
  }

  const stats: TrainStats = {
    steps: step,
    tokens: tokensSeen,
    finalLoss: lastLoss,
    validLoss: validLoss ?? null,
    bestValidLoss: bestValidLoss ?? null,
    convertedAt: convertAt || null,
    peakFlops,
    medianTokensPerSecond: median(rates),
    medianMfu: median(mfus),
    seconds: (performance.now() - started) / 1000,
  };
  const manifest = await writeRunManifest(out, inputs, params, stats);
  return { runDir: out, skipped: false, manifest, losses };
}

async function writeRunManifest(out: string, inputs: InputRef[], params: Record<string, unknown>, stats: TrainStats): Promise<Manifest<TrainStats>> {
  const files: Record<string, FileEntry> = {};
  for (const name of [METRICS_FILE, 'config.json']) {
    const p = join(out, name);
    files[name] = { bytes: readFileSync(p).length, sha256: await hashFile(p) };
  }
  const hash = createHash('sha256');
  for (const name of Object.keys(files).sort()) hash.update(`${name}\0${files[name]!.sha256}\n`);
  const manifest: Manifest<TrainStats> = {
    kind: RUN_KIND,
    formatVersion: RUN_VERSION,
    tool: { name: 'lory', version: toolVersion() },
    createdAt: new Date().toISOString(),
    inputs,
    params,
    files,
    contentHash: hash.digest('hex'),
    stats,
  };
  const tmp = join(out, `manifest.json.tmp-${process.pid}`);
  writeFileSync(tmp, `${JSON.stringify(manifest, null, 2)}\n`);
  renameSync(tmp, join(out, 'manifest.json'));
  return manifest;
}

