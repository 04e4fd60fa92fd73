/**
 * The PyTorch side's environment for `npm run bench:torch`: Debian's python3-torch (installed here when
 * missing — by the bench, never by CI or bin/setup), the OpenBLAS kernel family its GEMMs run, and a
 * description of the machine.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { chooseCoreType } from '../src/batching/faiss.js';
import { PROJECT_ROOT } from '../src/runtime/index.js';
import { median } from './stats.js';
import { alternate, Worker } from './worker-pool.js';

/** How the probes name the candidate that leaves OPENBLAS_CORETYPE unset. */
export const DETECTED = '(unset: OpenBLAS detects)';

/** Debian's python3-torch installs for the system interpreter (not a pyenv/venv one on PATH). */
export const PYTHON = process.env.LORY_PYTHON ?? '/usr/bin/python3';
export const TORCH_WORKER = join(PROJECT_ROOT, 'bench', 'torch', 'train_worker.py');

export class BenchSetupError extends Error {}

const hasTorch = () => spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;

/** Installs python3-torch with apt-get when `import torch` fails; a clear error where it cannot. */
export function ensureTorch(): void {
  if (hasTorch()) return;
  const root = process.getuid?.() === 0;
  const sudo = !root && spawnSync('sudo', ['-n', 'true']).status === 0;
  if (!root && !sudo) throw new BenchSetupError(`${PYTHON} cannot import torch; install Debian's python3-torch (apt-get install python3-torch) or set LORY_PYTHON`);
  const apt = (...args: string[]) => {
    const cmd = root ? 'apt-get' : 'sudo';
    const r = spawnSync(cmd, root ? args : ['-n', 'apt-get', ...args], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    return r.status === 0;
  };
  console.error('bench:torch: installing Debian python3-torch for the PyTorch side (once)…');
  if (!apt('install', '-y', '-qq', '--no-install-recommends', 'python3-torch')) {
    apt('update', '-qq');
    if (!apt('install', '-y', '-qq', '--no-install-recommends', 'python3-torch')) throw new BenchSetupError('apt-get could not install python3-torch');
  }
  if (!hasTorch()) throw new BenchSetupError(`python3-torch is installed but ${PYTHON} still cannot import torch`);
}

export function cpuFlags(): Set<string> {
  const line = /^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '';
  return new Set(line.trim().split(/\s+/));
}

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  /** The SIMD extensions that matter for these kernels, in the order they appeared. */
  isa: string[];
  loadAverage: string;
}

const ISA = ['sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512dq', 'avx512bw', 'avx512vl', 'avx512_vnni', 'avx512_bf16', 'amx_tile', 'amx_bf16'];

export function machine(): Machine {
  const info = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.*)$/m.exec(info)?.[1] ?? cpus()[0]?.model ?? '?';
  const family = /^cpu family\s*:\s*(\d+)$/m.exec(info)?.[1];
  const modelNo = /^model\s*:\s*(\d+)$/m.exec(info)?.[1];
  const flags = cpuFlags();
  return {
    cpu: family ? `${model} (family ${family}, model ${modelNo})` : model,
    cores: cpus().length,
    memoryGiB: totalmem() / 2 ** 30,
    isa: ISA.filter((f) => flags.has(f)),
    loadAverage: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
  };
}

export interface CoreTypeChoice {
  /** The value PyTorch's workers get (undefined: OpenBLAS detects). */
  value: string | undefined;
  how: 'environment' | 'flag' | 'fastest measured';
  /** Each candidate: what OpenBLAS reported it ran, and its median GEMM rate (GFLOP/s). */
  probes: { requested: string; core: string; gflops: number }[];
}

/** Starts a PyTorch GEMM worker (n×n×n float32 per step) with OPENBLAS_CORETYPE as given. */
export function torchGemmWorker(id: string, dir: string, threads: number, n: number, coreType: string | undefined): Worker {
  const spec = join(dir, `${id}.json`);
  writeFileSync(spec, JSON.stringify({ kind: 'gemm', threads, n }));
  return new Worker(id, PYTHON, [TORCH_WORKER, spec], torchEnv(threads, coreType));
}

/**
 * Environment of a PyTorch worker: OpenMP threads (torch's and OpenBLAS's), the kernel family, and
 * OMP_WAIT_POLICY=PASSIVE unless the environment sets it. With GNU OpenMP's default (spin, then sleep),
 * a machine with more runnable threads than cores makes every parallel region wait for spinners that
 * were descheduled: a tiny Lory step measured 60–100 s wall (15–21 s CPU) against 5–12 s (1.8–2.4 s
 * CPU) passive, at load average 11 on 2 cores (torch's bmm nests OpenBLAS's parallel regions inside its
 * own). On a quiet machine passive costs a little wake-up latency.
 */
export function torchEnv(threads: number, coreType: string | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: String(threads) };
  env.OMP_WAIT_POLICY ??= 'PASSIVE';
  if (coreType === undefined) delete env.OPENBLAS_CORETYPE;
  else env.OPENBLAS_CORETYPE = coreType;
  return env;
}

/**
 * A value already in the environment always wins (some machines set it because other kernel families
 * compute wrong results there), then --openblas-coretype; otherwise every plausible family for this CPU
 * is timed on one GEMM and the fastest is used, so that PyTorch runs with its best BLAS kernels.
 */
export async function chooseTorchCoreType(dir: string, threads: number, n: number, flag: string | undefined): Promise<CoreTypeChoice> {
  const fromEnv = process.env.OPENBLAS_CORETYPE;
  const candidates = fromEnv ? [fromEnv] : flag && flag !== 'auto' ? [flag] : [undefined, chooseCoreType(cpuFlags()), cpuFlags().has('avx2') ? 'Haswell' : undefined];
  const unique = [...new Set(candidates)].filter((c, i) => i === 0 || c !== undefined);
  // The candidates alternate in rounds (as the bench's own variants do): a busy neighbour slows them alike.
  const workers = unique.map((c) => torchGemmWorker(`coretype-${c ?? 'detected'}`, dir, threads, n, c));
  const probes: CoreTypeChoice['probes'] = [];
  try {
    const readies = [];
    for (const w of workers) readies.push(await w.ready());
    const samples = await alternate(workers, 1, 5);
    for (let i = 0; i < workers.length; i++) {
      await workers[i]!.quit();
      const core = (readies[i]!.blas as { openblas_core?: string } | undefined)?.openblas_core ?? '?';
      probes.push({ requested: unique[i] ?? DETECTED, core, gflops: (2 * n ** 3) / (median(samples.get(workers[i]!.id)!.wall) / 1000) / 1e9 });
    }
  } finally {
    for (const w of workers) w.kill();
  }
  if (fromEnv) return { value: fromEnv, how: 'environment', probes };
  if (flag && flag !== 'auto') return { value: flag, how: 'flag', probes };
  let best = 0;
  probes.forEach((p, i) => (p.gflops > probes[best]!.gflops ? (best = i) : 0));
  return { value: unique[best], how: 'fastest measured', probes };
}
