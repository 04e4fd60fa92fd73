/** The CLI's logger: levels from --log-level/--quiet, messages to stderr so stdout stays for results. */
export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export class Logger {
  constructor(public level: LogLevel = 'info') {}

  enabled(level: LogLevel): boolean {
    return LOG_LEVELS.indexOf(level) <= LOG_LEVELS.indexOf(this.level);
  }
  error(message: string): void {
    if (this.enabled('error')) process.stderr.write(`error: ${message}\n`);
  }
  warn(message: string): void {
    if (this.enabled('warn')) process.stderr.write(`warning: ${message}\n`);
  }
  info(message: string): void {
    if (this.enabled('info')) process.stderr.write(`${message}\n`);
  }
  debug(message: string): void {
    if (this.enabled('debug')) process.stderr.write(`debug: ${message}\n`);
  }
}

export const log = new Logger();
