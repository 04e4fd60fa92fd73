/**
 * The CUDA merged-expert FFN (kernels/cuda) on a machine without a GPU: its host-side scratch planner,
 * its orchestration of the passes run against a host backend (everything but the kernels' insides),
 * its check program's CPU mode (every precision within its bound, injected errors caught in every
 * output of every precision, two runs bit-identical), and, where nvcc exists, that the CUDA sources
 * were compiled by the native build (npm ci / bin/setup) for sm_90 and are reused, not rebuilt, and
 * that the GPU check passes where a device exists and says there is none where it does not.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PROJECT_ROOT } from '../runtime/index.js';

const BUILD = join(PROJECT_ROOT, 'kernels', 'build', 'lory-ops');
const CHECK = join(PROJECT_ROOT, 'kernels', 'cuda', 'check');
const skip = !existsSync(join(BUILD, 'moe_cuda_plan_test')) && 'the native build (kernels/build/lory-ops) is missing';

function run(cmd: string, ...args: string[]) {
  return spawnSync(cmd, args, { encoding: 'utf8', cwd: PROJECT_ROOT, timeout: 300_000 });
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
  dtype: string;
  verdict: string;
  bits: string;
}

// Result rows of the check program: shape, kernel, dtype, ref, 7 error columns, bound, bits, ..., verdict.
function rows(stdout: string): Row[] {
  return stdout
    .split('\n')
    .filter((l) => /^\d+,\d+,\d+,\d+,\d+\s/.test(l))
    .map((l) => {
      const f = l.trim().split(/\s+/);
      return { dtype: f[2]!, bits: f[12]!, verdict: f.slice(22).join(' ') };
    });
}

describe('the CUDA kernel\'s host-side checks', { skip }, () => {
  it('plans chunks that cover every segment once and keep scratch within the budget, paper scale included', () => {
    const r = run(join(BUILD, 'moe_cuda_plan_test'));
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /ok {3}paper scale: forward 42\.9 GB -> 254\.0 MiB, backward 77\.3 GB -> 255\.9 MiB/);
  });

  it('runs the GPU orchestration (chunks, jobs, dW modes, de partials) against a host backend within the float64 bounds', () => {
    const r = run(join(BUILD, 'moe_cuda_orchestrate_test'));
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /ok {3}bfloat16 across chunks with the float32 dW accumulator/);
    assert.match(r.stdout, /ok {3}bfloat16 across chunks with dW rounded per chunk/);
    assert.doesNotMatch(r.stdout, /FAIL/);
  });

  it('passes the check program in CPU mode for float32, float16 and bfloat16, with identical bits on two runs', () => {
    const r = run(CHECK, '--cpu-only', '--quick');
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const got = rows(r.stdout);
    assert.deepEqual([...new Set(got.map((g) => g.dtype))].sort(), ['bfloat16', 'float16', 'float32']);
    assert.equal(got.length, 6, r.stdout);
    for (const g of got) {
      assert.match(g.verdict, /^ok/, JSON.stringify(g));
      assert.equal(g.bits, 'same');
    }
    assert.ok(got.some((g) => /bwd chunks, dW rounded per chunk/.test(g.verdict)), 'a chunked 16-bit case runs');
  });

  it('catches an injected error in every output of every precision', () => {
    const r = run(CHECK, '--cpu-only', '--quick', '--inject-error');
    assert.equal(r.status, 1, 'a wrong result must fail the check');
    const got = rows(r.stdout);
    assert.equal(got.length, 6, r.stdout);
    for (const g of got) assert.match(g.verdict, /^FAIL \(y,dx,de,dW_gate,dW_up,dW_down\)/, `${g.dtype}: ${g.verdict}`);
    assert.match(r.stdout, /injected errors caught in every output: 6 of 6 rows/);
  });

  it('rejects an unknown kernel name with exit code 2', () => {
    const r = run(CHECK, '--cpu-only', '--kernel', 'fastest');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--kernel 'fastest': expected tile, segment or both/);
  });

  const nvcc = findNvcc();
  it('has the CUDA kernels compiled for sm_90 by the native build, reused by the check script, whose GPU run passes on a device and says there is none elsewhere', { skip: !nvcc && 'no nvcc on this machine (PATH, /usr/local/cuda/bin, /usr/local/cuda-*/bin)' }, () => {
    const bin = join(BUILD, 'moe_cuda_check');
    assert.ok(existsSync(bin), `nvcc is at ${nvcc} but the native build made no ${bin}`);
    assert.ok(existsSync(join(BUILD, 'liblory_ops_cuda.so')) || !existsSync(join(BUILD, 'liblory_ops.so')), 'liblory_ops_cuda.so is built beside liblory_ops.so');
    const image = readFileSync(bin).toString('latin1');
    for (const kernel of ['tile_gemm_kernel', 'segment_gemm_kernel', 'weight_grad_kernel', 'de_reduce_kernel'])
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
});
