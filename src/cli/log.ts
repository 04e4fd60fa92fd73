/** The CLI's logger: levels from --log-level/--quiet, messages to stderr so stdout stays for results. */
export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export class Logger {
  /** Put before every line (a rank of a multi-process run names itself: "rank 1: "). */
  prefix = '';
  constructor(public level: LogLevel = 'info') {}

  enabled(level: LogLevel): boolean {
    return LOG_LEVELS.indexOf(level) <= LOG_LEVELS.indexOf(this.level);
  }
  error(message: string): void {
    if (this.enabled('error')) process.stderr.write(`${this.prefix}error: ${message}\n`);
  }
  warn(message: string): void {
    if (this.enabled('warn')) process.stderr.write(`${this.prefix}warning: ${message}\n`);
  }
  info(message: string): void {
    if (this.enabled('info')) process.stderr.write(`${this.prefix}${message}\n`);
  }
  debug(message: string): void {
    if (this.enabled('debug')) process.stderr.write(`${this.prefix}debug: ${message}\n`);
  }
}

export const log = new Logger();
