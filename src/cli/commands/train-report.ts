/** How `lory train` and `lory run` show training: spinner text per step, log lines without a terminal, JSON lines with --json. */
import type { TrainEvent } from '../../train/loop.js';
import { log } from '../log.js';
import { duration, type Progress } from '../progress.js';

const k = (x: number) => (x >= 1000 ? `${(x / 1000).toFixed(1)}k` : x.toFixed(0));

/** A training event handler that keeps an ETA and reports to `progress` (or stdout as JSON). */
export function trainReporter(name: string, progress: Progress, json: boolean): (e: TrainEvent) => void {
  let steps = 0;
  let startStep = 0;
  let started = performance.now();
  let lastLine = 0;
  let validLoss: number | undefined;
  let warmupUntil = 0;
  return (e) => {
    if (json) {
      process.stdout.write(`${JSON.stringify({ run: name, ...e })}\n`);
      return;
    }
    switch (e.type) {
      case 'start':
        steps = e.steps;
        startStep = e.step;
        warmupUntil = e.convertAt;
        started = performance.now();
        if (e.resumedFrom) log.info(`${name}: resuming from ${e.resumedFrom} (step ${e.step} of ${e.steps})`);
        break;
      case 'step': {
        const done = e.step - startStep;
        const eta = ((performance.now() - started) / 1000 / done) * (steps - e.step);
        const text = `${name}: step ${e.step}/${steps} · loss ${e.loss.toFixed(3)}${validLoss !== undefined ? ` · valid ${validLoss.toFixed(3)}` : ''} · ${k(e.tokensPerSecond)} tok/s · MFU ${(100 * e.mfu).toFixed(1)}% · ETA ${duration(eta)}${e.step <= warmupUntil ? ' · dense warm-up' : ''}`;
        if (process.stderr.isTTY) progress.update(text);
        else if (Date.now() - lastLine > 10_000 || e.step === steps) {
          lastLine = Date.now();
          log.info(text);
        }
        break;
      }
      case 'valid':
        validLoss = e.loss;
        if (!process.stderr.isTTY) log.info(`${name}: step ${e.step} validation loss ${e.loss.toFixed(4)}`);
        break;
      case 'convert':
        log.info(`${name}: dense warm-up done at step ${e.step}; converted to ${e.kind} with ${e.experts} experts`);
        break;
      case 'checkpoint':
        log.debug(`${name}: checkpoint ${e.dir}${e.best ? ' (best so far)' : ''}`);
        break;
    }
  };
}

/** The command line again, quoted for a shell, for the "resume with" hint. */
export function commandLine(): string {
  const q = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  return ['lory', ...process.argv.slice(2)].map(q).join(' ');
}

/**
 * SIGTERM stops training like the first Ctrl-C: finish the step, checkpoint, exit 130. A rank under
 * mpirun also takes SIGUSR1, which mpirun forwards to every rank at once (its Ctrl-C does not).
 */
export function withSigterm(signal: AbortSignal, signals: NodeJS.Signals[] = ['SIGTERM']): { signal: AbortSignal; dispose(): void } {
  const term = new AbortController();
  const handler = () => term.abort();
  for (const s of signals) process.on(s, handler);
  return { signal: AbortSignal.any([signal, term.signal]), dispose: () => signals.forEach((s) => process.off(s, handler)) };
}
