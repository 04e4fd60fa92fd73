/**
 * bin/gpu-check: the one-command GPU check (issue 21 §6, docs/gpu.md "GPU check"). On a GPU machine,
 * within LORY_GPU_CHECK_SECONDS (default 570): builds the CUDA op library, runs the kernel check on
 * every op (kernels/cuda/gpu-run --quick), measures the cuBLAS bf16 GEMM peak (kernels/cuda/check
 * --gemm-peak), trains pipelines/gpu-check.yaml 30 steps on the CPU and with --device cuda in fp32 and
 * bf16 and compares every step's loss (./compare.ts), and times a 0.3B-shaped dense and Lory 8E step
 * (bench/gpu-step.ts). Without a usable GPU every GPU step says "no device: <reason>" and the CPU
 * steps still run. Logs and summary.json / summary.md in --out (default $OUT, else work/gpu-check).
 * Exit: 0 every step passed, 1 a step failed, 2 usage, 3 steps skipped (no device, or a feature this
 * lory lacks) and none failed.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse, stringify } from 'yaml';
import { InputError } from '../artifacts/errors.js';
import { PROJECT_ROOT } from '../artifacts/version.js';
import { writeAtomic } from '../bundle/parts.js';
import { buildCudaOps, findNvcc } from '../bundle/setup.js';
import { trainSection } from '../pipeline/schema.js';
import { BF16_TOLERANCE, BF16_VS_FP32_TOLERANCE, compareLosses, FP32_TOLERANCE, type LossComparison } from './compare.js';
import { EXIT_MEANING, exitCode, formatGoals, goals, gpuReadiness, summaryMarkdown, type BenchFigure, type Readiness, type StepRecord, type Summary } from './report.js';

export const PIPELINE = join(PROJECT_ROOT, 'pipelines', 'gpu-check.yaml');
/** The CPU bench's size: 1/16 of the 0.3B shapes (d 64, 2 layers, context 256): a second or two a step here. */
export const CPU_BENCH_SCALE = 0.0625;

interface Context {
  out: string;
  deadline: number;
  device: Readiness;
  steps: StepRecord[];
  losses: Record<string, number[]>;
  peakTflops: number | null;
  figures: BenchFigure[];
}

class StepFailure extends Error {}
/** A step that cannot run here for a reason other than the device (a feature this lory lacks, a prerequisite that failed). */
class StepSkip extends Error {
  constructor(readonly status: 'unsupported' | 'skipped', message: string) {
    super(message);
  }
}

function say(ctx: Pick<Context, 'out'>, line: string): void {
  process.stdout.write(`${line}\n`);
  appendFileSync(join(ctx.out, 'gpu-check.log'), `${line}\n`);
}

/** A step's second log beside its first: logs/<id>-<name>.txt. */
const beside = (log: string, name: string) => log.replace(/\.txt$/, `-${name}.txt`);

const secondsLeft = (ctx: Context) => Math.floor((ctx.deadline - Date.now()) / 1000);

interface ProcessResult {
  code: number;
  stdout: string;
  lastLine: string;
}

