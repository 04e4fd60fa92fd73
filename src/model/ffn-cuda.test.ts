/**
 * The CUDA ops (kernels/cuda: the merged-expert FFN's plain and training pairs, AdamWUpdate) on a machine
 * without a GPU: the FFN's host-side scratch planner, its orchestration of the passes (both pairs) run
 * against a host backend (everything but the kernels' insides), the check program's CPU mode (every
 * precision within its bound, injected errors caught in every output of every precision and op, two runs
 * bit-identical), the GPU-run script's time limit and sanitizer verdicts (against stand-in sanitizers),
 * and, where nvcc exists, that the CUDA sources were compiled by the native build (npm ci / bin/setup)
 * for sm_90 and are reused, not rebuilt, that the CUDA library's op registrations agree with the CPU
 * ops', where the dense baseline looks for cuBLAS, and that the GPU check passes where a device exists
 * and says there is none where it does not.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import * as G from '../graph/index.js';
import { loadModel } from '../graph/testing/execute.js';
import { PROJECT_ROOT } from '../runtime/index.js';
import { parseGemmPeak } from '../gpu-check/main.js';
import { moeFfn } from './moe.js';

const BUILD = join(PROJECT_ROOT, 'kernels', 'build', 'lory-ops');
const CHECK = join(PROJECT_ROOT, 'kernels', 'cuda', 'check');
const GPU_RUN = join(PROJECT_ROOT, 'kernels', 'cuda', 'gpu-run');
const skip = !existsSync(join(BUILD, 'moe_cuda_plan_test')) && 'the native build (kernels/build/lory-ops) is missing';

function run(cmd: string, ...args: string[]) {
  return spawnSync(cmd, args, { encoding: 'utf8', cwd: PROJECT_ROOT, timeout: 300_000 });
}

function runWith(env: Record<string, string>, cmd: string, ...args: string[]) {
  return spawnSync(cmd, args, { encoding: 'utf8', cwd: PROJECT_ROOT, timeout: 300_000, env: { ...process.env, ...env } });
}

// An executable shell script at dir/name.
function script(dir: string, name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/usr/bin/env bash\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

// Where kernels/cuda/check and the CMake build look for nvcc.
function findNvcc(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) if (dir && existsSync(join(dir, 'nvcc'))) return join(dir, 'nvcc');
  const versioned = existsSync('/usr/local')
    ? readdirSync('/usr/local').filter((n) => n.startsWith('cuda-')).map((n) => `/usr/local/${n}/bin/nvcc`)
    : [];
  return ['/usr/local/cuda/bin/nvcc', ...versioned].find((p) => existsSync(p));
}

// Whether this process can see an NVIDIA GPU, judged without the check program: the driver's device
// nodes exist and CUDA_VISIBLE_DEVICES does not hide them all.
function hasCudaDevice(): boolean {
  const visible = process.env.CUDA_VISIBLE_DEVICES;
  if (visible !== undefined && (visible.trim() === '' || visible.trim() === '-1')) return false;
  return existsSync('/dev') && readdirSync('/dev').some((n) => /^nvidia\d+$/.test(n));
}

interface Row {
  shape: string;
  op: string;
  dtype: string;
  ab: string;
  bound: string;
  verdict: string;
  bits: string;
}

// FFN rows of the check program: shape, kernel, op, dtype, ref, e32, 7 error columns (ab last), bound,
// bits, 9 timing columns, verdict.
function rows(stdout: string): Row[] {
  return stdout
    .split('\n')
    .filter((l) => /^\d+,\d+,\d+,\d+,\d+\s/.test(l))
    .map((l) => {
      const f = l.trim().split(/\s+/);
      return { shape: f[0]!, op: f[2]!, dtype: f[3]!, ab: f[12]!, bound: f[13]!, bits: f[14]!, verdict: f.slice(24).join(' ') };
    });
}

interface AdamWRow {
  n: number;
  errors: number[];
  bound: string;
  bits: string;
  cpuBits: string;
  verdict: string;
}

// AdamWUpdate rows: op, n, offset, hyper, p', m', v', bound, bits, cpu, ms, GB/s, verdict.
function adamwRows(stdout: string): AdamWRow[] {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('AdamWUpdate '))
    .map((l) => {
      const f = l.trim().split(/\s+/);
      return { n: Number(f[1]), errors: f.slice(4, 7).map(Number), bound: f[7]!, bits: f[8]!, cpuBits: f[9]!, verdict: f.slice(12).join(' ') };
    });
}

// One bound per precision and op for every output, chunked or not (kernels/cuda/check_main.cpp): 4u for
// 16-bit types, 6u for the training pair's (its ab is rounded to the type before the backward reads it).
const BOUND: Record<string, Record<string, string>> = {
  plain: { float32: '1.0e-05', float16: '2.0e-03', bfloat16: '1.6e-02' },
  train: { float32: '1.0e-05', float16: '2.9e-03', bfloat16: '2.3e-02' },
};
const ALL_OUTPUTS: Record<string, string> = { plain: 'y,dx,de,dW_gate,dW_up,dW_down', train: 'y,dx,de,dW_gate,dW_up,dW_down,ab' };

describe('the CUDA kernel\'s host-side checks', { skip }, () => {
  it('plans chunks that cover every segment once and keep scratch within the budget, paper scale included', () => {
    const r = run(join(BUILD, 'moe_cuda_plan_test'));
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /ok {3}paper scale: forward 42\.9 GB -> 254\.0 MiB, backward 77\.3 GB -> 255\.9 MiB \+ 384\.0 MiB float32 dW state/);
    assert.match(r.stdout, /ok {3}paper scale bf16: float32 dW state across its 98 chunks/);
  });

  it('runs the GPU orchestration (chunks, jobs, dW modes, de partials) against a host backend within the float64 bounds', () => {
    const r = run(join(BUILD, 'moe_cuda_orchestrate_test'));
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /ok {3}bfloat16 across chunks with the float32 dW accumulator, down to one segment per chunk and 64 chunks/);
    assert.match(r.stdout, /ok {3}1 KiB budget, 64 chunks G,T,d,f,E=64,4,24,40,4 bfloat16: 32 fwd \/ 64 bwd chunks, float32 dW accumulator/);
    for (const dim of ['T', 'd', 'f', 'E', 'G'])
      for (const dtype of ['float32', 'bfloat16'])
        assert.match(r.stdout, new RegExp(`ok {3}${dim} = 0 G,T,d,f,E=[0-9,]+ ${dtype}:`), `${dim} = 0, ${dtype}`);
    // The group kernel (LORY_CUDA_MOE_KERNEL=group): its split into groups of 4 segments, partial last
    // groups, one segment per chunk; E > 64 and float32 fall back to the tile path.
    assert.match(r.stdout, /ok {3}segment groups: G = 1…41 in groups of 1…8 cover every segment once/);
    for (const row of ['\\[group\\] one partial group', '\\[group\\] G = 13: 3 groups \\+ 1', '\\[group\\] 1 KiB budget, 64 chunks',
      '\\[group → tile\\] E = 65', '\\[group\\] E = 64', '\\[group → tile\\] float32'])
      assert.match(r.stdout, new RegExp(`ok {3}${row} `), row);
    // The shared weight-gradient path (LORY_CUDA_MOE_WGRAD=shared): its row passes, which products it
    // takes, the warp-per-output de order, and every pass width; E > 32 and float32 fall back to tile.
    assert.match(r.stdout, /ok {3}shared wgrad: 64\/32\/16-row passes for E ≤ 8\/16\/32, none past 32/);
    assert.match(r.stdout, /ok {3}shared wgrad takes 16-bit E ≤ 32 with A transposed and plain B/);
    assert.match(r.stdout, /ok {3}de by one warp per output: every tile's partial counted once/);
    for (const row of ['\\[wgrad shared\\] 64 KiB budget', '\\[wgrad shared\\] E = 12, partial passes', '\\[wgrad shared\\] E = 20: 16-row passes',
      '\\[wgrad shared\\] E = 32', '\\[wgrad shared → tile\\] E = 33', '\\[wgrad shared\\] 1 KiB budget, 64 chunks',
      '\\[group\\] \\[wgrad shared\\] 96 KiB budget', '\\[wgrad shared → tile\\] float32'])
      assert.match(r.stdout, new RegExp(`ok {3}${row} `), row);
    assert.doesNotMatch(r.stdout, /FAIL/);
  });

  it('runs the training pair\'s orchestration (a, b saved by the forward, read by the backward) within the float64 bounds', () => {
    const r = run(join(BUILD, 'moe_cuda_orchestrate_test'));
    assert.equal(r.status, 0, r.stdout + r.stderr);
    // Every case runs both pairs: as many [train] lines as plain ones, and the backward's first GEMM
    // computes only dh (the host backend counts the merged products: a wrong count fails the line).
    const lines = r.stdout.split('\n').filter((l) => / G,T,d,f,E=/.test(l));
    const train = lines.filter((l) => l.includes('[train] '));
    assert.ok(train.length > 20 && train.length * 2 === lines.length, r.stdout);
    // float32: a, b are saved exactly, so the pair gives the plain pair's bits.
    for (const l of train.filter((t) => / float32:/.test(t))) assert.match(l, /^ok {3}.*, bits of the plain pair$/, l);
    assert.match(r.stdout, /ok {3}\[train\] 1 KiB budget, 64 chunks G,T,d,f,E=64,4,24,40,4 bfloat16: 32 fwd \/ 64 bwd chunks, float32 dW accumulator/);
    assert.match(r.stdout, /ok {3}\[group\] \[train\] G = 13: 3 groups \+ 1 /);
    for (const dim of ['T', 'd', 'f', 'E', 'G'])
      for (const dtype of ['float32', 'bfloat16'])
        assert.match(r.stdout, new RegExp(`ok {3}\\[train\\] ${dim} = 0 G,T,d,f,E=[0-9,]+ ${dtype}:`), `${dim} = 0, ${dtype}`);
  });

  it('passes the check program in CPU mode for float32, float16 and bfloat16, both pairs, with identical bits on two runs', () => {
    const r = run(CHECK, '--cpu-only', '--quick');
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const got = rows(r.stdout);
    assert.deepEqual([...new Set(got.map((g) => g.dtype))].sort(), ['bfloat16', 'float16', 'float32']);
    assert.equal(got.length, 12, r.stdout);
    for (const op of ['plain', 'train']) assert.equal(got.filter((g) => g.op === op).length, 6, `${op} rows`);
    for (const g of got) {
      assert.match(g.verdict, /^ok/, JSON.stringify(g));
      assert.equal(g.bits, 'same');
      assert.equal(g.bound, BOUND[g.op]![g.dtype], `${g.shape} ${g.op} ${g.dtype}: no bound widened by the chunk count`);
      // The training pair's ab is checked against its float64 reference; a plain row has none.
      if (g.op === 'train') assert.ok(Number(g.ab) <= Number(g.bound), JSON.stringify(g));
      else assert.equal(g.ab, '-');
    }
    for (const dtype of ['float16', 'bfloat16'])
      assert.ok(
        got.some((g) => g.dtype === dtype && /\[(\d+) bwd chunks, float32 dW state\]/.test(g.verdict) && Number(/\[(\d+)/.exec(g.verdict)![1]) >= 16),
        `a ${dtype} case with ≥ 16 backward chunks and float32 dW state runs`,
      );
  });

  it('runs exactly the shapes --shape names, and refuses one not in its table or needing a GPU', () => {
    const r = run(CHECK, '--cpu-only', '--shape', '2,300,24,40,3', '--shape', '2,5,16,24,65');
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.deepEqual(rows(r.stdout).map((g) => `${g.shape} ${g.op} ${g.dtype}`), [
      '2,300,24,40,3 plain float32', '2,300,24,40,3 train float32', '2,300,24,40,3 plain float16',
      '2,300,24,40,3 train float16', '2,300,24,40,3 plain bfloat16', '2,300,24,40,3 train bfloat16',
      '2,5,16,24,65 plain float32', '2,5,16,24,65 train float32', '2,5,16,24,65 plain float16',
      '2,5,16,24,65 train float16', '2,5,16,24,65 plain bfloat16', '2,5,16,24,65 train bfloat16',
    ]);
    const unknown = run(CHECK, '--cpu-only', '--shape', '1,2,3,4,5');
    assert.equal(unknown.status, 2);
    assert.equal(unknown.stderr, "--shape '1,2,3,4,5': not a shape of the check's table (kernels/cuda/check_main.cpp)\n");
    const gpuOnly = run(CHECK, '--cpu-only', '--shape', '2,0,8,8,2');
    assert.equal(gpuOnly.status, 2);
    assert.equal(gpuOnly.stderr, "--shape '2,0,8,8,2': runs on a GPU only\n");
  });

  it('catches an injected error in every output of every precision and op, AdamWUpdate\'s included', () => {
    const r = run(CHECK, '--cpu-only', '--quick', '--inject-error');
    assert.equal(r.status, 1, 'a wrong result must fail the check');
    const got = rows(r.stdout);
    assert.equal(got.length, 12, r.stdout);
    for (const g of got) assert.equal(g.verdict.split(' ').slice(0, 2).join(' '), `FAIL (${ALL_OUTPUTS[g.op]})`, `${g.op} ${g.dtype}: ${g.verdict}`);
    const adamw = adamwRows(r.stdout);
    assert.equal(adamw.length, 6, r.stdout);
    for (const a of adamw) assert.equal(a.verdict, a.n === 0 ? 'ok' : 'FAIL (p,m,v)', JSON.stringify(a));
    assert.match(r.stdout, /injected errors caught in every output: 18 of 18 rows/);
  });

  it('checks AdamWUpdate against its float64 reference, empty, tail-only, vector + tail and unaligned', () => {
    const r = run(CHECK, '--cpu-only', '--quick');
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const adamw = adamwRows(r.stdout);
    assert.deepEqual(adamw.map((a) => a.n), [0, 1, 7, 197842, 197842, 1048579]);
    for (const a of adamw) {
      assert.equal(a.verdict, 'ok', JSON.stringify(a));
      assert.equal(a.bound, '1.0e-06');
      assert.ok(a.errors.every((e) => e <= 1e-6), JSON.stringify(a));
      assert.equal(a.bits, 'same');
      assert.equal(a.cpuBits, 'same');
    }
    assert.ok(adamw.some((a) => a.errors[0]! > 0), 'the p\' errors are measured, not zero');
  });

  it('catches an error confined to the smallest of 4 segment scales, and to a segment past grid.z\'s 65535', () => {
    // (40,33,96,160,8): segments at 1, 1/2, 1/4, 1/8 scale; the injection (3x the bound, relative to the
    // smallest segment) is 3/8 of the bound relative to the whole output, so only a per-segment metric sees it.
    // (65537,2,16,16,2): segments 8 … 65528 are exactly zero; the injection lands in one of them.
    // Rows: 3 precisions × both pairs (the plain one only at G = 65537), and the 6 AdamWUpdate rows.
    for (const [shape, n] of [['40,33,96,160,8', 12], ['65537,2,16,16,2', 9]] as const) {
      const r = run(CHECK, '--cpu-only', '--shape', shape, '--inject-error');
      assert.equal(r.status, 1, r.stdout + r.stderr);
      assert.match(r.stdout, new RegExp(`injected errors caught in every output: ${n} of ${n} rows`), r.stdout);
      const clean = run(CHECK, '--cpu-only', '--shape', shape);
      assert.equal(clean.status, 0, clean.stdout + clean.stderr);
    }
  });

  describe('kernels/cuda/gpu-run --sanitize, against stand-in sanitizers', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lory-gpu-run-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const args = join(dir, 'args.txt');
    const sanitizers = {
      clean: script(dir, 'clean', `echo "$@" >> ${args}\necho "all within bounds"\necho "========= ERROR SUMMARY: 0 errors"`),
      refuses: script(dir, 'refuses', 'echo "========= Error: Device not supported"\nexit 1'),
      // A clean summary without the program's own verdict, and its exit code 2 (no device): not a pass.
      noRun: script(dir, 'no-run', 'echo "no CUDA device: run with --cpu-only"\necho "========= ERROR SUMMARY: 0 errors"\nexit 2'),
      hazards: script(dir, 'hazards', 'echo "all within bounds"\necho "========= RACECHECK SUMMARY: 2 hazards displayed"\nexit 10'),
      slow: script(dir, 'slow', 'exec sleep 60'),
    };
    const gpuRun = (sanitizer: string, seconds = '540') =>
      runWith({ LORY_SANITIZER: sanitizer, LORY_GPU_RUN_SECONDS: seconds, OUT: join(dir, 'out') }, GPU_RUN, '--sanitize');

    it('passes a clean run of both tools over the explicit shape list (d=17, E=12, T>128, T>256, E>64, empty dimensions)', () => {
      const r = gpuRun(sanitizers.clean);
      assert.equal(r.status, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /gpu-run: sanitizer checks passed/);
      const calls = readFileSync(args, 'utf8').trim().split('\n');
      assert.deepEqual(calls.map((c) => c.split(' ').slice(0, 4).join(' ')), ['--tool racecheck --error-exitcode 10', '--tool memcheck --error-exitcode 10']);
      const shapes = [...calls[0]!.matchAll(/--shape (\S+)/g)].map((m) => m[1]);
      for (const s of ['1,13,17,29,1', '2,13,17,29,12', '2,130,24,40,3', '2,300,24,40,3', '2,5,16,24,65', '2,0,8,8,2', '2,3,8,8,0'])
        assert.ok(shapes.includes(s), `${s} is sanitized (${shapes.join(' ')})`);
      rmSync(args);
    });

    it('reports a host that refuses the sanitizer as unavailable (exit 3), not as a kernel defect', () => {
      const r = gpuRun(sanitizers.refuses);
      assert.equal(r.status, 3, r.stdout + r.stderr);
      assert.match(r.stderr, /gpu-run: sanitizer unavailable: racecheck: ========= Error: Device not supported \(not a kernel defect/);
    });

    it('fails on the sanitizer\'s or the program\'s exit code even under a clean summary line', () => {
      const noRun = gpuRun(sanitizers.noRun);
      assert.equal(noRun.status, 1);
      assert.match(noRun.stderr, /gpu-run: racecheck: exit 2 /);
      const hazards = gpuRun(sanitizers.hazards);
      assert.equal(hazards.status, 1);
      assert.match(hazards.stderr, /gpu-run: racecheck: exit 10 \(10: the sanitizer found errors/);
    });

    it('stays within LORY_GPU_RUN_SECONDS (default 540) whatever a step would take', () => {
      const start = Date.now();
      const r = gpuRun(sanitizers.slow, '6');
      assert.equal(r.status, 1);
      assert.match(r.stderr, /gpu-run: compute-sanitizer --tool racecheck .* timed out after [1-6]s/);
      assert.ok(Date.now() - start < 15_000, `took ${Date.now() - start} ms`);
      assert.match(readFileSync(GPU_RUN, 'utf8'), /deadline=\$\(\(SECONDS \+ \$\{LORY_GPU_RUN_SECONDS:-540\}\)\)/);
    });
  });

  it('rejects an unknown kernel or weight-gradient path name with exit code 2', () => {
    const r = run(CHECK, '--cpu-only', '--kernel', 'fastest');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--kernel 'fastest': expected tile, segment, group, group-wide, both \(tile \+ segment\) or all/);
    const wgrad = run(CHECK, '--cpu-only', '--wgrad', 'fast');
    assert.equal(wgrad.status, 2);
    assert.equal(wgrad.stderr, "--wgrad 'fast': expected tile, shared or all\n");
  });

  const nvcc = findNvcc();
  it('has the CUDA kernels compiled for sm_90 by the native build, reused by the check script, whose GPU run passes on a device and says there is none elsewhere', { skip: !nvcc && 'no nvcc on this machine (PATH, /usr/local/cuda/bin, /usr/local/cuda-*/bin)' }, () => {
    const bin = join(BUILD, 'moe_cuda_check');
    assert.ok(existsSync(bin), `nvcc is at ${nvcc} but the native build made no ${bin}`);
    assert.ok(existsSync(join(BUILD, 'liblory_ops_cuda.so')) || !existsSync(join(BUILD, 'liblory_ops.so')), 'liblory_ops_cuda.so is built beside liblory_ops.so');
    const image = readFileSync(bin).toString('latin1');
    for (const kernel of ['tile_gemm_kernel', 'segment_gemm_kernel', 'group_gemm_kernel', 'weight_grad_kernel', 'de_reduce_kernel', 'wgrad_shared_kernel', 'de_reduce_warp_kernel', 'adamw_kernel'])
      assert.ok(image.includes(kernel), `${kernel} is in the GPU check program`);
    const built = run(CHECK, '--build-only');
    assert.equal(built.status, 0, built.stderr);
    assert.equal(built.stdout.trim(), `built ${bin}`, 'the script reuses the CMake build instead of compiling again');
    assert.doesNotMatch(built.stderr, /building/);
    // The GPU run's verdict counts either way: with a device every row must be within its bound (exit 0);
    // without one (CI) the program must say so and exit 2 rather than pass or fail on no work.
    const gpu = run(bin, '--quick');
    if (hasCudaDevice()) {
      assert.equal(gpu.status, 0, gpu.stdout + gpu.stderr);
      assert.match(gpu.stdout, /^device: /m);
      const got = rows(gpu.stdout);
      assert.deepEqual([...new Set(got.map((g) => g.dtype))].sort(), ['bfloat16', 'float16', 'float32'], gpu.stdout);
      for (const g of got) assert.match(g.verdict, /^ok/, JSON.stringify(g));
      assert.match(gpu.stdout, /all within bounds\n$/);
    } else {
      assert.equal(gpu.status, 2, `no CUDA device here, yet the GPU check exited ${gpu.status}: ${gpu.stdout}${gpu.stderr}`);
      assert.equal(gpu.stderr, 'no CUDA device: run with --cpu-only\n');
      assert.deepEqual(rows(gpu.stdout), [], 'no result rows without a device');
    }
    const harness = run(bin, '--cpu-only', '--quick');
    assert.equal(harness.status, 0, harness.stdout + harness.stderr);
  });

  it('gpu-run takes --quick (bin/gpu-check\'s kernel step) or --sanitize, and refuses anything else with its usage (exit 2)', () => {
    const r = run(GPU_RUN, '--full');
    assert.equal(r.status, 2);
    assert.equal(r.stderr, 'usage: kernels/cuda/gpu-run [--quick | --sanitize]\n');
    // --quick stops after the quick table and the self-test, before the full table.
    const script = readFileSync(GPU_RUN, 'utf8');
    const quickExit = script.search(/self-test: exit \$rc, caught \$n"\nif \[\[ \$quick_only == 1 \]\]; then\n  echo "gpu-run: quick steps passed; logs in \$logs"\n  exit 0\nfi\n/);
    assert.ok(quickExit > 0, 'the --quick exit follows the self-test');
    for (const later of ['step "shared wgrad', 'step "full table']) assert.ok(script.indexOf(later) > quickExit, `${later} comes after the --quick exit`);
  });

  it('check --gemm-peak: the bf16 GEMM peak on a device, one line bin/gpu-check parses; no device or no CUDA build: exit 2 saying so', () => {
    const cpuBuild = run(CHECK, '--cpu-only', '--gemm-peak');
    assert.equal(cpuBuild.status, 2);
    assert.equal(cpuBuild.stderr.trim().split('\n').pop(), 'this check binary was built without CUDA (no nvcc at build time): only --cpu-only runs');
    if (!nvcc) return;
    const peak = run(CHECK, '--gemm-peak', '--gemm-size', '2048', '--repeats', '5');
    if (hasCudaDevice()) {
      assert.equal(peak.status, 0, peak.stdout + peak.stderr);
      assert.match(peak.stdout, /^gemm peak bfloat16 n=2048 repeats=5 median_ms=[0-9.]+ tflops=[0-9.]+ library=\S+$/m);
      assert.ok(parseGemmPeak(peak.stdout)! > 1, peak.stdout);
    } else {
      assert.equal(peak.status, 2, peak.stdout + peak.stderr);
      assert.equal(peak.stderr.trim().split('\n').pop(), 'no CUDA device: run with --cpu-only');
      assert.doesNotMatch(peak.stdout, /gemm peak/);
    }
  });

  // A CPU session that loads the CUDA library: ORT builds one schema per op from all of the domain's
  // registrations (CPU and CUDA) and refuses a library whose overloads of an op differ in their numbers
  // of inputs or outputs; a bfloat16 LoryMoEFFNTrain node then passes the schema (only the CUDA
  // registration takes bfloat16) and fails for want of a CPU kernel. With the CPU library alone (or a CUDA
  // library without the training pair) bfloat16 is not in the schema at all.
  it('registers the training pair for CUDA in 16-bit types, with the CPU ops\' inputs and outputs', { skip: !existsSync(join(BUILD, 'liblory_ops_cuda.so')) && 'liblory_ops_cuda.so is not built (no nvcc)' }, async () => {
    const trainForward = (library: string) => {
      const g = new G.Graph();
      const ins = [g.input('x', 'bfloat16', [2, 3, 4]), g.input('e', 'bfloat16', [2, 2]), g.input('wg', 'bfloat16', [2, 4, 5]),
        g.input('wu', 'bfloat16', [2, 4, 5]), g.input('wd', 'bfloat16', [2, 5, 4])] as const;
      const y = moeFfn('custom', ...ins, { training: true });
      return loadModel(G.exportModel(g, { outputs: { y }, inputs: [...ins] }).bytes, { customOpLibraries: [library], intraOpThreads: 1 });
    };
    await assert.rejects(trainForward(join(BUILD, 'liblory_ops_cuda.so')), /Could not find an implementation for LoryMoEFFNTrain\(1\) node/);
    await assert.rejects(trainForward(join(BUILD, 'liblory_ops.so')), /Type 'tensor\(bfloat16\)' of input parameter \(x\) of operator \(LoryMoEFFNTrain\)/);
  });

  it('looks for cuBLAS beyond the loader: CUDA toolkits\' lib64 and Python\'s nvidia/cublas/lib', { skip: !nvcc && 'no nvcc on this machine' }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'lory-cublas-'));
    const toolkit = join(dir, 'cuda', 'lib64');
    const wheel = join(dir, 'venv', 'lib', 'python3.11', 'site-packages', 'nvidia', 'cublas', 'lib');
    for (const d of [toolkit, wheel]) mkdirSync(d, { recursive: true });
    writeFileSync(join(toolkit, 'libcublas.so.13'), '');
    writeFileSync(join(wheel, 'libcublas.so.12'), '');
    const r = runWith({ CUDA_HOME: join(dir, 'cuda'), VIRTUAL_ENV: join(dir, 'venv') }, join(BUILD, 'moe_cuda_check'), '--cublas-search');
    const listed = r.stdout.split('\n').filter((l) => l.startsWith('  ')).map((l) => l.trim());
    assert.deepEqual(listed.slice(0, 3), ['libcublas.so', 'libcublas.so.13', 'libcublas.so.12'], r.stdout);
    assert.ok(listed.indexOf(join(toolkit, 'libcublas.so.13')) > 2, r.stdout);
    assert.ok(listed.indexOf(join(wheel, 'libcublas.so.12')) > listed.indexOf(join(toolkit, 'libcublas.so.13')), r.stdout);
    assert.match(r.stdout, /^(loads: |none loads)/m);
    rmSync(dir, { recursive: true });
  });
});
