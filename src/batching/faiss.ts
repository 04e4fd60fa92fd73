/**
 * lory's FAISS binding (kernels/faiss), seen from TypeScript. Why not the faiss-node package: it
 * cannot be installed here (its install step fetches FAISS from GitHub), it rejects Float32Array
 * input (copying 1M×384 vectors into JS arrays took 81 s), cannot set nprobe/efSearch, aborts the
 * process on any FAISS error, leaks an index-sized copy per toBuffer, and blocks the event loop.
 * This binding takes TypedArrays in place, runs every computing call on a worker thread, turns FAISS
 * errors into exceptions, and takes index factory strings with their search parameters.
 *
 * Only src/batching loads the binding.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../artifacts/index.js';

export const FAISS_ADDON_PATH = join(PROJECT_ROOT, 'kernels', 'faiss', 'build', 'Release', 'lory_faiss.node');

export type Metric = 'ip' | 'l2';

interface NativeIndex {
  readonly d: number;
  readonly ntotal: number;
  readonly isTrained: boolean;
  readonly metric: string;
  readonly disposed: boolean;
  setThreads(n: number): void;
  setParameter(name: string, value: number): void;
  train(x: Float32Array, n: number): Promise<void>;
  add(x: Float32Array, n: number): Promise<void>;
  search(q: Float32Array, n: number, k: number, distances: Float32Array, labels: BigInt64Array): Promise<void>;
  write(path: string): Promise<void>;
  dispose(): void;
}

interface NativeFaiss {
  factory(d: number, description: string, metric: Metric): NativeIndex;
  read(path: string): Promise<NativeIndex>;
  blasCoreName(): string;
  blasConfig(): string;
  maxThreads(): number;
  faissVersion: string;
}

/** FAISS refused a call (bad factory string, unknown parameter, untrained index, ...). */
export class FaissError extends Error {
  constructor(context: string, cause: unknown) {
    super(`${context}: ${firstLine(cause)}`);
    this.name = 'FaissError';
  }
}

function firstLine(error: unknown): string {
  let reason = String((error as Error)?.message ?? error);
  // FAISS prefixes the C++ function signature and source location ("Error in void faiss::…(…) at
  // ./faiss/x.cpp:123: "), sometimes a qualified name ("ParameterSpace::set_index_parameter:") or the
  // failed assertion ("'nx >= k' failed: "); the reason comes last.
  reason = /Error in .*? at \S+:\d+: (.*)$/s.exec(reason)?.[1] ?? reason;
  reason = /Error: (.*)$/s.exec(reason)?.[1] ?? reason;
  reason = reason.replace(/^(?:\w+::)+\w+:\s*/, '').replace(/^'[^']*' failed: (?=\S)/, '');
  return reason.split('\n')[0]!.trim();
}

/**
 * The OpenBLAS kernel family to request. OpenBLAS 0.3.21 does not know some newer CPUs and falls
 * back to generic kernels about 5x slower; it reads OPENBLAS_CORETYPE once, when the library loads,
 * so lory sets it before loading the binding. A value the user set wins; LORY_OPENBLAS_CORETYPE=off
 * leaves OpenBLAS to its own detection (for measuring the difference).
 */
export function chooseCoreType(cpuFlags: Set<string>): string | undefined {
  if (['avx512f', 'avx512bw', 'avx512vl', 'avx512dq'].every((f) => cpuFlags.has(f))) return 'SkylakeX';
  if (cpuFlags.has('avx2') && cpuFlags.has('fma')) return 'Haswell';
  return undefined;
}

function cpuFlags(): Set<string> {
  try {
    const line = /^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '';
    return new Set(line.trim().split(/\s+/));
  } catch {
    return new Set();
  }
}

let native: NativeFaiss | undefined;
let coreTypeSetByLory: string | undefined;

export class FaissMissingError extends Error {
  constructor(cause: unknown) {
    super(
      `lory's FAISS binding is not built (${FAISS_ADDON_PATH}): install libfaiss-dev and libopenblas-openmp-dev, then run \`node kernels/build.mjs faiss\` (bin/setup does both) — ${firstLine(cause)}`,
    );
    this.name = 'FaissMissingError';
  }
}

export function loadFaiss(): NativeFaiss {
  if (native) return native;
  if (process.env.OPENBLAS_CORETYPE === undefined && process.env.LORY_OPENBLAS_CORETYPE !== 'off') {
    const chosen = process.env.LORY_OPENBLAS_CORETYPE || chooseCoreType(cpuFlags());
    if (chosen) {
      process.env.OPENBLAS_CORETYPE = chosen; // Node's env setter calls setenv(): visible to OpenBLAS
      coreTypeSetByLory = chosen;
    }
  }
  if (!existsSync(FAISS_ADDON_PATH)) throw new FaissMissingError('file not found');
  try {
    native = createRequire(import.meta.url)(FAISS_ADDON_PATH) as NativeFaiss;
  } catch (error) {
    throw new FaissMissingError(error);
  }
  return native;
}

export interface BlasInfo {
  coreName: string;
  config: string;
  coreTypeRequested: string | undefined;
  setByLory: boolean;
  faissVersion: string;
  maxThreads: number;
}

