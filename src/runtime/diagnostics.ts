/** What `lory doctor` reports: the runtime, its providers, custom-op libraries, threads, GPUs. */
import { availableParallelism, cpus } from 'node:os';
import { loadRuntime, type Runtime } from './index.js';
import { CUSTOM_OP_LIBRARIES, isBuilt } from './libraries.js';
import { deviceProblem, explainCudaError, parseDevice, sessionError } from './device.js';
import { findLibrariesHere } from '../bundle/cuda-libs.js';

export interface LibraryStatus {
  name: string;
  path: string;
  provider: 'cpu' | 'cuda';
  description: string;
  built: boolean;
  loads: boolean;
  error?: string;
}

export interface ProviderStatus {
  name: 'cpu' | 'cuda';
  ortName: string;
  compiledIn: boolean;
  usable: boolean;
  detail?: string;
}

/** Whether `lory train --device cuda` will work here, and which CUDA libraries this machine has. */
export interface GpuTrainingStatus {
  ready: boolean;
  /** Why not (the first problem in the order a user fixes them). */
  reason?: string;
  /** The CUDA runtime lory's device memory is allocated through, or why none loads. */
  cudaRuntime: string;
  libraries: Array<{ soname: string; path: string | null; source: string | null }>;
}

/** What ORT's CUDA provider (CUDA 13) links, then the optional cuDNN and NCCL. */
export const CUDA_SONAMES = ['libcudart.so.13', 'libcublas.so.13', 'libcublasLt.so.13', 'libcurand.so.10', 'libcudnn.so.9', 'libnccl.so.2'] as const;

export interface DiagnosticsReport {
  node: string;
  platform: string;
  ort: { version: string; apiVersion: number; library: string } | { error: string };
  providers: ProviderStatus[];
  customOpLibraries: LibraryStatus[];
  threads: { logicalCores: number; availableParallelism: number; ortIntraOpDefault: string };
  cuda: { driverLoaded: boolean; deviceCount: number; detail: string } | null;
  gpuTraining: GpuTrainingStatus | null;
  ok: boolean;
}

export async function diagnose(): Promise<DiagnosticsReport> {
  const base = {
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    threads: { logicalCores: cpus().length, availableParallelism: availableParallelism(), ortIntraOpDefault: 'one per physical core' },
  };
  let runtime: Runtime;
  try {
    runtime = loadRuntime();
  } catch (error) {
    return { ...base, ort: { error: (error as Error).message }, providers: [], customOpLibraries: [], cuda: null, gpuTraining: null, ok: false };
  }
  const cuda = runtime.cudaDevices();
  const cudaError = await sessionError(runtime, { executionProvider: 'cuda' });
  const providers: ProviderStatus[] = [
    { name: 'cpu', ortName: 'CPUExecutionProvider', compiledIn: true, usable: true },
    {
      name: 'cuda',
      ortName: 'CUDAExecutionProvider',
      compiledIn: runtime.info.availableProviders.includes('CUDAExecutionProvider'),
      usable: cudaError === undefined && cuda.deviceCount > 0,
      ...(cudaError ? { detail: explainCudaError(cudaError) } : cuda.deviceCount === 0 ? { detail: cuda.detail } : {}),
    },
  ];
  const customOpLibraries: LibraryStatus[] = [];
  for (const lib of CUSTOM_OP_LIBRARIES) {
    const built = isBuilt(lib);
    // A CUDA library can only register into a session that has the CUDA provider.
    const error = !built
      ? 'not built'
      : lib.provider === 'cuda' && !providers[1]!.usable
        ? 'needs the CUDA execution provider'
        : await sessionError(runtime, { customOpLibraries: [lib.path], executionProvider: lib.provider });
    customOpLibraries.push({ ...lib, built, loads: error === undefined, ...(error ? { error } : {}) });
  }
  const required = customOpLibraries.filter((l) => l.provider === 'cpu');
  const gpuReason = await deviceProblem(parseDevice('cuda'), runtime);
  const found = findLibrariesHere(CUDA_SONAMES);
  const gpuTraining: GpuTrainingStatus = {
    ready: gpuReason === undefined,
    ...(gpuReason ? { reason: gpuReason } : {}),
    cudaRuntime: cuda.runtime,
    libraries: CUDA_SONAMES.map((soname) => ({ soname, path: found.found[soname]?.path ?? null, source: found.found[soname]?.source ?? null })),
  };
  return {
    ...base,
    ort: { version: runtime.info.ortVersion, apiVersion: runtime.info.apiVersion, library: runtime.info.ortLibraryPath },
    providers,
    customOpLibraries,
    cuda,
    gpuTraining,
    ok: required.every((l) => l.loads || l.error === 'not built'),
  };
}
