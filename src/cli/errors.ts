/**
 * Errors the CLI maps to exit codes. A UserError is the user's to fix (bad flag, missing file,
 * malformed input): one line, exit 2. Anything else is lory's fault: message, a hint to rerun with
 * --debug for the stack, exit 1. Ctrl-C exits 130 after the command saved what it could.
 */
export const EXIT = { ok: 0, internal: 1, user: 2, interrupted: 130 } as const;

export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}

/** Errors from lower layers that are the user's to fix, by class name (the CLI imports nothing above it). */
const USER_ERROR_NAMES = new Set(['UserError', 'FeedError', 'ConfigError', 'InputError', 'CommanderError']);

export function isUserError(error: unknown): boolean {
  return error instanceof Error && (USER_ERROR_NAMES.has(error.name) || (error as { userError?: boolean }).userError === true);
}
