/** Entry point of the `lory` executable: run the program, map errors to exit codes. */
import { CommanderError, type Command } from 'commander';
import { EXIT, isUserError } from './errors.js';
import { log } from './log.js';
import { guardOutput, outputFailure } from './output.js';
import { applyUsageConventions, buildProgram } from './program.js';
import { currentWorld, raisedOnAllRanks } from '../parallel/world.js';
import { launchFromEnv } from '../parallel/mpi.js';

/**
 * A rank leaves MPI cleanly (MPI_Finalize waits for every rank) when all ranks end alike: success,
 * an interrupt they agreed on, or an error all raised. A rank failing alone just exits: mpirun then
 * ends the job, where MPI_Finalize would wait forever for ranks blocked in a collective.
 */
let endedAlike = false;
function endRanks(code: number): void {
  const world = currentWorld();
  if (world && (code === EXIT.ok || code === EXIT.interrupted || endedAlike)) world.finalize();
}

export async function main(argv: string[]): Promise<number> {
  guardOutput();
  const code = await runProgram(buildProgram(), argv);
  endRanks(code);
  // Results that could not be written are lost: not a success (a closed pipe is the reader's choice, not a failure).
  return code === EXIT.ok && outputFailure() !== undefined ? EXIT.user : code;
}

/** Parses and runs; returns the exit code instead of exiting, so tests can call it. */
export async function runProgram(program: Command, argv: string[]): Promise<number> {
  applyUsageConventions(program);
  const debug = argv.includes('--debug');
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (error) {
    endedAlike = raisedOnAllRanks(error);
    if (error instanceof CommanderError) {
      // --help and --version end here with code 0; usage errors were already printed by commander.
      return error.exitCode === 0 ? EXIT.ok : EXIT.user;
    }
    // An error every rank raised alike is rank 0's to print.
    const rank = currentWorld()?.rank ?? launchFromEnv()?.rank ?? 0;
    const quiet = raisedOnAllRanks(error) && rank !== 0;
    if (isUserError(error)) {
      if (!quiet) log.error((error as Error).message);
      return EXIT.user;
    }
    if (quiet) return EXIT.internal;
    const err = error as Error;
    process.stderr.write(`lory: internal error: ${err?.message ?? String(error)}\n`);
    if (debug) process.stderr.write(`${err?.stack ?? ''}\n`);
    else process.stderr.write('(this is a bug in lory; rerun with --debug to print the stack trace, and report it)\n');
    return EXIT.internal;
  }
}
