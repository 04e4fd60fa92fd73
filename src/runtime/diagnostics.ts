/** What `lory doctor` reports: the runtime, its providers, custom-op libraries, threads, GPUs. */
import { availableParallelism, cpus } from 'node:os';
import { writeModel } from '../graph/onnx/writer.js';
import { loadRuntime, type Runtime } from './index.js';
import { CUSTOM_OP_LIBRARIES, isBuilt } from './libraries.js';

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

export interface DiagnosticsReport {
  node: string;
  platform: string;
  ort: { version: string; apiVersion: number; library: string } | { error: string };
  providers: ProviderStatus[];
  customOpLibraries: LibraryStatus[];
  threads: { logicalCores: number; availableParallelism: number; ortIntraOpDefault: string };
  cuda: { driverLoaded: boolean; deviceCount: number; detail: string } | null;
  ok: boolean;
}

// An Identity model: enough for ORT to load the session options (and so the libraries).
const probeModel = () =>
  writeModel({
    graphName: 'doctor_probe',
    opsets: { '': 21 },
    nodes: [{ opType: 'Identity', name: 'doctor/identity', inputs: ['x'], outputs: ['y'] }],
    inputs: [{ name: 'x', dtype: 'float32', shape: [1] }],
    outputs: [{ name: 'y', dtype: 'float32', shape: [1] }],
  });

// ORT's message for a missing provider library is a long source-location dump; say what it means.
function explainCudaError(message: string): string {
  if (/libonnxruntime_providers_(shared|cuda)\.so/.test(message) && /cannot open shared object file/.test(message)) {
    return 'ONNX Runtime\'s CUDA provider libraries are not installed (see README, "Using a GPU")';
  }
  return message;
}

async function tryCreate(runtime: Runtime, options: Parameters<Runtime['createSession']>[1]): Promise<string | undefined> {
  try {
    const session = await runtime.createSession(probeModel(), options);
    session.dispose();
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
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
    return { ...base, ort: { error: (error as Error).message }, providers: [], customOpLibraries: [], cuda: null, ok: false };
  }
  const cuda = runtime.cudaDevices();
  const cudaError = await tryCreate(runtime, { executionProvider: 'cuda' });
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
        : await tryCreate(runtime, { customOpLibraries: [lib.path], executionProvider: lib.provider });
    customOpLibraries.push({ ...lib, built, loads: error === undefined, ...(error ? { error } : {}) });
  }
  const required = customOpLibraries.filter((l) => l.provider === 'cpu');
  return {
    ...base,
    ort: { version: runtime.info.ortVersion, apiVersion: runtime.info.apiVersion, library: runtime.info.ortLibraryPath },
    providers,
    customOpLibraries,
    cuda,
    ok: required.every((l) => l.loads || l.error === 'not built'),
  };
}
