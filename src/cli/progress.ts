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
