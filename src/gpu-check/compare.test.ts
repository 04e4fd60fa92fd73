import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { benchModel, benchSettings, formatStepBench, parseBenchArgs, type StepBenchResult } from '../../bench/gpu-step.js';
import { trainSection } from '../pipeline/schema.js';
import { BF16_TOLERANCE, BF16_VS_FP32_TOLERANCE, compareLosses, FP32_TOLERANCE } from './compare.js';
import { parseGemmPeak, stepLosses } from './main.js';
import { exitCode, formatGoals, goals, gpuReadiness, type BenchFigure, type StepRecord } from './report.js';

// A real 30-step curve's shape (pipelines/gpu-check.yaml on the CPU): decreasing with noise.
const reference = Array.from({ length: 30 }, (_, i) => 6.26 - 0.03 * i + 0.05 * Math.sin(i * 1.7));

describe('gpu-check loss comparison', () => {
  it('accepts identical runs and runs within the bound at every step', () => {
    const same = compareLosses(reference, [...reference], FP32_TOLERANCE);
    assert.equal(same.ok, true);
    assert.equal(same.failures.length, 0);
    assert.equal(same.worst!.relative, 0);
    // Every step off by 90% of its own bound, alternating in sign: still accepted.
    const near = reference.map((r, i) => r * (1 + (i % 2 ? -0.9 : 0.9) * FP32_TOLERANCE.bound(i + 1)));
    const c = compareLosses(reference, near, FP32_TOLERANCE);
    assert.equal(c.ok, true, c.summary);
    assert.ok(c.worst!.relative / c.worst!.bound > 0.89 && c.worst!.relative / c.worst!.bound < 0.91);
  });

  it('rejects a run with one step perturbed beyond the bound, naming that step', () => {
    for (const step of [1, 17, 30]) {
      const bad = [...reference];
      bad[step - 1] = bad[step - 1]! * (1 + 1.5 * FP32_TOLERANCE.bound(step));
      const c = compareLosses(reference, bad, FP32_TOLERANCE);
      assert.equal(c.ok, false);
      assert.deepEqual(c.failures.map((f) => f.step), [step]);
      assert.match(c.summary, new RegExp(`FAILED at 1 of 30 steps; first at step ${step}:`));
    }
  });

  it('the bound grows with the step: a difference allowed at step 30 fails at step 1', () => {
    const rel = 5e-5; // above 2e-5 (step 1), below 2e-5·√30 ≈ 1.1e-4
    const at = (step: number) => reference.map((r, i) => (i === step - 1 ? r * (1 + rel) : r));
    assert.equal(compareLosses(reference, at(30), FP32_TOLERANCE).ok, true);
    assert.equal(compareLosses(reference, at(1), FP32_TOLERANCE).ok, false);
  });

  it('bf16 bounds are looser than fp32 and bf16-vs-fp32 looser still; each rejects what is beyond it', () => {
    for (const k of [1, 10, 30]) {
      assert.ok(BF16_TOLERANCE.bound(k) > 10 * FP32_TOLERANCE.bound(k));
      assert.ok(BF16_VS_FP32_TOLERANCE.bound(k) > BF16_TOLERANCE.bound(k));
    }
    const shifted = (rel: number) => reference.map((r) => r * (1 + rel));
    assert.equal(compareLosses(reference, shifted(5e-4), BF16_TOLERANCE).ok, true);
    assert.equal(compareLosses(reference, shifted(5e-4), FP32_TOLERANCE).ok, false);
    assert.equal(compareLosses(reference, shifted(1e-2), BF16_VS_FP32_TOLERANCE).ok, true);
    assert.equal(compareLosses(reference, shifted(3e-2), BF16_VS_FP32_TOLERANCE).ok, false);
  });

  it('rejects NaN losses, runs of different lengths and empty runs', () => {
    const nan = [...reference];
    nan[4] = NaN;
    assert.deepEqual(compareLosses(reference, nan, BF16_VS_FP32_TOLERANCE).failures.map((f) => f.step), [5]);
    const short = compareLosses(reference, reference.slice(0, 29), FP32_TOLERANCE);
    assert.equal(short.ok, false);
    assert.equal(short.problem, 'the runs have 30 and 29 steps');
    assert.equal(compareLosses([], [], FP32_TOLERANCE).ok, false);
  });
});

