/**
 * bin/gpu-check's verdicts: whether a GPU is usable (from `lory doctor --json`), each step's record,
 * the exit code, and the summary (JSON, and a markdown table to paste into docs/gpu.md).
 */

export type StepStatus = 'passed' | 'failed' | 'no device' | 'unsupported' | 'skipped';

export interface StepRecord {
  id: string;
  title: string;
  /** gpu: skipped without a usable device; cpu: runs everywhere. */
  kind: 'gpu' | 'cpu';
  status: StepStatus;
  detail: string;
  seconds: number;
  log?: string;
  data?: unknown;
}

export interface Readiness {
  ready: boolean;
  /** Why not (no driver, no device, provider missing), or what was found. */
  reason: string;
}

/** The parts of `lory doctor --json` read here. */
interface DoctorReport {
  cuda?: { deviceCount?: number; detail?: string };
  providers?: Array<{ name: string; usable?: boolean; detail?: string }>;
}

/** A GPU is usable when the driver sees a device and ONNX Runtime's CUDA provider loads (the custom-op library is built later). */
export function gpuReadiness(report: DoctorReport): Readiness {
  const cuda = report.cuda;
  if (!cuda || !(Number(cuda.deviceCount) > 0)) return { ready: false, reason: cuda?.detail ?? 'lory doctor reports no CUDA device' };
  const provider = report.providers?.find((p) => p.name === 'cuda');
  if (!provider?.usable) return { ready: false, reason: `the CUDA execution provider does not load: ${provider?.detail ?? 'not reported by lory doctor'}` };
  return { ready: true, reason: `${cuda.deviceCount} CUDA device(s): ${cuda.detail ?? ''}`.trim() };
}

/** 0 every step passed; 1 a step failed; 3 nothing failed but steps were skipped (no device, or a feature this lory lacks). */
export function exitCode(steps: readonly StepRecord[]): 0 | 1 | 3 {
  if (steps.some((s) => s.status === 'failed')) return 1;
  return steps.every((s) => s.status === 'passed') ? 0 : 3;
}

export const EXIT_MEANING = { 0: 'every step passed', 1: 'a step failed', 3: 'no step failed; some were skipped (no device, or a feature this lory lacks)' } as const;

/** The step-timing figures the GPU bench step records (one per model). */
export interface BenchFigure {
  model: string;
  device: string;
  precision: string;
  seq: number;
  batch: number;
  setupSeconds: number;
  msPerStep: number;
  tokensPerSecond: number;
  tflopPerStep: number;
  mfu: number | null;
}

export interface Goals {
  /** Lory 8E step time over the dense step's (goal ≤ 1.2). */
  loryOverDense: number | null;
  /** Dense MFU over the measured bf16 peak (goal ≥ 0.4). */
  denseMfu: number | null;
}

/** The issue's two performance goals as ratios, from the figures measured (goals, not pass/fail). */
export function goals(figures: readonly BenchFigure[]): Goals {
  const dense = figures.find((f) => f.model === 'dense');
  const lory = figures.find((f) => f.model === 'lory8');
  return { loryOverDense: dense && lory ? lory.msPerStep / dense.msPerStep : null, denseMfu: dense?.mfu ?? null };
}

export function formatGoals(g: Goals): string[] {
  const verdict = (v: number | null, shown: string, met: boolean) => (v === null ? 'not measured' : `${shown} (${met ? 'met' : 'not met'})`);
  return [
    `goal: Lory 8E step / dense step ≤ 1.2: ${verdict(g.loryOverDense, (g.loryOverDense ?? 0).toFixed(3), (g.loryOverDense ?? 0) <= 1.2)}`,
    `goal: dense MFU ≥ 40% of the measured bf16 peak: ${verdict(g.denseMfu, `${(100 * (g.denseMfu ?? 0)).toFixed(1)}%`, (g.denseMfu ?? 0) >= 0.4)}`,
  ];
}

export interface Summary {
  started: string;
  seconds: number;
  out: string;
  device: Readiness;
  exitCode: 0 | 1 | 3;
  verdict: string;
  gemmPeakTflops: number | null;
  figures: BenchFigure[];
  goals: Goals;
  steps: StepRecord[];
}

const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** The summary as markdown: the steps table, then the timings and goals when measured. */
export function summaryMarkdown(s: Summary): string {
  const lines = [
    `GPU check of ${s.started} (${s.seconds.toFixed(0)} s): exit ${s.exitCode}, ${s.verdict}. Device: ${s.device.ready ? s.device.reason : `none (${s.device.reason})`}.`,
    '',
    '| step | result | seconds | detail |',
    '| --- | --- | --- | --- |',
    ...s.steps.map((x) => `| ${x.id} | ${x.status} | ${x.seconds.toFixed(1)} | ${cell(x.detail)} |`),
  ];
  if (s.figures.length > 0) {
    lines.push('', `bf16 GEMM peak (cuBLAS, measured in this run): ${s.gemmPeakTflops === null ? 'not measured' : `${s.gemmPeakTflops.toFixed(1)} TFLOP/s`}`, '');
    lines.push('| model | device | precision | seq × batch | setup s | ms/step | tokens/s | TFLOP/step | MFU |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const f of s.figures) {
      lines.push(`| ${f.model} | ${f.device} | ${f.precision} | ${f.seq} × ${f.batch} | ${f.setupSeconds.toFixed(1)} | ${f.msPerStep.toFixed(1)} | ${f.tokensPerSecond.toFixed(0)} | ${f.tflopPerStep.toPrecision(4)} | ${f.mfu === null ? 'n/a' : `${(100 * f.mfu).toFixed(1)}%`} |`);
    }
    lines.push('', ...formatGoals(s.goals).map((g) => `- ${g}`));
  }
  return `${lines.join('\n')}\n`;
}
