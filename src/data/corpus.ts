/**
 * Streams documents out of a corpus: JSONL files (one JSON object a line, the text in `text`, every
 * other field kept as metadata), gzip'ed or not, and folders of text files (one document a file).
 * Nothing is read whole, so memory stays bounded however large the corpus is.
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { relative, sep } from 'node:path';
import { createInterface } from 'node:readline';
import { createGunzip, gunzipSync } from 'node:zlib';
import { InputError, listFiles } from '../artifacts/index.js';

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

async function* readJsonl(path: string, options: CorpusOptions, counts: CorpusCounts): AsyncGenerator<RawDocument> {
  const field = options.textField ?? 'text';
  const raw = createReadStream(path, { highWaterMark: 1 << 20 });
  const stream = path.toLowerCase().endsWith('.gz') ? raw.pipe(createGunzip()) : raw;
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  let lineNo = 0;
  try {
    for await (const line of lines) {
      lineNo++;
      if (line.trim() === '') continue;
      const where = `${path}:${lineNo}`;
      let record: unknown;
      try {
        record = JSON.parse(line);
      } catch (error) {
        bad(counts, options, where, `malformed JSON (${(error as Error).message})`);
        continue;
      }
      if (!record || typeof record !== 'object' || Array.isArray(record)) {
        bad(counts, options, where, 'not a JSON object');
        continue;
      }
      const { [field]: text, ...meta } = record as Record<string, unknown>;
      if (text === undefined) {
        bad(counts, options, where, `missing "${field}" field`);
        continue;
      }
      if (typeof text !== 'string') {
        bad(counts, options, where, `"${field}" field is ${Array.isArray(text) ? 'an array' : typeof text}, not a string`);
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
    // A truncated or corrupt gzip stream surfaces here.
    throw new InputError(`${path}:${lineNo + 1}: cannot read (${(error as Error).message})`);
  } finally {
    raw.destroy();
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

async function readTextFile(path: string, root: string | undefined, options: CorpusOptions, counts: CorpusCounts): Promise<RawDocument | undefined> {
  let bytes: Buffer = await readFile(path);
  if (path.toLowerCase().endsWith('.gz')) {
    try {
      bytes = gunzipSync(bytes);
    } catch (error) {
      throw new InputError(`${path}: cannot gunzip (${(error as Error).message})`);
    }
  }
  let text: string;
  try {
    text = utf8.decode(bytes);
    if (text.includes('\0')) throw new Error('contains NUL bytes');
  } catch {
    bad(counts, options, path, 'not UTF-8 text');
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
