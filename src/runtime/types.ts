/** The public face of lory's ONNX Runtime binding. `src/runtime` is the only code that touches ORT. */
import type { AnyTypedArray, DType } from '../graph/onnx/dtype.js';

export type { AnyTypedArray, DType };

export type ExecutionProvider = 'cpu' | 'cuda';
/** Where a resident value's memory lives: host memory, or a CUDA device by ordinal. */
export type DeviceName = 'cpu' | `cuda:${number}`;
export type GraphOptimizationLevel = 'disable' | 'basic' | 'extended' | 'all';

export interface SessionOptions {
  /** Threads for one op (ORT intra-op pool). Default: the number of cores. */
  intraOpThreads?: number;
  /** Threads across independent ops (ORT inter-op pool). Default 1 (sequential execution). */
  interOpThreads?: number;
  graphOptimizationLevel?: GraphOptimizationLevel;
  executionProvider?: ExecutionProvider;
  /** CUDA device ordinal when executionProvider is 'cuda'. */
  deviceId?: number;
  /**
   * Let the CUDA provider round float32 GEMM inputs to TF32 (ORT's own default is on). lory's default
   * is off, so a float32 GPU run compares with the CPU's.
   */
  tf32?: boolean;
  /** Paths of shared libraries of custom ops to register (RegisterCustomOpsLibrary). */
  customOpLibraries?: string[];
  /**
   * Let ORT's pool threads spin while waiting for work (ORT's default: true). Spinning shortens
   * latency between ops but burns cores other work (the event loop, data loading) could use.
   */
  allowSpinning?: boolean;
  /** ORT's CPU memory arena (default true). Off trades allocation speed for a smaller peak. */
  cpuMemArena?: boolean;
  /**
   * Turn on ORT's profiler: every node run is recorded (Chrome-trace JSON, `<prefix>_<date>.json`,
   * written when `Session.endProfiling()` is called). Costs a little time per node; for benchmarks.
   */
  profileFilePrefix?: string;
  /** ORT session log id, shown in ORT's own log lines. */
  logId?: string;
}

/** A graph input or output as the session sees it; -1 marks a symbolic dimension. */
export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
}

/** A plain tensor in JS memory: copied into native memory when fed. */
export interface HostTensor {
  dtype: DType;
  shape: number[];
  data: AnyTypedArray;
}

/** A tensor that lives in native memory and survives across runs. */
export interface ResidentValue {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly size: number;
  readonly disposed: boolean;
  /** Where the memory lives; a run reads and writes it in place there. */
  readonly device: DeviceName;
  /** Copy out into a new TypedArray (for checkpoints and metrics); from a GPU, a device→host copy. */
  read(): AnyTypedArray;
  /**
   * The tensor's own memory as a TypedArray, no copy: for native collectives (MPI) that reduce
   * resident values in place. Never use it while a run reads or writes the value; a disposed value
   * keeps its memory until its last view is collected. Host values only.
   */
  view(): AnyTypedArray;
  /** Copy a TypedArray of exactly `size` elements in (overwrites in place). */
  write(data: AnyTypedArray): void;
  /** Release the native memory now; further use throws. */
  dispose(): void;
}

export type Feed = ResidentValue | HostTensor;

export interface RunOptions {
  /** Outputs to compute; default all. */
  outputs?: string[];
  /**
   * Pre-allocated outputs to write into (shape and dtype must match). Use for ping-pong buffers so a
   * training step allocates nothing.
   */
  into?: Record<string, ResidentValue>;
  /**
   * Run on the calling thread instead of the worker pool. Only for tiny graphs (metrics, a few ops),
   * where the thread hop costs more than the run; it blocks the event loop for the run's duration.
   */
  blocking?: boolean;
}

export interface Session {
  readonly inputs: readonly TensorInfo[];
  readonly outputs: readonly TensorInfo[];
  readonly executionProvider: ExecutionProvider;
  /**
   * Runs on a worker thread; the event loop keeps turning. Inputs are used where they live; outputs
   * with an `into` target are written there in place; the other outputs come back in host memory.
   */
  run(feeds: Record<string, Feed>, options?: RunOptions): Promise<Record<string, ResidentValue>>;
  /** Stops ORT's profiler and returns the profile file's path ('' unless `profileFilePrefix` was set). */
  endProfiling(): string;
  dispose(): void;
}

export interface RuntimeInfo {
  ortVersion: string;
  ortLibraryPath: string;
  apiVersion: number;
  /** Providers compiled into the ORT library (GetAvailableProviders). */
  availableProviders: string[];
}