export function blasInfo(): BlasInfo {
  const f = loadFaiss();
  return {
    coreName: f.blasCoreName(),
    config: f.blasConfig(),
    coreTypeRequested: process.env.OPENBLAS_CORETYPE,
    setByLory: coreTypeSetByLory !== undefined,
    faissVersion: f.faissVersion,
    maxThreads: f.maxThreads(),
  };
}

export interface SearchResult {
  /** n×k similarities (inner product) or squared distances (l2), best first. */
  distances: Float32Array;
  /** n×k ids of the neighbours; -1 where fewer than k exist. */
  labels: BigInt64Array;
}

/**
 * A FAISS index. Calls are queued, so at most one runs at a time on an index (FAISS indexes are not
 * safe for concurrent add and search). Arrays passed in are read in place while the call runs: do
 * not change them before its promise settles.
 */
export class FaissIndex {
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly native: NativeIndex,
    readonly description: string,
  ) {}

  static create(d: number, description = 'Flat', metric: Metric = 'ip', threads = 0): FaissIndex {
    if (!Number.isInteger(d) || d <= 0) throw new FaissError(`index '${description}'`, `dimension must be a positive integer, got ${d}`);
    let index: NativeIndex;
    try {
      index = loadFaiss().factory(d, description, metric);
    } catch (error) {
      throw new FaissError(`cannot build FAISS index '${description}' (d=${d})`, error);
    }
    const wrapped = new FaissIndex(index, description);
    if (threads > 0) index.setThreads(threads);
    return wrapped;
  }

  static async read(path: string, threads = 0): Promise<FaissIndex> {
    if (!existsSync(path)) throw new FaissError(`cannot read FAISS index ${path}`, 'file not found');
    let index: NativeIndex;
    try {
      index = await loadFaiss().read(path);
    } catch (error) {
      throw new FaissError(`cannot read FAISS index ${path}`, error);
    }
    if (threads > 0) index.setThreads(threads);
    return new FaissIndex(index, `read from ${path}`);
  }

  get d(): number {
    if (this.native.disposed) throw new FaissError(`index '${this.description}'`, 'the index has been disposed');
    return this.native.d;
  }
  get ntotal(): number {
    return this.native.ntotal;
  }
  get isTrained(): boolean {
    return this.native.isTrained;
  }
  get metric(): string {
    return this.native.metric;
  }
  get disposed(): boolean {
    return this.native.disposed;
  }

  /** OpenMP/BLAS threads for this index's calls (0: OpenMP's default, all cores). */
  setThreads(threads: number): void {
    this.native.setThreads(threads);
  }

  /** A search-time parameter by FAISS's name: nprobe (IVF), efSearch (HNSW), ... */
  setParameter(name: string, value: number): void {
    try {
      this.native.setParameter(name, value);
    } catch (error) {
      throw new FaissError(`cannot set ${name}=${value} on index '${this.description}'`, error);
    }
  }

  private rows(x: Float32Array, what: string): number {
    if (this.native.disposed) throw new FaissError(what, 'the index has been disposed');
    if (!(x instanceof Float32Array)) throw new FaissError(what, 'vectors must be a Float32Array');
    if (x.length % this.d !== 0) throw new FaissError(what, `${x.length} floats is not a whole number of ${this.d}-d vectors`);
    return x.length / this.d;
  }

  private enqueue<T>(what: string, run: () => Promise<T>): Promise<T> {
    if (this.native.disposed) return Promise.reject(new FaissError(what, 'the index has been disposed'));
    const next = this.queue.then(run, run).catch((error: unknown) => {
      throw error instanceof FaissError ? error : new FaissError(what, error);
    });
    this.queue = next.catch(() => undefined);
    return next;
  }

  async train(x: Float32Array): Promise<void> {
    const n = this.rows(x, `training index '${this.description}'`);
    return this.enqueue(`training index '${this.description}'`, () => this.native.train(x, n));
  }

  async add(x: Float32Array): Promise<void> {
    const n = this.rows(x, `adding to index '${this.description}'`);
    return this.enqueue(`adding to index '${this.description}'`, () => {
      if (!this.native.isTrained) throw new FaissError(`adding to index '${this.description}'`, 'the index must be trained first');
      return this.native.add(x, n);
    });
  }

  /** The k nearest stored vectors of each query; pass `into` to reuse output arrays. */
  async search(queries: Float32Array, k: number, into?: SearchResult): Promise<SearchResult> {
    const what = `searching index '${this.description}'`;
    const n = this.rows(queries, what);
    if (!Number.isInteger(k) || k <= 0) throw new FaissError(what, `k must be a positive integer, got ${k}`);
    const out = into ?? { distances: new Float32Array(n * k), labels: new BigInt64Array(n * k) };
    if (out.distances.length !== n * k || out.labels.length !== n * k) throw new FaissError(what, `output arrays must hold ${n}×${k} values`);
    return this.enqueue(what, async () => {
      await this.native.search(queries, n, k, out.distances, out.labels);
      return out;
    });
  }

  write(path: string): Promise<void> {
    return this.enqueue(`writing index to ${path}`, () => this.native.write(path));
  }

  /** Frees the index once the queued calls are done. */
  async dispose(): Promise<void> {
    await this.queue;
    this.native.dispose();
  }
}
