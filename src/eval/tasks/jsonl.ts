/**
 * A task file's lines as JSON objects, each with its line number, and typed field reads that name
 * the file, line and field in one line when the value is missing or of the wrong kind.
 */
import { InputError, readInputFile } from '../../artifacts/index.js';
import { decodeUtf8, type NotUtf8Error } from '../../data/utf8.js';

export interface JsonLine {
  /** 1-based. */
  line: number;
  record: Record<string, unknown>;
}

/** What a JSON value is, in words ("null", "an array", "a number"). */
export function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return `a ${typeof value}`;
}

/** Every non-blank line of `path` parsed as a JSON object (a task file is small enough to hold). */
export function readJsonLines(path: string): JsonLine[] {
  const bytes = readInputFile(path, 'a task file (JSONL)');
  const out: JsonLine[] = [];
  let start = 0;
  for (let line = 1; start <= bytes.length; line++) {
    let end = bytes.indexOf(10, start);
    if (end === -1) end = bytes.length;
    let raw = bytes.subarray(start, end);
    if (raw.length > 0 && raw[raw.length - 1] === 13) raw = raw.subarray(0, raw.length - 1);
    start = end + 1;
    let text: string;
    try {
      text = decodeUtf8(raw);
    } catch (error) {
      throw new InputError(`${path}:${line}: not valid UTF-8 at byte offset ${(error as NotUtf8Error).offset} of the line`);
    }
    if (text.trim() === '') continue;
    let record: unknown;
    try {
      record = JSON.parse(text);
    } catch (error) {
      throw new InputError(`${path}:${line}: malformed JSON (${(error as Error).message})`);
    }
    if (record === null || typeof record !== 'object' || Array.isArray(record)) throw new InputError(`${path}:${line}: is ${jsonType(record)}; expected a JSON object`);
    out.push({ line, record: record as Record<string, unknown> });
  }
  return out;
}

/** Field reads of one line; each failure is `file:line: field 'x' …; expected …`. */
export class Fields {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly record: Record<string, unknown>,
  ) {}

  get where(): string {
    return `${this.file}:${this.line}`;
  }

  fail(field: string, want: string): never {
    const v = this.record[field];
    const shown = JSON.stringify(v) ?? String(v);
    const got = v === undefined ? 'is missing' : `is ${shown.length > 60 ? `${shown.slice(0, 59)}…` : shown}`;
    throw new InputError(`${this.where}: field '${field}' ${got}; expected ${want}`);
  }

  has(field: string): boolean {
    return this.record[field] !== undefined;
  }

  string(field: string, want = 'a string'): string {
    const v = this.record[field];
    if (typeof v !== 'string') this.fail(field, want);
    return v;
  }

  /** A string that is not empty (a continuation must have tokens to score). */
  text(field: string, want = 'a non-empty string'): string {
    const v = this.string(field, want);
    if (v === '') this.fail(field, want);
    return v;
  }

  optionalString(field: string): string | undefined {
    return this.has(field) ? this.string(field) : undefined;
  }

  /** An array of non-empty strings with at least `min` entries. */
  texts(field: string, min: number, want = `an array of ${min} or more non-empty strings`): string[] {
    const v = this.record[field];
    if (!Array.isArray(v) || v.length < min || !v.every((x) => typeof x === 'string' && x !== '')) this.fail(field, want);
    return v as string[];
  }

  /** An integer in [0, n), also accepted as a string of digits (public layouts write "1"). */
  index(field: string, n: number, want: string, base = 0): number {
    const v = this.record[field];
    const k = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
    if (!Number.isInteger(k) || k - base < 0 || k - base >= n) this.fail(field, want);
    return k - base;
  }

  boolean(field: string, want = 'true or false'): boolean {
    const v = this.record[field];
    if (typeof v !== 'boolean') this.fail(field, want);
    return v;
  }

  optionalBoolean(field: string): boolean {
    return this.has(field) ? this.boolean(field) : false;
  }

  optionalId(): string | undefined {
    const v = this.record.id;
    if (v === undefined) return undefined;
    if (typeof v !== 'string' && typeof v !== 'number') this.fail('id', 'a string');
    return String(v);
  }
}
