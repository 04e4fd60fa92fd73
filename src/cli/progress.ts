/** Progress on long work: an ora spinner on a terminal, plain log lines otherwise (CI, pipes, --quiet). */
import ora, { type Ora } from 'ora';
import { log } from './log.js';

export interface Progress {
  update(text: string): void;
  succeed(text: string): void;
  fail(text: string): void;
}

export function startProgress(text: string): Progress {
  if (!process.stderr.isTTY || !log.enabled('info')) {
    log.debug(text);
    return {
      update: (t) => log.debug(t),
      succeed: (t) => log.info(t),
      fail: (t) => log.error(t),
    };
  }
  const spinner: Ora = ora({ text, stream: process.stderr }).start();
  return {
    update: (t) => {
      spinner.text = t;
    },
    succeed: (t) => spinner.succeed(t),
    fail: (t) => spinner.fail(t),
  };
}

/** A duration for ETAs: 42s, 3m07s, 1h05m; '?' when unknown. */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}
