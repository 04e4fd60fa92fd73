/** Locates and loads the native addon (kernels/runtime) and the ONNX Runtime library it drives. */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AnyTypedArray, TensorInfo } from './types.js';

/** The project root: this file is src/runtime/native.ts, compiled to dist/src/runtime/native.js. */
export const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const require = createRequire(join(PROJECT_ROOT, 'package.json'));

/** The runtime addon; LORY_RUNTIME_ADDON names another build (benchmarks compare two builds in one checkout). */
export const ADDON_PATH = process.env.LORY_RUNTIME_ADDON ?? join(PROJECT_ROOT, 'kernels', 'runtime', 'build', 'Release', 'lory_runtime.node');

/** The libonnxruntime.so.1 shipped inside onnxruntime-node (the CPU runtime; no download needed). */
export function bundledOrtLibraryPath(): string {
  const pkg = dirname(require.resolve('onnxruntime-node/package.json'));
  const arch = process.arch === 'arm64' ? 'arm64' : 'x64';
  const file = process.platform === 'darwin' ? 'libonnxruntime.1.dylib' : 'libonnxruntime.so.1';
  return join(pkg, 'bin', 'napi-v6', process.platform, arch, file);
}

export interface NativeValue {
  readonly dtype: string;
  readonly shape: number[];
  readonly size: number;
  readonly disposed: boolean;
  readonly device: string;
  read(): AnyTypedArray;
  view(): AnyTypedArray;
  write(data: AnyTypedArray): void;
  dispose(): void;
}

export interface NativeSession {
  readonly inputs: TensorInfo[];
  readonly outputs: TensorInfo[];
  readonly executionProvider: string;
  run(
    inputNames: string[],
    inputs: NativeValue[],
    outputNames: string[],
    into: Array<NativeValue | null>,
    blocking?: boolean,
  ): Promise<Record<string, NativeValue>>;
  endProfiling(): string;
  dispose(): void;
}

export interface NativeAddon {
  ResidentValue: abstract new (...args: never[]) => NativeValue;
  init(libraryPath: string, logLevel: string): { version: string; apiVersion: number; path: string };
  availableProviders(): string[];
  probeCuda(): { driverLoaded: boolean; deviceCount: number; detail: string; runtime: string; devices: Array<{ name: string; totalBytes: number }> };
  /** device: -1 for host memory, else a CUDA ordinal. */
  tensor(dtype: string, shape: number[], data?: AnyTypedArray, device?: number): NativeValue;
  createSession(model: Uint8Array | string, options: object): Promise<NativeSession>;
  liveValues(): { count: number; bytes: number };
}

export class NativeAddonMissingError extends Error {
  constructor(path: string, cause: unknown) {
    super(`lory's native runtime addon is not built (${path}): run \`npm ci\` (or \`node scripts/build-native.mjs\`) — ${String((cause as Error)?.message ?? cause)}`);
    this.name = 'NativeAddonMissingError';
  }
}

let addon: NativeAddon | undefined;

export function loadAddon(): NativeAddon {
  if (addon) return addon;
  if (!existsSync(ADDON_PATH)) throw new NativeAddonMissingError(ADDON_PATH, 'file not found');
  try {
    addon = require(ADDON_PATH) as NativeAddon;
  } catch (error) {
    throw new NativeAddonMissingError(ADDON_PATH, error);
  }
  return addon;
}
