/**
 * A command run as one rank of `mpirun -np N lory …`: join the MPI world, keep the ranks other than 0
 * quiet (rank 0 reports; the others print only their own errors, each line naming the rank), and bound
 * how long a rank waits for the others once told to stop — a rank that died leaves the rest blocked in
 * a collective, and mpirun's SIGTERM is what tells them.
 */
import { joinWorld } from '../parallel/world.js';
import type { World } from '../parallel/mpi.js';
import { log } from './log.js';

/** Seconds a rank waits for the others to finish the step after a stop signal (env LORY_RANK_STOP_TIMEOUT). */
export function rankStopTimeout(env: NodeJS.ProcessEnv = process.env): number {
  const s = Number(env.LORY_RANK_STOP_TIMEOUT);
  return Number.isFinite(s) && s > 0 ? s : 45;
}

export function joinRanks(): World | undefined {
  const world = joinWorld();
  if (!world) return undefined;
  if (!world.isRoot) {
    log.prefix = `rank ${world.rank}: `;
    if (log.level !== 'debug') log.level = 'error';
  }
  return world;
}

/**
 * After a stop signal, a rank that has not finished within the timeout exits 1 with a line saying so:
 * the other ranks' step never completed (one died, or hangs). The last checkpoint is untouched (written
 * whole or not at all). The timer does not keep the process alive.
 */
export function watchStop(world: World, signal: AbortSignal): void {
  const seconds = rankStopTimeout();
  signal.addEventListener(
    'abort',
    () => {
      setTimeout(() => {
        log.prefix = `rank ${world.rank}: `;
        log.level = 'error';
        log.error(`the ranks did not finish the step within ${seconds} s of the stop signal (another rank died or hangs; mpirun names it); exiting without a new checkpoint — the last one is intact and resumable`);
        process.exit(1);
      }, seconds * 1000).unref();
    },
    { once: true },
  );
}
