/**
 * `lory prepare`: corpus → token store. Two streaming passes when a tokenizer is trained (one to
 * collect training text, one to tokenize), one when a tokenizer is given.
 */
import { copyFileSync, existsSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import {
  artifactInput,
  fileInput,
  InputError,
  InterruptedError,
  MANIFEST_FILE,
  readManifest,
  tryReadManifest,
  runStage,
  type InputRef,
  type StageResult,
} from '../artifacts/index.js';
import { BufferedWriter, offsetsBytes } from './binary.js';
import { corpusFiles, newCounts, readCorpus, type CorpusOptions, type RawDocument } from './corpus.js';
import { encodeMany, loadTokenizer, trainByteLevelBpe, type LoadedTokenizer } from './tokenizer.js';
import { dtypeFor, FILES, TOKEN_STORE_KIND, TOKEN_STORE_VERSION, type TokenStoreStats } from './token-store.js';

export interface PrepareOptions {
  /** JSONL files (optionally .gz), text files, or folders of them. */
  inputs: string[];
  out: string;
  /** Train a byte-level BPE of this many tokens (default 8192) ... */
  vocabSize?: number;
  /** ... or use this tokenizer: a token store directory or a tokenizer.json file. */
  tokenizer?: string;
  /** The end-of-sequence token of a given tokenizer (default: found by name). */
  eos?: string;
  textField?: string;
  skipBadLines?: boolean;
  /** At most this much text trains the tokenizer (default 1 GB). */
  maxTrainBytes?: number;
  force?: boolean;
  signal?: AbortSignal;
  onProgress?(p: PrepareProgress): void;
}

export interface PrepareProgress {
  phase: 'hashing' | 'collecting training text' | 'training tokenizer' | 'tokenizing';
  documents: number;
  tokens: number;
  bytes: number;
}

export const DEFAULT_VOCAB_SIZE = 8192;
const BATCH_DOCUMENTS = 256;
/** A batch also ends at this much text, so a run of long documents does not pile up in memory. */
const BATCH_CHARS = 1 << 22;

interface TokenizerSource {
  input: InputRef;
  /** tokenizer.json to copy. */
  file: string;
  eos: string | undefined;
}

async function resolveTokenizer(path: string, eos: string | undefined): Promise<TokenizerSource> {
  if (!existsSync(path)) throw new InputError(`${path}: tokenizer not found (give a token store directory or a tokenizer.json)`);
  let source: TokenizerSource;
  if (statSync(path).isDirectory()) {
    const manifest = readManifest<TokenStoreStats>(path, TOKEN_STORE_KIND, TOKEN_STORE_VERSION);
    source = { input: artifactInput('tokenizer', path, manifest), file: join(path, FILES.tokenizer), eos: eos ?? manifest.stats.eosToken };
  } else {
    source = { input: await fileInput('tokenizer', path), file: path, eos };
  }
  // Checked here, under the user's own path, before anything is copied or written.
  loadTokenizer(source.file, source.eos);
  return source;
}

const inside = (child: string, parent: string) => child === parent || child.startsWith(parent.endsWith(sep) ? parent : parent + sep);

/**
 * A corpus must be a corpus: not the output itself, nor a folder holding it (the next run would
 * read its own previous output), nor a lory artifact (a token store is not text).
 */
async function checkCorpusInputs(inputs: string[], out: string, files: string[]): Promise<void> {
  const target = resolve(out);
  for (const input of inputs) {
    const path = resolve(input);
    if (inside(target, path) || inside(path, target)) {
      throw new InputError(`${input}: the output ${out} is ${inside(target, path) ? 'inside this input' : 'this input or holds it'}; write the token store outside the corpus`);
    }
  }
  for (const file of files) {
    if (basename(file) !== MANIFEST_FILE) continue;
    const manifest = tryReadManifestQuietly(dirname(file));
    if (manifest) throw new InputError(`${dirname(file)}: is a lory ${manifest.kind} artifact, not a corpus; give JSONL or text files`);
  }
}

function tryReadManifestQuietly(dir: string): { kind: string } | undefined {
  try {
    const m = tryReadManifest(dir);
    return m?.tool?.name === 'lory' ? m : undefined;
  } catch {
    return undefined;
  }
}

function checkAbort(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new InterruptedError('prepare interrupted; nothing was written (rerun to start again)');
}

export async function prepare(options: PrepareOptions): Promise<StageResult<TokenStoreStats>> {
  if (options.inputs.length === 0) throw new InputError('no input given: name JSONL files, text files or folders');
  if (options.tokenizer !== undefined && options.vocabSize !== undefined) {
    throw new InputError('give either --vocab-size (train a tokenizer) or --tokenizer (use one), not both');
  }
  const corpus: CorpusOptions = { textField: options.textField ?? 'text', skipBadLines: options.skipBadLines ?? false };
  const progress = (p: PrepareProgress) => options.onProgress?.(p);
  progress({ phase: 'hashing', documents: 0, tokens: 0, bytes: 0 });
  const files = await corpusFiles(options.inputs);
  if (files.length === 0) throw new InputError(`no files in ${options.inputs.join(', ')}: the corpus is empty`);
  await checkCorpusInputs(options.inputs, options.out, files);
  const inputs: InputRef[] = [];
  for (const input of options.inputs) inputs.push(await fileInput('corpus', input));
  const given = options.tokenizer !== undefined ? await resolveTokenizer(options.tokenizer, options.eos) : undefined;
  if (given) inputs.push(given.input);
  const vocabSize = options.vocabSize ?? DEFAULT_VOCAB_SIZE;
  const maxTrainBytes = options.maxTrainBytes ?? 1e9;
  const params = {
    textField: corpus.textField,
    skipBadLines: corpus.skipBadLines,
    tokenizer: given ? { source: 'given', eos: given.eos ?? null } : { source: 'trained', type: 'byte-level-bpe', vocabSize, maxTrainBytes },
  };

  return runStage<TokenStoreStats>({
    out: options.out,
    kind: TOKEN_STORE_KIND,
    formatVersion: TOKEN_STORE_VERSION,
    inputs,
    params,
    force: options.force,
    build: async (dir) => {
      const tokenizerFile = join(dir, FILES.tokenizer);
      if (given) copyFileSync(given.file, tokenizerFile);
      else await trainTokenizer(options.inputs, corpus, dir, tokenizerFile, vocabSize, maxTrainBytes, options.signal, progress);
      const tokenizer = loadTokenizer(tokenizerFile, given ? given.eos : undefined);
      return writeTokens(options.inputs, corpus, dir, tokenizer, given ? 'given' : 'trained', options.signal, progress);
    },
  });
}

async function trainTokenizer(
  inputs: string[],
  corpus: CorpusOptions,
  dir: string,
  tokenizerFile: string,
  vocabSize: number,
  maxTrainBytes: number,
  signal: AbortSignal | undefined,
  progress: (p: PrepareProgress) => void,
): Promise<void> {
  const textFile = join(dir, 'train-text.tmp');
  const writer = new BufferedWriter(textFile);
  let documents = 0;
  const counts = newCounts();
  for await (const doc of readCorpus(inputs, corpus, counts)) {
    if (writer.bytesWritten >= maxTrainBytes) break;
    writer.write(Buffer.from(`${doc.text}\n`, 'utf8'));
    if (++documents % 1000 === 0) {
      checkAbort(signal);
      progress({ phase: 'collecting training text', documents, tokens: 0, bytes: writer.bytesWritten });
    }
  }
  writer.close();
  if (documents === 0) throw emptyCorpus(inputs, counts);
  progress({ phase: 'training tokenizer', documents, tokens: 0, bytes: writer.bytesWritten });
  await trainByteLevelBpe(textFile, tokenizerFile, vocabSize);
  rmSync(textFile, { force: true });
}

function emptyCorpus(inputs: string[], counts: ReturnType<typeof newCounts>): InputError {
  const why = [counts.badLines ? `${counts.badLines} bad lines skipped` : '', counts.emptyDocuments ? `${counts.emptyDocuments} empty documents` : '']
    .filter(Boolean)
    .join(', ');
  return new InputError(`the corpus is empty: no documents with text in ${inputs.join(', ')}${why ? ` (${why})` : ''}`);
}

async function writeTokens(
  inputs: string[],
  corpus: CorpusOptions,
  dir: string,
  loaded: LoadedTokenizer,
  source: 'trained' | 'given',
  signal: AbortSignal | undefined,
  progress: (p: PrepareProgress) => void,
): Promise<TokenStoreStats> {
  const dtype = dtypeFor(loaded.vocabSize);
  const limit = dtype === 'uint16' ? 0xffff : 0xffffffff;
  const tokens = new BufferedWriter(join(dir, FILES.tokens));
  const text = new BufferedWriter(join(dir, FILES.text));
  const documents = new BufferedWriter(join(dir, FILES.documents));
  const offsets: number[] = [0];
  const textOffsets: number[] = [0];
  const domains: Record<string, number> = {};
  const counts = newCounts();
  let tokenCount = 0;

  const flush = async (batch: RawDocument[]) => {
    const ids = await encodeMany(loaded, batch.map((d) => d.text));
    for (let j = 0; j < batch.length; j++) {
      const doc = batch[j]!;
      const docIds = ids[j]!;
      const array = dtype === 'uint16' ? new Uint16Array(docIds.length + 1) : new Uint32Array(docIds.length + 1);
      for (let k = 0; k < docIds.length; k++) {
        const id = docIds[k]!;
        if (id > limit) throw new Error(`token id ${id} does not fit ${dtype} (vocabulary ${loaded.vocabSize})`);
        array[k] = id;
      }
      array[docIds.length] = loaded.eosId;
      tokens.writeTyped(array);
      tokenCount += array.length;
      offsets.push(tokenCount);
      const bytes = Buffer.from(doc.text, 'utf8');
      text.write(bytes);
      textOffsets.push(text.bytesWritten);
      documents.write(Buffer.from(`${JSON.stringify(doc.meta)}\n`, 'utf8'));
      if (typeof doc.meta.domain === 'string') domains[doc.meta.domain] = (domains[doc.meta.domain] ?? 0) + 1;
    }
    checkAbort(signal);
    progress({ phase: 'tokenizing', documents: offsets.length - 1, tokens: tokenCount, bytes: text.bytesWritten });
  };

  let batch: RawDocument[] = [];
  let batchChars = 0;
  for await (const doc of readCorpus(inputs, corpus, counts)) {
    batch.push(doc);
    batchChars += doc.text.length;
    if (batch.length === BATCH_DOCUMENTS || batchChars >= BATCH_CHARS) {
      await flush(batch);
      batch = [];
      batchChars = 0;
    }
  }
  if (batch.length > 0) await flush(batch);
  for (const w of [tokens, text, documents]) w.close();
  if (offsets.length === 1) throw emptyCorpus(inputs, counts);

  const offsetsWriter = new BufferedWriter(join(dir, FILES.offsets));
  offsetsWriter.write(offsetsBytes(offsets));
  offsetsWriter.close();
  const textOffsetsWriter = new BufferedWriter(join(dir, FILES.textOffsets));
  textOffsetsWriter.write(offsetsBytes(textOffsets));
  textOffsetsWriter.close();
  return {
    documents: offsets.length - 1,
    tokens: tokenCount,
    textBytes: text.bytesWritten,
    dtype,
    vocabSize: loaded.vocabSize,
    eosToken: loaded.eosToken,
    eosId: loaded.eosId,
    domains,
    badLines: counts.badLines,
    badLineExamples: counts.badLineExamples,
    emptyDocuments: counts.emptyDocuments,
    tokenizer: source,
  };
}
