/**
 * The MPI world this process belongs to: lory's binding over Open MPI (kernels/mpi), loaded only
 * when `mpirun`/`srun` started the process. Every collective runs off the main thread, in place on
 * TypedArrays (resident tensors through ResidentValue.view()), one at a time (MPI_THREAD_SERIALIZED).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { InputError } from '../artifacts/index.js';
import type { AnyTypedArray } from '../graph/onnx/dtype.js';
import { PROJECT_ROOT } from '../runtime/native.js';

export const MPI_ADDON_PATH = join(PROJECT_ROOT, 'kernels', 'mpi', 'build', 'Release', 'lory_mpi.node');

interface MpiBinding {
  init(): { rank: number; size: number; threadLevel: number };
  finalize(): void;
  abort(code: number): void;
  libraryVersion(): string;
  allreduce(arrays: AnyTypedArray[], op: ReduceOp): Promise<void>;
  broadcast(arrays: AnyTypedArray[], root: number): Promise<void>;
  allgather(send: AnyTypedArray, recv: AnyTypedArray): Promise<void>;
  barrier(): Promise<void>;
}

export type ReduceOp = 'sum' | 'max' | 'min';

/** The launcher's view of this process: its rank and the job's size, from the environment mpirun/srun set. */
export interface Launch {
  rank: number;
  size: number;
  /** Ranks on this machine (threads are divided among them). */
  localSize: number;
}

export function launchFromEnv(env: NodeJS.ProcessEnv = process.env): Launch | undefined {
  const num = (...names: string[]) => {
    for (const n of names) if (env[n] !== undefined && /^\d+$/.test(env[n]!)) return Number(env[n]);
    return undefined;
  };
  const size = num('OMPI_COMM_WORLD_SIZE', 'PMIX_SIZE', 'PMI_SIZE', 'SLURM_NTASKS');
  const rank = num('OMPI_COMM_WORLD_RANK', 'PMIX_RANK', 'PMI_RANK', 'SLURM_PROCID');
  if (size === undefined || rank === undefined) return undefined;
  return { rank, size, localSize: num('OMPI_COMM_WORLD_LOCAL_SIZE', 'MPI_LOCALNRANKS', 'SLURM_NTASKS_PER_NODE') ?? size };
}

let binding: MpiBinding | undefined;

function loadBinding(): MpiBinding {
  if (binding) return binding;
  if (!existsSync(MPI_ADDON_PATH)) {
    throw new InputError(`this process was started by mpirun but lory's MPI binding is not built (${MPI_ADDON_PATH}); install Open MPI (apt-get install libopenmpi-dev openmpi-bin, or bin/setup) and run \`node kernels/build.mjs mpi\``);
  }
  binding = createRequire(import.meta.url)(MPI_ADDON_PATH) as MpiBinding;
  return binding;
}

/** A communicator over all ranks. Calls are queued: MPI sees one collective at a time, in program order. */
export class World {
  private queue: Promise<unknown> = Promise.resolve();
  private finalized = false;

  private constructor(
    private readonly mpi: MpiBinding,
    readonly rank: number,
    readonly size: number,
    readonly localSize: number,
  ) {}

  /** Joins the job (MPI_Init_thread). */
  static join(launch: Launch): World {
    const mpi = loadBinding();
    const { rank, size } = mpi.init();
    return new World(mpi, rank, size, Math.max(1, Math.min(launch.localSize, size)));
  }

  get isRoot(): boolean {
    return this.rank === 0;
  }

  libraryVersion(): string {
    return this.mpi.libraryVersion().split('\n')[0]!;
  }

  private enqueue<T>(call: () => Promise<T>): Promise<T> {
    const next = this.queue.then(call, call);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Element-wise reduction of each array across ranks, in place on every rank. */
  allreduce(arrays: AnyTypedArray[], op: ReduceOp = 'sum'): Promise<void> {
    return this.enqueue(() => this.mpi.allreduce(arrays, op));
  }

  /** Root's arrays copied into every rank's, in place. */
  broadcast(arrays: AnyTypedArray[], root: number): Promise<void> {
    return this.enqueue(() => this.mpi.broadcast(arrays, root));
  }

  /** Every rank's `send`, concatenated in rank order, into `recv` (size × send.length). */
  allgather(send: AnyTypedArray, recv: AnyTypedArray): Promise<void> {
    return this.enqueue(() => this.mpi.allgather(send, recv));
  }

  barrier(): Promise<void> {
    return this.enqueue(() => this.mpi.barrier());
  }

  /** Gathers one float64 row per rank; returns them in rank order. */
  async gatherRows(row: Float64Array): Promise<Float64Array[]> {
    const all = new Float64Array(row.length * this.size);
    await this.allgather(row, all);
    return Array.from({ length: this.size }, (_, r) => all.subarray(r * row.length, (r + 1) * row.length));
  }

  /** Ends MPI for this process (idempotent); ranks call it before a normal exit. */
  finalize(): void {
    if (this.finalized) return;
    this.finalized = true;
    this.mpi.finalize();
  }

  /** Ends every rank of the job (a rank that cannot go on, with the others blocked in a collective). */
  abort(code: number): never {
    this.mpi.abort(code);
    process.exit(code);
  }
}
