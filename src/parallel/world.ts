/**
 * This process's place in a multi-process run: joined once, when mpirun/srun started it with more
 * than one rank, by the commands that divide their work among ranks (train, embed). Rank 0 alone
 * writes and reports; the other ranks stay quiet unless they fail on their own.
 */
import { availableParallelism } from 'node:os';
import { launchFromEnv, World } from './mpi.js';

let joined: World | undefined;

/** The world of an MPI launch with 2+ ranks (MPI_Init on first call); undefined for a single process. */
export function joinWorld(): World | undefined {
  if (joined) return joined;
  const launch = launchFromEnv();
  if (!launch || launch.size < 2) return undefined;
  joined = World.join(launch);
  return joined;
}

/** The world joined so far, if any (the CLI's error reporting and shutdown ask). */
export function currentWorld(): World | undefined {
  return joined;
}

/** Compute threads for one rank when the config sets none: this machine's cores shared by its ranks. */
export function threadsPerRank(world: World | undefined): number | undefined {
  return world ? Math.max(1, Math.floor(availableParallelism() / world.localSize)) : undefined;
}

/** An error every rank raised alike (same inputs, same numbers): rank 0 reports it; the others exit with it quietly. */
export function markAllRanks<E extends Error>(error: E): E {
  (error as E & { allRanks?: boolean }).allRanks = true;
  return error;
}

export const raisedOnAllRanks = (error: unknown): boolean => error instanceof Error && (error as { allRanks?: boolean }).allRanks === true;