/** Runs a command under the time left (at most `cap` s), its stdout and stderr into `log`; a timeout fails the step. */
function runLogged(ctx: Context, log: string, cap: number, cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): ProcessResult {
  const limit = Math.min(cap, secondsLeft(ctx));
  if (limit < 5) throw new StepFailure(`out of time (LORY_GPU_CHECK_SECONDS) before ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: PROJECT_ROOT, encoding: 'utf8', env: { ...process.env, ...env }, timeout: limit * 1000, maxBuffer: 256 << 20 });
  const stdout = r.stdout ?? '';
  const stderr = r.stderr ?? '';
  writeFileSync(log, `$ ${cmd} ${args.join(' ')}\n${stdout}${stderr ? `\n--- stderr\n${stderr}` : ''}`);
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') throw new StepFailure(`timed out after ${limit} s (log: ${log})`);
  if (r.error) throw new StepFailure(`${cmd} did not start: ${r.error.message}`);
  const lastLine = `${stdout}\n${stderr}`.trim().split('\n').filter((l) => l.trim()).pop() ?? '';
  return { code: r.status ?? 1, stdout, lastLine };
}

const lory = (args: string[]): [string, string[]] => [process.execPath, [join(PROJECT_ROOT, 'bin', 'lory'), ...args]];

/** Runs one step: prints its title and verdict, records it; a GPU step without a device is not run. */
async function step(ctx: Context, id: string, title: string, kind: 'gpu' | 'cpu', body: (log: string) => Promise<string> | string): Promise<StepRecord> {
  say(ctx, `== ${title}`);
  const t0 = Date.now();
  const log = join(ctx.out, 'logs', `${id}.txt`);
  let status: StepRecord['status'] = 'passed';
  let detail: string;
  if (kind === 'gpu' && !ctx.device.ready) {
    status = 'no device';
    detail = ctx.device.reason;
  } else {
    try {
      detail = await body(log);
    } catch (error) {
      // Anything else thrown (a malformed log line, a file error) fails this step, not the whole check.
      status = error instanceof StepSkip ? error.status : 'failed';
      detail = error instanceof StepFailure || error instanceof StepSkip ? error.message : `unexpected error: ${(error as Error).message}`;
      if (!(error instanceof StepFailure || error instanceof StepSkip)) appendFileSync(log, `\n${(error as Error).stack ?? ''}\n`);
    }
  }
  say(ctx, `  ${status}: ${detail}`);
  const record: StepRecord = { id, title, kind, status, detail, seconds: (Date.now() - t0) / 1000, ...(existsSync(log) ? { log } : {}) };
  ctx.steps.push(record);
  return record;
}

const needs = (ctx: Context, ...ids: string[]) => {
  for (const id of ids) {
    const s = ctx.steps.find((x) => x.id === id);
    if (s?.status !== 'passed') throw new StepSkip('skipped', `needs step ${id} (${s?.status ?? 'not run'})`);
  }
};

function probeDevice(ctx: Context): Readiness {
  const log = join(ctx.out, 'logs', 'doctor.txt');
  let r: ProcessResult | undefined;
  try {
    r = runLogged(ctx, log, 120, ...lory(['doctor', '--json']));
    return gpuReadiness(JSON.parse(r.stdout));
  } catch (error) {
    const why = r ? `exit ${r.code}: ${r.lastLine}` : (error as Error).message;
    return { ready: false, reason: `lory doctor --json failed (${why}; log: ${log})` };
  }
}

/** The CUDA op library: cmake in the installed bundle (as install.sh does), else kernels/build.mjs; both rebuild only what changed. */
function buildOps(ctx: Context, log: string): string {
  const bundle = process.env.LORY_BUNDLE_HOME;
  if (bundle && resolve(bundle, 'lory') === resolve(PROJECT_ROOT)) {
    const nvcc = findNvcc();
    if (!nvcc) throw new StepFailure('no nvcc on PATH or in /usr/local/cuda*/bin');
    const built = buildCudaOps(bundle, nvcc);
    writeFileSync(log, built.detail);
    if (!built.ok) throw new StepFailure(built.detail.split('\n')[0]!);
  } else {
    const r = runLogged(ctx, log, 400, process.execPath, [join(PROJECT_ROOT, 'kernels', 'build.mjs'), '--if-stale', 'lory-ops']);
    if (r.code !== 0) throw new StepFailure(`kernels/build.mjs lory-ops exit ${r.code}: ${r.lastLine}`);
  }
  const doctor = JSON.parse(runLogged(ctx, beside(log, 'doctor'), 120, ...lory(['doctor', '--json'])).stdout) as { customOpLibraries?: Array<{ name: string; loads?: boolean; error?: string; path?: string }> };
  const lib = doctor.customOpLibraries?.find((l) => l.name === 'lory-ops-cuda');
  if (!lib?.loads) throw new StepFailure(`liblory_ops_cuda.so does not load: ${lib?.error ?? 'not reported by lory doctor'}`);
  return `loads (${lib.path})`;
}

function kernelCheck(ctx: Context, log: string): string {
  const seconds = Math.min(330, secondsLeft(ctx) - 5);
  const r = runLogged(ctx, log, seconds + 5, join(PROJECT_ROOT, 'kernels', 'cuda', 'gpu-run'), ['--quick'], { OUT: join(ctx.out, 'kernels'), LORY_GPU_RUN_SECONDS: String(seconds) });
  if (r.code !== 0) throw new StepFailure(`kernels/cuda/gpu-run --quick exit ${r.code}: ${r.lastLine}`);
  return `${r.lastLine}`;
}

/** Parses `tflops=` from `check --gemm-peak`'s line. */
export function parseGemmPeak(text: string): number | null {
  const m = /^gemm peak bfloat16 .*\btflops=([0-9.]+)/m.exec(text);
  return m ? Number(m[1]) : null;
}

function gemmPeak(ctx: Context, log: string): string {
  const r = runLogged(ctx, log, 180, join(PROJECT_ROOT, 'kernels', 'cuda', 'check'), ['--gemm-peak', '--gemm-size', '8192', '--repeats', '20']);
  const tflops = parseGemmPeak(r.stdout);
  if (r.code !== 0 || tflops === null) throw new StepFailure(`kernels/cuda/check --gemm-peak exit ${r.code}: ${r.lastLine}`);
  ctx.peakTflops = tflops;
  return r.stdout.trim().split('\n').pop()!;
}

function prepareData(ctx: Context, log: string): string {
  const data = join(ctx.out, 'data');
  const p = parse(readFileSync(PIPELINE, 'utf8')) as { tokenizer: { vocab_size: number }; batches: { seq_len: number; valid_fraction: number } };
  const a = runLogged(ctx, log, 120, ...lory(['prepare', join(PROJECT_ROOT, 'fixtures', 'corpus', 'train.jsonl'), '-o', join(data, 'tokens'), '--vocab-size', String(p.tokenizer.vocab_size)]));
  if (a.code !== 0) throw new StepFailure(`lory prepare exit ${a.code}: ${a.lastLine}`);
  const b = runLogged(ctx, beside(log, 'batches'), 120, ...lory(['build-batches', join(data, 'tokens'), '-o', join(data, 'batches'), '--strategy', 'random', '--seq-len', String(p.batches.seq_len), '--valid-fraction', String(p.batches.valid_fraction)]));
  if (b.code !== 0) throw new StepFailure(`lory build-batches exit ${b.code}: ${b.lastLine}`);
  return `${join(data, 'batches')} (vocabulary ${p.tokenizer.vocab_size}, sequences of ${p.batches.seq_len})`;
}

/** The pipeline file for a precision: gpu-check.yaml itself for fp32, a copy with train.precision set otherwise. */
function pipelineFor(ctx: Context, precision: 'fp32' | 'bf16'): string {
  if (precision === 'fp32') return PIPELINE;
  if (!('precision' in trainSection.shape)) throw new StepSkip('unsupported', "this lory's train: section has no precision (issue 21 §3 not built here)");
  const doc = parse(readFileSync(PIPELINE, 'utf8')) as { train: Record<string, unknown> };
  doc.train.precision = precision;
  const file = join(ctx.out, 'train', `gpu-check-${precision}.yaml`);
  mkdirSync(join(ctx.out, 'train'), { recursive: true });
  writeAtomic(file, stringify(doc));
  return file;
}

/** Step losses from `lory train --json`'s step events. */
export function stepLosses(jsonLines: string): number[] {
  return jsonLines
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { type?: string; loss?: number })
    .filter((e) => e.type === 'step')
    .map((e) => Number(e.loss));
}

function train(ctx: Context, log: string, device: 'cpu' | 'cuda', precision: 'fp32' | 'bf16'): number[] {
  const config = pipelineFor(ctx, precision);
  if (device === 'cuda' && !runLogged(ctx, beside(log, 'help'), 60, ...lory(['train', '--help'])).stdout.includes('--device')) {
    throw new StepSkip('unsupported', 'this lory train has no --device option (issue 21 §5 not built here)');
  }
  const name = `${device}-${precision}`;
  const args = ['train', join(ctx.out, 'data', 'batches'), '-o', join(ctx.out, 'train', name), '--config', config, '--json', ...(device === 'cuda' ? ['--device', 'cuda'] : [])];
  const r = runLogged(ctx, log, 180, ...lory(args));
  if (r.code !== 0) throw new StepFailure(`lory ${args.join(' ')} exit ${r.code}: ${r.lastLine}`);
  const losses = stepLosses(r.stdout);
  ctx.losses[name] = losses;
  writeFileSync(join(ctx.out, 'train', `${name}.losses.json`), `${JSON.stringify(losses)}\n`);
  return losses;
}

function judged(comparisons: Array<[string, LossComparison]>): string {
  const text = comparisons.map(([what, c]) => `${what}: ${c.summary}`).join('; ');
  if (comparisons.some(([, c]) => !c.ok)) throw new StepFailure(text);
  return text;
}

function cpuReference(ctx: Context, log: string, precision: 'fp32' | 'bf16'): string {
  needs(ctx, 'data');
  const losses = train(ctx, log, 'cpu', precision);
  if (losses.length === 0 || !losses.every(Number.isFinite)) throw new StepFailure(`${losses.length} step losses, not all finite`);
  const range = `${losses.length} steps, loss ${losses[0]!.toFixed(4)} → ${losses[losses.length - 1]!.toFixed(4)}`;
  if (precision === 'fp32') return range;
  return `${range}; ${judged([['vs CPU fp32', compareLosses(ctx.losses['cpu-fp32'] ?? [], losses, BF16_VS_FP32_TOLERANCE)]])}`;
}

function gpuRun(ctx: Context, log: string, precision: 'fp32' | 'bf16'): string {
  needs(ctx, 'data', 'cuda-ops', `train-cpu-${precision}`);
  const losses = train(ctx, log, 'cuda', precision);
  if (precision === 'fp32') return judged([['vs CPU fp32', compareLosses(ctx.losses['cpu-fp32']!, losses, FP32_TOLERANCE)]]);
  const against: Array<[string, LossComparison]> = [['vs CPU bf16', compareLosses(ctx.losses['cpu-bf16']!, losses, BF16_TOLERANCE)]];
  if (ctx.losses['cuda-fp32']) against.push(['vs GPU fp32', compareLosses(ctx.losses['cuda-fp32'], losses, BF16_VS_FP32_TOLERANCE)]);
  return judged(against);
}

type BenchArgs = { device: string; precision: 'fp32' | 'bf16'; extra: string[]; cap: number };

function bench(ctx: Context, log: string, o: BenchArgs): string {
  const lines: string[] = [];
  for (const model of ['dense', 'lory8'] as const) {
    const args = [join(PROJECT_ROOT, 'dist', 'bench', 'gpu-step.js'), '--model', model, '--device', o.device, '--precision', o.precision, ...o.extra, '--json'];
    if (ctx.peakTflops !== null && o.device !== 'cpu') args.push('--peak-tflops', String(ctx.peakTflops));
    const r = runLogged(ctx, beside(log, model), o.cap, process.execPath, args);
    if (r.code === 2 && /has no (device|precision)/.test(r.lastLine)) throw new StepSkip('unsupported', r.lastLine);
    if (r.code !== 0) throw new StepFailure(`bench/gpu-step ${model} exit ${r.code}: ${r.lastLine}`);
    const f = JSON.parse(r.stdout.trim().split('\n').pop()!) as BenchFigure;
    if (!(f.msPerStep > 0) || !(f.tokensPerSecond > 0)) throw new StepFailure(`bench/gpu-step ${model}: no timing (${r.lastLine})`);
    ctx.figures.push(f);
    lines.push(`${model} ${f.msPerStep.toFixed(1)} ms/step, ${f.tokensPerSecond.toFixed(0)} tokens/s${f.mfu === null ? '' : `, MFU ${(100 * f.mfu).toFixed(1)}%`}`);
  }
  return lines.join('; ');
}

function prepareOut(out: string): void {
  if (existsSync(out) && readdirSync(out).length > 0) {
    if (!existsSync(join(out, 'gpu-check.log'))) throw new InputError(`--out ${out}: exists and is not a gpu-check folder (no gpu-check.log): give a new or empty folder`);
    rmSync(out, { recursive: true, force: true }); // an earlier check's logs: replaced
  }
  mkdirSync(join(out, 'logs'), { recursive: true });
}

export function parseCheckArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): { out: string } {
  let out = env.OUT || join(process.cwd(), 'work', 'gpu-check');
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--out' && argv[i + 1]) out = argv[++i]!;
    else throw new InputError(`unknown argument ${a} (usage: bin/gpu-check [--out DIR]; default $OUT, else work/gpu-check)`);
  }
  return { out: resolve(out) };
}

async function runChecks(ctx: Context): Promise<void> {
  const gpuFigures = () => ctx.figures.filter((f) => f.device !== 'cpu');
  await step(ctx, 'cuda-ops', 'build the CUDA op library (liblory_ops_cuda.so) if needed', 'gpu', (log) => buildOps(ctx, log));
  await step(ctx, 'kernels', 'kernel check on every op (kernels/cuda/gpu-run --quick)', 'gpu', (log) => kernelCheck(ctx, log));
  await step(ctx, 'gemm-peak', 'cuBLAS bf16 GEMM peak, 8192³ on random data, median of 20', 'gpu', (log) => gemmPeak(ctx, log));
  await step(ctx, 'data', 'tokens and batches for pipelines/gpu-check.yaml', 'cpu', (log) => prepareData(ctx, log));
  await step(ctx, 'train-cpu-fp32', 'train pipelines/gpu-check.yaml 30 steps on the CPU, fp32 (the reference)', 'cpu', (log) => cpuReference(ctx, log, 'fp32'));
  await step(ctx, 'train-cuda-fp32', `the same with --device cuda, fp32 (TF32 off); every step's loss within ${FP32_TOLERANCE.formula} of the CPU's`, 'gpu', (log) => gpuRun(ctx, log, 'fp32'));
  await step(ctx, 'train-cpu-bf16', `the same on the CPU with train.precision: bf16 (emulated); within ${BF16_VS_FP32_TOLERANCE.formula} of fp32`, 'cpu', (log) => cpuReference(ctx, log, 'bf16'));
  await step(ctx, 'train-cuda-bf16', `--device cuda, bf16: within ${BF16_TOLERANCE.formula} of the CPU's bf16, ${BF16_VS_FP32_TOLERANCE.formula} of the GPU's fp32`, 'gpu', (log) => gpuRun(ctx, log, 'bf16'));
  await step(ctx, 'bench-cpu', `0.3B-shaped step at scale ${CPU_BENCH_SCALE} on the CPU, dense and Lory 8E (bench/gpu-step)`, 'cpu', (log) => bench(ctx, log, { device: 'cpu', precision: 'fp32', extra: ['--scale', String(CPU_BENCH_SCALE), '--steps', '3'], cap: 120 }));
  await step(ctx, 'bench-cuda', '0.3B step (context 4096, micro-batch 1, train.recompute), dense and Lory 8E, bf16, on the GPU', 'gpu', (log) => {
    needs(ctx, 'cuda-ops');
    const line = bench(ctx, log, { device: 'cuda', precision: 'bf16', extra: ['--seq', '4096', '--batch', '1', '--steps', '5'], cap: 200 });
    for (const g of formatGoals(goals(gpuFigures()))) say(ctx, `  ${g}`);
    return line;
  });
}

export async function main(argv: string[]): Promise<number> {
  let out: string;
  try {
    ({ out } = parseCheckArgs(argv));
    prepareOut(out);
  } catch (error) {
    if (!(error instanceof InputError)) throw error;
    process.stderr.write(`gpu-check: ${error.message}\n`);
    return 2;
  }
  const started = new Date();
  const budget = Number(process.env.LORY_GPU_CHECK_SECONDS ?? 570);
  const ctx: Context = { out, deadline: Date.now() + budget * 1000, device: { ready: false, reason: 'not probed' }, steps: [], losses: {}, peakTflops: null, figures: [] };
  say(ctx, `gpu-check: logs in ${out}; at most ${budget} s (LORY_GPU_CHECK_SECONDS); lory in ${PROJECT_ROOT}, node ${process.version} (${process.execPath})`);
  ctx.device = probeDevice(ctx);
  say(ctx, ctx.device.ready ? `device: ${ctx.device.reason}` : `no device: ${ctx.device.reason} (GPU steps are skipped; CPU steps run)`);
  await runChecks(ctx);
  const code = exitCode(ctx.steps);
  const gpu = ctx.figures.filter((f) => f.device !== 'cpu');
  const summary: Summary = { started: started.toISOString(), seconds: (Date.now() - started.getTime()) / 1000, out, device: ctx.device, exitCode: code, verdict: EXIT_MEANING[code], gemmPeakTflops: ctx.peakTflops, figures: ctx.figures, goals: goals(gpu), steps: ctx.steps };
  writeAtomic(join(out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  writeAtomic(join(out, 'summary.md'), summaryMarkdown(summary));
  say(ctx, `gpu-check: exit ${code} (${EXIT_MEANING[code]}); summary in ${join(out, 'summary.md')} and summary.json`);
  return code;
}

if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) process.exitCode = await main(process.argv.slice(2));
