/**
 * The frame every long stage command shares: a progress display, Ctrl-C wired to an AbortSignal
 * (first press stops at the next checkpoint, second exits), and the ending — an interrupted stage
 * exits 130 with its message; any other error closes a live spinner and goes on to the CLI's error
 * mapping, which prints it once.
 */
import { interruptOnSigint } from '../artifacts/index.js';
import { EXIT } from './errors.js';
import { startProgress, type Progress } from './progress.js';

export interface StageCommandOptions {
  /** Command name, for the "<name> stopped" line. */
  name: string;
  /** The progress text before the stage reports anything. */
  startText: string;
  /** What the first Ctrl-C prints while the stage winds down. */
  interruptText?: string;
}

export async function runStageCommand(options: StageCommandOptions, body: (progress: Progress, signal: AbortSignal) => Promise<void>): Promise<void> {
  const progress = startProgress(options.startText);
  const interrupt = interruptOnSigint(() => progress.update(options.interruptText ?? 'interrupted; stopping (Ctrl-C again to exit now)'));
  try {
    await body(progress, interrupt.signal);
  } catch (error) {
    if ((error as Error).name === 'InterruptedError') {
      progress.fail((error as Error).message);
      process.exitCode = EXIT.interrupted;
      return;
    }
    if (process.stderr.isTTY) progress.fail(`${options.name} stopped`);
    throw error;
  } finally {
    interrupt.dispose();
  }
}
