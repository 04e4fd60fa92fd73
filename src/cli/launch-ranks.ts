/**
 * `lory train --ranks N`: the shortcut for `mpirun -np N lory train …` on this machine. mpirun runs in
 * its own process group so that a Ctrl-C reaches it once, through this process, as the signal that
 * lets ranks write their checkpoint (SIGUSR1).
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, realpathSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { InputError } from '../artifacts/index.js';
import { PROJECT_ROOT } from '../runtime/native.js';
import { commandLine } from './commands/train-report.js';

/** Set for the ranks: the command the user typed, which resumes the run. */
export const LAUNCH_COMMAND_ENV = 'LORY_LAUNCH_COMMAND';

/** mpirun on PATH, or undefined. */
export function findMpirun(path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const file = join(dir, 'mpirun');
    try {
      accessSync(file, constants.X_OK);
      // Open MPI takes its prefix from the path it was started by: /bin/mpirun (a merged-/usr symlink) gives "/".
      return realpathSync(file);
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The arguments after `lory`, without `--ranks N` / `--ranks=N`. */
export function withoutRanks(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--ranks') i++;
    else if (!args[i]!.startsWith('--ranks=')) out.push(args[i]!);
  }
  return out;
}

/** The mpirun command line that runs `args` (after `lory`) on `ranks` local ranks. */
export function mpirunArgs(ranks: number, args: string[]): string[] {
  const root = process.getuid?.() === 0 ? ['--allow-run-as-root'] : [];
  return ['-np', String(ranks), '--oversubscribe', ...root, process.execPath, join(PROJECT_ROOT, 'bin', 'lory'), ...withoutRanks(args)];
}

/**
 * Runs the command under mpirun; resolves to mpirun's exit code (130 after a stop). A first Ctrl-C or
 * SIGTERM becomes SIGUSR1, which mpirun forwards to every rank at once and ranks take as "finish the
 * step, checkpoint, exit 130"; mpirun's own Ctrl-C handling would SIGKILL them a second after SIGTERM.
 * A second Ctrl-C aborts the job.
 */
export function launchRanks(ranks: number, args: string[]): Promise<number> {
  const mpirun = findMpirun();
  if (!mpirun) throw new InputError('--ranks needs mpirun (Open MPI), which is not on PATH: install openmpi-bin and libopenmpi-dev (bin/setup does), or start the ranks with your own launcher (srun)');
  return new Promise((resolve) => {
    // Its own process group: a terminal's Ctrl-C reaches this process only, which forwards it once.
    const child = spawn(mpirun, mpirunArgs(ranks, args), { stdio: 'inherit', detached: true, env: { ...process.env, [LAUNCH_COMMAND_ENV]: commandLine() } });
    let stops = 0;
    const stop = () => {
      stops += 1;
      child.kill(stops === 1 ? 'SIGUSR1' : 'SIGTERM');
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    child.on('exit', (code, signal) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve(stops > 0 ? 130 : (code ?? (signal ? 128 + 9 : 1)));
    });
  });
}