describe('gpu-check verdicts', () => {
  const rec = (status: StepRecord['status']): StepRecord => ({ id: status, title: '', kind: 'cpu', status, detail: '', seconds: 0 });

  it('exit code: 0 all passed, 1 any failure (even beside skips), 3 skips without failures', () => {
    assert.equal(exitCode([rec('passed'), rec('passed')]), 0);
    assert.equal(exitCode([rec('passed'), rec('failed'), rec('no device')]), 1);
    assert.equal(exitCode([rec('passed'), rec('no device')]), 3);
    assert.equal(exitCode([rec('passed'), rec('unsupported'), rec('skipped')]), 3);
  });

  it("GPU readiness from lory doctor --json: the driver's reason, then the provider's, else ready", () => {
    assert.deepEqual(gpuReadiness({ cuda: { deviceCount: 0, detail: 'no CUDA driver (libcuda.so.1 not found)' } }), { ready: false, reason: 'no CUDA driver (libcuda.so.1 not found)' });
    assert.equal(gpuReadiness({}).ready, false);
    const noProvider = gpuReadiness({ cuda: { deviceCount: 1, detail: 'H100' }, providers: [{ name: 'cuda', usable: false, detail: 'libcublasLt.so.13: cannot open' }] });
    assert.deepEqual(noProvider, { ready: false, reason: 'the CUDA execution provider does not load: libcublasLt.so.13: cannot open' });
    const ready = gpuReadiness({ cuda: { deviceCount: 1, detail: 'NVIDIA H100' }, providers: [{ name: 'cuda', usable: true }] });
    assert.deepEqual(ready, { ready: true, reason: '1 CUDA device(s): NVIDIA H100' });
  });

  it("goals: Lory 8E step over dense, dense MFU; 'not measured' without both", () => {
    const fig = (model: string, msPerStep: number, mfu: number | null): BenchFigure => ({ model, device: 'cuda', precision: 'bf16', seq: 4096, batch: 1, setupSeconds: 10, msPerStep, tokensPerSecond: 4096 / msPerStep, tflopPerStep: 1, mfu });
    const g = goals([fig('dense', 100, 0.45), fig('lory8', 130, 0.4)]);
    assert.equal(g.loryOverDense, 1.3);
    assert.equal(g.denseMfu, 0.45);
    assert.deepEqual(formatGoals(g), ['goal: Lory 8E step / dense step ≤ 1.2: 1.300 (not met)', 'goal: dense MFU ≥ 40% of the measured bf16 peak: 45.0% (met)']);
    assert.match(formatGoals(goals([fig('dense', 100, null)]))[0]!, /not measured$/);
  });

  it("parses the GEMM peak line and lory train's step losses", () => {
    assert.equal(parseGemmPeak('device: NVIDIA H100\ngemm peak bfloat16 n=8192 repeats=20 median_ms=1.6000 tflops=687.2 library=libcublas.so.13\n'), 687.2);
    assert.equal(parseGemmPeak('gemm peak: cublasGemmEx failed with status 13\n'), null);
    const events = ['{"type":"start"}', '{"type":"step","step":1,"loss":6.25}', 'not json', '{"type":"valid","loss":5}', '{"type":"step","step":2,"loss":6.1}'].join('\n');
    assert.deepEqual(stepLosses(events), [6.25, 6.1]);
  });
});

describe('bench/gpu-step', () => {
  it('takes the 0.3B shapes from the paper pipelines and scales every size', () => {
    const dense = benchModel('dense', 1);
    assert.deepEqual([dense.dModel, dense.nLayers, dense.nHeads, dense.dFf, dense.contextLength, dense.vocabSize, dense.experts], [1024, 24, 16, 2816, 4096, 32000, 1]);
    const lory = benchModel('lory8', 0.0625);
    assert.deepEqual([lory.dModel, lory.nLayers, lory.nHeads, lory.dFf, lory.contextLength, lory.segmentLength, lory.experts], [64, 2, 1, 176, 256, 16, 8]);
  });

  it('refuses bad arguments with the flag named', () => {
    assert.throws(() => parseBenchArgs(['--model', 'dense', '--device', 'gpu']), /--device: expected cpu, cuda or cuda:N, got 'gpu'/);
    assert.throws(() => parseBenchArgs(['--model', 'lory16']), /--model: expected dense or lory8/);
    assert.throws(() => parseBenchArgs(['--model', 'dense', '--scale', '2']), /--scale: expected a number in \(0, 1\]/);
    assert.throws(() => parseBenchArgs(['--model', 'dense', '--steps', '1.5']), /--steps: expected a positive integer/);
    const o = parseBenchArgs(['--model', 'lory8', '--device', 'cuda:1', '--precision', 'bf16', '--no-recompute', '--seq', '4096']);
    assert.deepEqual([o.device, o.precision, o.recompute, o.seq, o.batch, o.steps], ['cuda:1', 'bf16', false, 4096, 1, 5]);
  });

  it("passes precision and device through train: settings, or says this lory lacks them", () => {
    const fp32 = benchSettings({ batch: 2, recompute: true, device: 'cpu', precision: 'fp32' });
    assert.deepEqual([fp32.micro_batch, fp32.recompute], [2, true]);
    for (const [field, o] of [['precision', { device: 'cpu', precision: 'bf16' }], ['device', { device: 'cuda', precision: 'fp32' }]] as const) {
      if (field in trainSection.shape) assert.equal((benchSettings({ batch: 1, recompute: false, ...o }) as unknown as Record<string, unknown>)[field], o[field]);
      else assert.throws(() => benchSettings({ batch: 1, recompute: false, ...o }), new RegExp(`train: section has no ${field}`));
    }
  });

  it('formats one key=value line', () => {
    const r: StepBenchResult = { model: 'dense', device: 'cpu', precision: 'fp32', dModel: 64, nLayers: 2, nHeads: 1, dFf: 176, experts: 1, seq: 256, batch: 1, recompute: true, steps: 3, setupSeconds: 1.26, msPerStep: 12.345, tokensPerSecond: 20736.9, tflopPerStep: 0.00045, mfu: null, losses: [] };
    assert.equal(formatStepBench(r), 'gpu-step model=dense device=cpu precision=fp32 d=64 layers=2 heads=1 f=176 experts=1 seq=256 batch=1 recompute=true steps=3 setup_s=1.3 ms_per_step=12.35 tokens_per_s=20737 tflop_per_step=0.0004500 mfu=n/a');
  });
});
