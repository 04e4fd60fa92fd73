/**
 * Streams documents out of a corpus: JSONL files (one JSON object a line, the text in `text`, every
 * other field kept as metadata), gzip'ed or not, and folders of text files (one document a file).
 * Nothing is read whole, so memory stays bounded however large the corpus is.
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { relative, sep } from 'node:path';
import { pipeline, type Readable } from 'node:stream';
import { createGunzip, gunzipSync } from 'node:zlib';
import { InputError, listFiles } from '../artifacts/index.js';
import { decodeUtf8, type NotUtf8Error } from './utf8.js';

export interface RawDocument {
  text: string;
  /** Every field but the text: id, domain, source, ... */
  meta: Record<string, unknown>;
  /** file:line (or file) the document came from, for messages. */
  origin: string;
}

export interface CorpusOptions {
  /** The JSON field that holds the text. Default 'text'. */
  textField?: string;
  /** Count and skip malformed lines instead of stopping at the first. */
  skipBadLines?: boolean;
}

export interface CorpusCounts {
  files: number;
  badLines: number;
  /** The first few bad lines, as 'file:line: why'. */
  badLineExamples: string[];
  emptyDocuments: number;
}

export const newCounts = (): CorpusCounts => ({ files: 0, badLines: 0, badLineExamples: [], emptyDocuments: 0 });

const isJsonl = (path: string) => /\.jsonl(\.gz)?$/i.test(path);

/** The files a list of inputs stands for, in a fixed order; missing inputs stop here. */
export async function corpusFiles(inputs: string[]): Promise<string[]> {
  const files: string[] = [];
  for (const input of inputs) {
    if (!existsSync(input)) throw new InputError(`${input}: not found`);
    if (statSync(input).isDirectory()) files.push(...(await listFiles(input)));
    else files.push(input);
  }
  return files;
}

function bad(counts: CorpusCounts, options: CorpusOptions, where: string, why: string): void {
  if (!options.skipBadLines) throw new InputError(`${where}: ${why} (use --skip-bad-lines to skip such lines)`);
  counts.badLines++;
  if (counts.badLineExamples.length < 5) counts.badLineExamples.push(`${where}: ${why}`);
}

/** gzip's magic bytes: the content, not the file name, decides whether a file is decompressed. */
async function isGzip(path: string): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    const head = Buffer.alloc(2);
    const { bytesRead } = await handle.read(head, 0, 2, 0);
    return bytesRead === 2 && head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    await handle.close();
  }
}

/**
 * The file's bytes as a stream, gunzipped when they are gzip data. Errors of either stream (a
 * corrupt or truncated gzip, a read failure) reach the reader once, through the returned stream;
 * none is left without a listener when the reader stops early.
 */
async function openBytes(path: string): Promise<Readable> {
  const raw = createReadStream(path, { highWaterMark: 1 << 20 });
  if (!(await isGzip(path))) return raw;
  const gunzip = createGunzip();
  pipeline(raw, gunzip, () => {}); // errors surface on `gunzip`, which the reader iterates
  return gunzip;
}

/** Lines as bytes (without the newline or a CR before it), however long, in order. */
async function* byteLines(stream: Readable): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl !== -1; nl = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, nl);
      const line = pending.length > 0 ? Buffer.concat([...pending, piece]) : piece;
      pending = [];
      start = nl + 1;
      yield line.length > 0 && line[line.length - 1] === 13 ? line.subarray(0, line.length - 1) : line;
    }
    if (start < chunk.length) pending.push(chunk.subarray(start));
  }
  if (pending.length > 0) yield Buffer.concat(pending);
}

/** What a JSON value is, in words ("null", "an array", "number"): typeof says "object" for null. */
function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : typeof value;
}

async function* readJsonl(path: string, options: CorpusOptions, counts: CorpusCounts): AsyncGenerator<RawDocument> {
  const field = options.textField ?? 'text';
  const stream = await openBytes(path);
  let lineNo = 0;
  try {
    for await (const bytes of byteLines(stream)) {
      lineNo++;
      const where = `${path}:${lineNo}`;
      let line: string;
      try {
        line = decodeUtf8(bytes);
      } catch (error) {
        // The same rule as for text files (src/data/utf8.ts): bytes that are not UTF-8 are a bad line, never U+FFFD.
        bad(counts, options, where, `not valid UTF-8 at byte offset ${(error as NotUtf8Error).offset} of the line`);
        continue;
      }
      if (line.trim() === '') continue;
      let record: unknown;
      try {
        record = JSON.parse(line);
      } catch (error) {
        bad(counts, options, where, `malformed JSON (${(error as Error).message})`);
        continue;
      }
      if (!record || typeof record !== 'object' || Array.isArray(record)) {
        bad(counts, options, where, `not a JSON object (${jsonType(record)})`);
        continue;
      }
      const { [field]: text, ...meta } = record as Record<string, unknown>;
      if (text === undefined) {
        bad(counts, options, where, `missing "${field}" field`);
        continue;
      }
      if (typeof text !== 'string') {
        bad(counts, options, where, `"${field}" field is ${jsonType(text)}, not a string`);
        continue;
      }
      if (text.trim() === '') {
        counts.emptyDocuments++;
        continue;
      }
      yield { text, meta, origin: where };
    }
  } catch (error) {
    if (error instanceof InputError) throw error;
    const e = error as NodeJS.ErrnoException;
    if (typeof e.code === 'string' && e.code.startsWith('Z_')) throw new InputError(`${path}:${lineNo + 1}: cannot read: corrupt or truncated gzip data (${e.message})`);
    throw error;
  } finally {
    stream.destroy();
  }
}

async function readTextFile(path: string, root: string | undefined, options: CorpusOptions, counts: CorpusCounts): Promise<RawDocument | undefined> {
  let bytes: Buffer = await readFile(path);
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch (error) {
      throw new InputError(`${path}: cannot read: corrupt or truncated gzip data (${(error as Error).message})`);
    }
  }
  let text: string;
  try {
    text = decodeUtf8(bytes);
  } catch (error) {
    bad(counts, options, path, `not valid UTF-8 text at byte offset ${(error as NotUtf8Error).offset}`);
    return undefined;
  }
  if (text.includes('\0')) {
    bad(counts, options, path, `not text: a NUL byte at byte offset ${bytes.indexOf(0)}`);
    return undefined;
  }
  if (text.trim() === '') {
    counts.emptyDocuments++;
    return undefined;
  }
  const id = root ? relative(root, path).split(sep).join('/') : path;
  const meta: Record<string, unknown> = { id };
  // A file in a subfolder of the input folder takes the subfolder's name as its domain.
  const parts = id.split('/');
  if (root && parts.length > 1) meta.domain = parts[0];
  return { text, meta, origin: path };
}

/** Yields every document of the inputs in order; bad lines stop it (or are counted, with skipBadLines). */
export async function* readCorpus(inputs: string[], options: CorpusOptions = {}, counts: CorpusCounts = newCounts()): AsyncGenerator<RawDocument> {
  for (const input of inputs) {
    if (!existsSync(input)) throw new InputError(`${input}: not found`);
    const isDir = statSync(input).isDirectory();
    const files = isDir ? await listFiles(input) : [input];
    for (const file of files) {
      counts.files++;
      if (isJsonl(file)) yield* readJsonl(file, options, counts);
      else {
        const doc = await readTextFile(file, isDir ? input : undefined, options, counts);
        if (doc) yield doc;
      }
    }
  }
}
