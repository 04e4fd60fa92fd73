/**
 * The frame every long stage command shares: a progress display, Ctrl-C wired to an AbortSignal
 * (first press stops at the next checkpoint, second exits) and so is a closed stdout (its reader went
 * away: src/cli/output.ts), and the ending — an interrupted stage
 * exits 130 with its message; any other error closes a live spinner and goes on to the CLI's error
 * mapping, which prints it once.
 */
import { interruptOnSigint } from '../artifacts/index.js';
import { EXIT } from './errors.js';
import { log } from './log.js';
import { outputClosed } from './output.js';
import { startProgress, type Progress } from './progress.js';

export interface StageCommandOptions {
  /** Command name, for the "<name> stopped" line. */
  name: string;
  /** The progress text before the stage reports anything. */
  startText: string;
  /** What the first Ctrl-C prints while the stage winds down. */
  interruptText?: string;
  /** No progress display (a rank other than 0 of a multi-process run: rank 0 shows it). */
  quiet?: boolean;
}

const silent: Progress = { update: () => undefined, succeed: () => undefined, fail: () => undefined };

export async function runStageCommand(options: StageCommandOptions, body: (progress: Progress, signal: AbortSignal) => Promise<void>): Promise<void> {
  const progress = options.quiet ? silent : startProgress(options.startText);
  const interrupt = interruptOnSigint(() => progress.update(options.interruptText ?? 'interrupted; stopping (Ctrl-C again to exit now)'));
  // Nobody reads the results any more (`lory train --json | head -1`): stop as after Ctrl-C (src/cli/output.ts).
  const onClosed = () => {
    const text = `stdout was closed (its reader went away); ${options.name} stops as after Ctrl-C`;
    if (process.stderr.isTTY) progress.update(text);
    else log.warn(text);
  };
  outputClosed.addEventListener('abort', onClosed, { once: true });
  try {
    await body(progress, AbortSignal.any([interrupt.signal, outputClosed]));
  } catch (error) {
    if ((error as Error).name === 'InterruptedError') {
      progress.fail((error as Error).message);
      process.exitCode = EXIT.interrupted;
      return;
    }
    if (process.stderr.isTTY) progress.fail(`${options.name} stopped`);
    throw error;
  } finally {
    outputClosed.removeEventListener('abort', onClosed);
    interrupt.dispose();
  }
}
