import { readFileSync, statSync } from 'node:fs';

/**
 * The error every stage throws for input the user must fix (a wrong artifact, a malformed line, a
 * missing file). The CLI maps errors named 'InputError' to one line and exit code 2; this module
 * imports nothing from the CLI, so the class is recognised by name.
 */
export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}

/** Thrown when work was stopped on purpose (Ctrl-C); what was finished is kept for a resume. */
export class InterruptedError extends Error {
  constructor(message = 'interrupted') {
    super(message);
    this.name = 'InterruptedError';
  }
}

/**
 * File-system failures that are the user's environment, not a bug in lory: a full disk, a read-only
 * or forbidden folder, a path through a file. Their Node codes, with the reason in words.
 */
const ENVIRONMENT_REASONS: Record<string, string> = {
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EFBIG: 'file too large for this file system',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EISDIR: 'is a folder, not a file',
  ENAMETOOLONG: 'file name too long',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in the system',
  EIO: 'input/output error',
};

const WRITE_CODES = new Set(['EROFS', 'ENOSPC', 'EDQUOT', 'EFBIG']);
const WRITE_CALLS = new Set(['mkdir', 'rename', 'write', 'unlink', 'rmdir', 'rm', 'copyfile', 'ftruncate', 'symlink', 'link', 'close']);

/**
 * An environment failure as an InputError naming the path and the reason in words (e.g. "work/out:
 * cannot write: read-only file system (EROFS)"); anything else unchanged. `target` names the output
 * when the failing path is one of lory's temporary paths beside it.
 */
export function asEnvironmentError(error: unknown, target?: { out: string; tempPrefix: string }): unknown {
  const e = error as NodeJS.ErrnoException;
  if (!(e instanceof Error) || typeof e.code !== 'string') return error;
  const reason = ENVIRONMENT_REASONS[e.code];
  if (!reason) return error;
  const ours = !e.path || (target !== undefined && e.path.includes(target.tempPrefix));
  const path = ours ? (target?.out ?? '') : e.path!;
  const writing = ours || WRITE_CODES.has(e.code) || WRITE_CALLS.has(e.syscall ?? '');
  return new InputError(`${path}: cannot ${writing ? 'write' : 'read'}: ${reason} (${e.code})`);
}

/**
 * A file the user named that cannot be read, as one line naming it as typed: "not found", "is a
 * folder", or the reason in words (permission denied, ...) — never a bare errno. `expected` says
 * what the file should be ("a pipeline file (YAML)").
 */
export function inputFileError(error: unknown, path: string, expected?: string): InputError {
  const e = error as NodeJS.ErrnoException;
  const hint = expected ? `; expected ${expected}` : '';
  if (e?.code === 'ENOENT') return new InputError(`${path}: not found${hint}`);
  if (e?.code === 'EISDIR') return new InputError(`${path}: is a folder${hint}`);
  const reason = e?.code && ENVIRONMENT_REASONS[e.code] ? `${ENVIRONMENT_REASONS[e.code]} (${e.code})` : (e?.message ?? String(error));
  return new InputError(`${path}: cannot read: ${reason}`);
}

/** Refuses an input that must be a file (an ONNX model, a tokenizer.json) when it is missing or a folder. */
export function checkInputFile(path: string, expected?: string): void {
  let folder: boolean;
  try {
    folder = statSync(path).isDirectory();
  } catch (error) {
    throw inputFileError(error, path, expected);
  }
  if (folder) throw inputFileError(Object.assign(new Error(`${path} is a folder`), { code: 'EISDIR' }), path, expected);
}

/** The file's bytes, or the one-line InputError of inputFileError. */
export function readInputFile(path: string, expected?: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw inputFileError(error, path, expected);
  }
}
