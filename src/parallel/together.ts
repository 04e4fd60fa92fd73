/**
 * Setup steps ranks take together: each rank runs the step, then they agree whether all succeeded.
 * When any failed, every rank stops with the same exit code; the first failing rank's message is the
 * one printed (rank 0's own where it failed), and a rank whose error is rank 0's stays quiet — so a bad
 * config gives one line, not one per rank, and a failure on one rank alone cannot leave the others
 * waiting in a collective.
 */
import { createHash } from 'node:crypto';
import { InterruptedError } from '../artifacts/index.js';
import { isUserError } from '../cli/errors.js';
import type { World } from './mpi.js';
import { markAllRanks } from './world.js';

/** Another rank failed; this one stops too. */
export class PeerFailedError extends Error {
  readonly userError: boolean;
  constructor(message: string, readonly exitCode: number) {
    super(message);
    this.name = 'PeerFailedError';
    this.userError = exitCode === 2;
  }
}

const exitCodeOf = (error: unknown) => ((error as Error)?.name === 'InterruptedError' ? 130 : isUserError(error) ? 2 : 1);

const digest = (error: unknown) => createHash('sha256').update(String((error as Error)?.message ?? error)).digest().subarray(0, 8);

export async function together<T>(world: World, step: () => T | Promise<T>): Promise<T> {
  let value: T | undefined;
  let error: unknown;
  let failed = false;
  try {
    value = await step();
  } catch (e) {
    error = e;
    failed = true;
  }
  const codes = new Int32Array(world.size);
  await world.allgather(Int32Array.of(failed ? exitCodeOf(error) : 0), codes);
  if (codes.every((c) => c === 0)) return value as T;
  const digests = new Uint8Array(8 * world.size);
  await world.allgather(failed ? digest(error) : new Uint8Array(8), digests);
  const first = codes.findIndex((c) => c !== 0);
  if (failed) {
    const sameAsFirst = Buffer.compare(Buffer.from(digests.subarray(8 * first, 8 * first + 8)), digest(error)) === 0;
    if (world.rank !== first && sameAsFirst) markAllRanks(error as Error);
    throw error;
  }
  if (codes[first] === 130) {
    // Interrupted elsewhere (each rank saves what it finished): this rank stops as interrupted too.
    throw markAllRanks(new InterruptedError(`stopped: rank ${first} was interrupted`));
  }
  const peer = new PeerFailedError(`rank ${first} of ${world.size} failed (see its message); every rank stops`, codes[first]!);
  // Only rank 0 says so, when it did not fail itself; other ranks that did not fail stay quiet.
  throw world.rank === 0 ? peer : markAllRanks(peer);
}
