/**
 * The device a command computes on: `cpu`, or a CUDA GPU (`cuda`, `cuda:N`). Parsing, and the check
 * that a GPU will work here, made before anything is allocated or written: the reason it will not
 * (no driver, no device, the CUDA provider or lory's CUDA op library missing) is the user's to fix.
 */
import { existsSync } from 'node:fs';
import { writeModel } from '../graph/onnx/writer.js';
import { loadRuntime, type Runtime } from './index.js';
import { customOpLibrary } from './libraries.js';
import type { DeviceName, ExecutionProvider, SessionOptions } from './types.js';

export interface Device {
  name: DeviceName;
  provider: ExecutionProvider;
  /** CUDA ordinal; -1 on the CPU. */
  ordinal: number;
}

export const CPU: Device = Object.freeze({ name: 'cpu', provider: 'cpu', ordinal: -1 });

/** A device that cannot be used here, or a malformed device name: one line, exit 2. */
export class DeviceError extends Error {
  readonly userError = true;
  constructor(message: string) {
    super(message);
    this.name = 'DeviceError';
  }
}

/** `cpu`, `cuda` (device 0) or `cuda:N`; `where` names the flag or field in the error. */
export function parseDevice(text: string, where = '--device'): Device {
  if (text === 'cpu') return CPU;
  const m = /^cuda(?::(\d{1,3}))?$/.exec(text);
  if (!m) throw new DeviceError(`${where}: expected cpu, cuda or cuda:N (N a device number), got '${text}'`);
  const ordinal = Number(m[1] ?? 0);
  return { name: `cuda:${ordinal}`, provider: 'cuda', ordinal };
}

// An Identity model: creating a session over it loads the provider (and any op library) and no more.
const probeModel = (): Uint8Array =>
  writeModel({
    graphName: 'device_probe',
    opsets: { '': 21 },
    nodes: [{ opType: 'Identity', name: 'probe/identity', inputs: ['x'], outputs: ['y'] }],
    inputs: [{ name: 'x', dtype: 'float32', shape: [1] }],
    outputs: [{ name: 'y', dtype: 'float32', shape: [1] }],
  });

// ORT's message for a missing provider library is a long source-location dump; say what it means.
export function explainCudaError(message: string): string {
  if (/libonnxruntime_providers_(shared|cuda)\.so/.test(message) && /cannot open shared object file/.test(message)) {
    return 'ONNX Runtime\'s CUDA provider libraries are not installed (docs/gpu.md: the offline bundle ships them)';
  }
  if (/OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library/.test(message)) {
    return 'ONNX Runtime could not load its CUDA provider (libonnxruntime_providers_cuda.so) or a CUDA library it links: its own log line names which; `lory doctor` lists the CUDA libraries found';
  }
  return message.split('\n')[0]!;
}

const probed = new Map<string, Promise<string | undefined>>();

/**
 * ORT's message when a session with `options` cannot be made over the probe model (its provider or an
 * op library does not load); undefined when it can. Tried once per process for each provider, device
 * and library set: whether they load does not change, and `lory doctor` asks twice.
 */
export function sessionError(runtime: Runtime, options: SessionOptions): Promise<string | undefined> {
  const key = `${options.executionProvider ?? 'cpu'}:${options.deviceId ?? 0}:${(options.customOpLibraries ?? []).join(',')}`;
  let error = probed.get(key);
  if (!error) {
    error = runtime.createSession(probeModel(), options).then(
      (session) => void session.dispose(),
      (e: Error) => e.message,
    );
    probed.set(key, error);
  }
  return error;
}

/** Why `device` cannot train or run here, checked in the order a user would fix things; undefined when it can. */
export async function deviceProblem(device: Device, runtime: Runtime = loadRuntime(), opts: { opLibrary?: boolean } = {}): Promise<string | undefined> {
  if (device.provider === 'cpu') return undefined;
  const cuda = runtime.cudaDevices();
  if (!cuda.driverLoaded) return cuda.detail;
  if (cuda.deviceCount === 0) return `no CUDA device visible (${cuda.detail})`;
  if (device.ordinal >= cuda.deviceCount) return `${device.name} does not exist: the driver sees ${cuda.deviceCount} device(s), cuda:0 to cuda:${cuda.deviceCount - 1}`;
  const onDevice = { executionProvider: 'cuda', deviceId: device.ordinal } as const;
  const providerError = await sessionError(runtime, onDevice);
  if (providerError) return `the CUDA execution provider does not load: ${explainCudaError(providerError)}`;
  if (opts.opLibrary !== false) {
    const lib = customOpLibrary('lory-ops-cuda')!;
    if (!existsSync(lib.path)) return `lory's CUDA op library is not built (${lib.path}): build it with nvcc (node kernels/build.mjs, or the offline bundle's install)`;
    const libraryError = await sessionError(runtime, { ...onDevice, customOpLibraries: [lib.path] });
    if (libraryError) return `lory's CUDA op library does not load: ${libraryError.split('\n')[0]}`;
  }
  try {
    runtime.tensor('float32', [1], undefined, device.name).dispose();
  } catch (error) {
    return `device memory cannot be allocated: ${(error as Error).message}`;
  }
  return undefined;
}

/** Parses and checks a device for a command: throws DeviceError (exit 2) with the reason a GPU cannot be used. */
export async function openDevice(text: string | undefined, where = '--device', o: { opLibrary?: boolean } = {}): Promise<Device> {
  const device = parseDevice(text ?? 'cpu', where);
  const problem = await deviceProblem(device, loadRuntime(), o);
  if (problem) throw new DeviceError(`${where} ${text}: cannot compute on ${device.name} here: ${problem}`);
  return device;
}

/** Session options that put a graph on `device` (float32 GEMMs without TF32 unless `tf32`). */
export function deviceSessionOptions(device: Device, tf32 = false): SessionOptions {
  return device.provider === 'cuda' ? { executionProvider: 'cuda', deviceId: device.ordinal, tf32 } : {};
}
