/**
 * lory's runtime: the only module that touches ONNX Runtime. It loads lory's own N-API addon
 * (kernels/runtime), which dlopens the libonnxruntime shipped with onnxruntime-node, registers
 * custom-op libraries, and keeps tensors resident in native memory between runs.
 */
import { existsSync } from 'node:fs';
import { FeedError, OrtError } from './errors.js';
import { bundledOrtLibraryPath, loadAddon, type NativeAddon } from './native.js';
import { OrtSession } from './session.js';
import type { AnyTypedArray, DeviceName, DType, ResidentValue, RuntimeInfo, Session, SessionOptions } from './types.js';

export * from './types.js';
export { FeedError, OrtError } from './errors.js';
export { readProfile, sumBy, type NodeRun } from './profile.js';
export { NativeAddonMissingError, bundledOrtLibraryPath, ADDON_PATH, PROJECT_ROOT } from './native.js';

export type OrtLogLevel = 'verbose' | 'info' | 'warning' | 'error' | 'fatal';

export interface CudaDevices {
  driverLoaded: boolean;
  deviceCount: number;
  detail: string;
  /** The CUDA runtime library lory's device memory goes through, or why there is none. */
  runtime: string;
  /** Each device's name and memory, as the driver reports them. */
  devices: Array<{ name: string; totalBytes: number }>;
}

/** The CUDA ordinal of a device name, or -1 for host memory. */
export function deviceOrdinal(device: DeviceName): number {
  return device === 'cpu' ? -1 : Number(device.slice('cuda:'.length));
}

export class Runtime {
  readonly info: RuntimeInfo;

  constructor(private readonly addon: NativeAddon, libraryPath: string, logLevel: OrtLogLevel) {
    const loaded = addon.init(libraryPath, logLevel);
    this.info = {
      ortVersion: loaded.version,
      ortLibraryPath: loaded.path,
      apiVersion: loaded.apiVersion,
      availableProviders: addon.availableProviders(),
    };
  }

  /** Creates a session from ONNX bytes or a model file; creation runs off the main thread. */
  async createSession(model: Uint8Array | string, options: SessionOptions = {}): Promise<Session> {
    const label = typeof model === 'string' ? `model ${model}` : `model (${model.byteLength} bytes)`;
    if (typeof model === 'string' && !existsSync(model)) throw new FeedError(`model file not found: ${model}`);
    for (const lib of options.customOpLibraries ?? []) {
      if (!existsSync(lib)) throw new FeedError(`custom-op library not found: ${lib}`);
    }
    try {
      const native = await this.addon.createSession(model, { ...options });
      return new OrtSession(native, this.addon, label);
    } catch (error) {
      // Tried, not judged by ORT's provider list: some builds load the CUDA provider from
      // libonnxruntime_providers_cuda.so without listing it.
      if (options.executionProvider === 'cuda') {
        const said = String((error as Error).message).split('\n')[0];
        throw new FeedError(`the CUDA execution provider does not load here: ${said} (this ONNX Runtime lists ${this.info.availableProviders.join(', ')})`);
      }
      throw new OrtError(`cannot create a session from ${label}`, (error as Error).message);
    }
  }

  /** A resident tensor on `device` (default host memory): copies `data` in, or zero-fills when no data is given. */
  tensor(dtype: DType, shape: readonly number[], data?: AnyTypedArray, device: DeviceName = 'cpu'): ResidentValue {
    try {
      return this.addon.tensor(dtype, [...shape], data, deviceOrdinal(device)) as unknown as ResidentValue;
    } catch (error) {
      if (device === 'cpu') throw error;
      throw new OrtError(`allocating a [${shape.join(',')}] ${dtype} tensor on ${device}`, (error as Error).message);
    }
  }

  /** Count and bytes of resident values not yet released (a leak check). */
  liveValues(): { count: number; bytes: number } {
    return this.addon.liveValues();
  }

  /** Asks the CUDA driver how many GPUs it sees (zero on machines without one). */
  cudaDevices(): CudaDevices {
    return this.addon.probeCuda();
  }
}

let runtime: Runtime | undefined;

export interface LoadOptions {
  /** Path to libonnxruntime; defaults to LORY_ORT_LIBRARY or the copy inside onnxruntime-node. */
  libraryPath?: string;
  logLevel?: OrtLogLevel;
}

/** Loads the runtime once per process (ONNX Runtime allows one environment per process). */
export function loadRuntime(options: LoadOptions = {}): Runtime {
  if (runtime) return runtime;
  const libraryPath = options.libraryPath ?? process.env.LORY_ORT_LIBRARY ?? bundledOrtLibraryPath();
  if (!existsSync(libraryPath)) throw new FeedError(`ONNX Runtime library not found: ${libraryPath}`);
  runtime = new Runtime(loadAddon(), libraryPath, options.logLevel ?? 'error');
  return runtime;
}
export { CUSTOM_OP_LIBRARIES, customOpLibrary, isBuilt, type CustomOpLibrary } from './libraries.js';
export { CPU, DeviceError, deviceProblem, deviceSessionOptions, openDevice, parseDevice, type Device } from './device.js';
