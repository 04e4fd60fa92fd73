/**
 * Output into a closed pipe (`lory … | head`). When the reader goes away, a write fails with EPIPE,
 * which Node reports as an 'error' event on the stream: unhandled, a crash with a stack. lory takes
 * it as the reader's choice instead: the rest of the output is dropped, a short command ends as it
 * would have (same exit status), and a long one stops through `outputClosed` as after Ctrl-C
 * (training finishes its step, saves a checkpoint and exits 130; the same command resumes), rather
 * than working on for nobody while the shell waits for it. A closed stderr only drops the messages:
 * results still go to stdout. Any other failure to write stdout (a full disk under `> file`) is one
 * line and exit 2, since the results are lost.
 */
import { asEnvironmentError, InputError } from '../artifacts/errors.js';
import { EXIT } from './errors.js';
import { log } from './log.js';

const closed = new AbortController();

/** Aborted once stdout can no longer be written (its reader went away, or the write failed). */
export const outputClosed: AbortSignal = closed.signal;

let failure: string | undefined;
let guarded = false;

/** Installs the handlers on process.stdout and stderr (once; main() calls it). */
export function guardOutput(): void {
  if (guarded) return;
  guarded = true;
  process.stdout.on('error', onStdoutError);
  process.stderr.on('error', () => {}); // nowhere left to say anything
}

function onStdoutError(error: NodeJS.ErrnoException): void {
  if (error.code !== 'EPIPE' && failure === undefined) {
    const mapped = asEnvironmentError(error, { out: 'stdout', tempPrefix: '' });
    failure = mapped instanceof InputError ? mapped.message : `stdout: cannot write: ${error.message}`;
    log.error(failure);
    // The event may come after main() has returned its code: set the status here too.
    process.exitCode = EXIT.user;
  }
  closed.abort();
}

/** Why stdout failed other than by its reader going away, if it did. */
export function outputFailure(): string | undefined {
  return failure;
}
