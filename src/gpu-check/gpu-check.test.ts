import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PROJECT_ROOT } from '../artifacts/version.js';
import { trainSection } from '../pipeline/schema.js';
import type { Summary } from './report.js';

const root = mkdtempSync(join(tmpdir(), 'lory-gpu-check-test-'));
const gpuCheck = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(join(PROJECT_ROOT, 'bin', 'gpu-check'), args, { cwd: root, encoding: 'utf8', env: { ...process.env, OUT: '', ...env }, timeout: 120_000 });

const GPU_STEPS = ['cuda-ops', 'kernels', 'gemm-peak', 'train-cuda-fp32', 'train-cuda-bf16', 'bench-cuda'];

describe('bin/gpu-check on a machine without a GPU', () => {
  it('skips every GPU step with "no device: <reason>", runs the CPU steps for real, exits 3', (t) => {
    const out = join(root, 'check');
    const r = gpuCheck([], { OUT: out });
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as Summary;
    if (summary.device.ready) return t.skip('a usable GPU is here: this test is about the no-device path');
    assert.equal(r.status, 3, r.stdout + r.stderr);
    assert.equal(summary.exitCode, 3);
    // The reason is the driver's, as lory doctor reports it, on the device line and under every GPU step.
    const doctor = JSON.parse(spawnSync(process.execPath, [join(PROJECT_ROOT, 'bin', 'lory'), 'doctor', '--json'], { encoding: 'utf8' }).stdout) as { cuda: { detail: string } };
    assert.equal(summary.device.reason, doctor.cuda.detail);
    const byId = new Map(summary.steps.map((s) => [s.id, s]));
    for (const id of GPU_STEPS) {
      assert.equal(byId.get(id)?.status, 'no device', id);
      assert.equal(byId.get(id)?.detail, doctor.cuda.detail, id);
    }
    const noDeviceLines = r.stdout.split('\n').filter((l) => l === `  no device: ${doctor.cuda.detail}`);
    assert.equal(noDeviceLines.length, GPU_STEPS.length);

    // CPU parts: real data, a real 30-step training curve, real bench timings.
    for (const id of ['data', 'train-cpu-fp32', 'bench-cpu']) assert.equal(byId.get(id)?.status, 'passed', `${id}: ${byId.get(id)?.detail}`);
    const losses = JSON.parse(readFileSync(join(out, 'train', 'cpu-fp32.losses.json'), 'utf8')) as number[];
    assert.equal(losses.length, 30);
    assert.ok(losses.every((l) => Number.isFinite(l) && l > 0 && l < Math.log(512) + 1), losses.join());
    assert.ok(losses[29]! < losses[0]!, 'the loss falls over 30 steps');
    const bf16 = byId.get('train-cpu-bf16')!;
    if ('precision' in trainSection.shape) assert.equal(bf16.status, 'passed', bf16.detail);
    else assert.deepEqual([bf16.status, bf16.detail], ['unsupported', "this lory's train: section has no precision (issue 21 §3 not built here)"]);

    // The CPU bench: one line per model that parses, with the 1/16-scale shapes.
    assert.deepEqual(summary.figures.map((f) => [f.model, f.device, f.seq, f.batch]), [['dense', 'cpu', 256, 1], ['lory8', 'cpu', 256, 1]]);
    for (const f of summary.figures) {
      assert.ok(f.msPerStep > 0 && Math.abs(f.tokensPerSecond - (f.seq * f.batch * 1000) / f.msPerStep) < 1e-6 * f.tokensPerSecond);
      assert.equal(f.mfu, null);
    }
    assert.deepEqual(summary.goals, { loryOverDense: null, denseMfu: null });

    // Logs and the markdown table.
    const md = readFileSync(join(out, 'summary.md'), 'utf8');
    assert.match(md, /^GPU check of .* exit 3, no step failed; some were skipped/);
    for (const id of GPU_STEPS) assert.ok(md.includes(`| ${id} | no device |`), id);
    for (const model of ['dense', 'lory8']) assert.match(md, new RegExp(`\\| ${model} \\| cpu \\| fp32 \\| 256 × 1 \\| [0-9.]+ \\| [0-9.]+ \\| [0-9]+ \\| [0-9.e-]+ \\| n/a \\|`));
    assert.match(md, /\| train-cpu-fp32 \| passed \| [0-9.]+ \| 30 steps, loss [0-9.]+ → [0-9.]+ \|/);
    assert.ok(readFileSync(join(out, 'gpu-check.log'), 'utf8').includes(r.stdout.trim().split('\n')[0]!));
    assert.match(readFileSync(join(out, 'logs', 'train-cpu-fp32.txt'), 'utf8'), /"type":"step","step":30/);
  });

  it('refuses unknown arguments and an --out folder that is not a gpu-check one, touching nothing (exit 2)', () => {
    const bad = gpuCheck(['--bogus']);
    assert.equal(bad.status, 2);
    assert.equal(bad.stderr, 'gpu-check: unknown argument --bogus (usage: bin/gpu-check [--out DIR]; default $OUT, else work/gpu-check)\n');
    const other = join(root, 'precious');
    mkdirSync(other);
    writeFileSync(join(other, 'keep.txt'), 'data');
    const r = gpuCheck(['--out', other]);
    assert.equal(r.status, 2);
    assert.equal(r.stderr, `gpu-check: --out ${other}: exists and is not a gpu-check folder (no gpu-check.log): give a new or empty folder\n`);
    assert.equal(readFileSync(join(other, 'keep.txt'), 'utf8'), 'data');
  });
});
