/**
 * `lory embed`: one unit-length vector per document of a token store, from the document's first N
 * encoder tokens. Work goes in chunks of documents; each finished chunk is a file in the stage's
 * resumable work directory, so an interrupted run (Ctrl-C, a crash, a lost machine) picks up at the
 * first unfinished chunk when the same command runs again. `shard` embeds one slice of the store
 * (for many machines); `mergeEmbeddings` joins the slices.
 */
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { artifactInput, checkInputFile, fileInput, fingerprint, InputError, inputPath, InterruptedError, runStage, toolVersion, tryReadManifest, upToDate, type InputRef, type StageResult } from '../artifacts/index.js';
import { BufferedWriter, readWholeFile } from '../data/binary.js';
import { openTokenStore } from '../data/token-store.js';
import type { Encoder } from './encoder.js';
import { BertEncoder, MINILM_NAME, miniLmFiles } from './minilm.js';
import { OnnxEncoder } from './onnx-encoder.js';
import { EMBEDDINGS_FILE, EMBEDDINGS_KIND, EMBEDDINGS_SHARD_KIND, EMBEDDINGS_VERSION, readEmbeddings, type EmbeddingsStats } from './store.js';
import { EncoderTokenizer } from './tokenize.js';
import { CPU, type Device } from '../runtime/index.js';

export interface Shard {
  index: number;
  count: number;
}

export interface EmbedOptions {
  tokens: string;
  out: string;
  /** An ONNX sentence encoder and its tokenizer.json; default all-MiniLM-L6-v2 built by lory. */
  encoder?: string;
  encoderTokenizer?: string;
  /** Encoder tokens per document, special tokens not counted. Default 510. */
  maxTokens?: number;
  /** Padded tokens per batch. Default 4096. */
  batchTokens?: number;
  threads?: number;
  /** Where the encoder runs (default the CPU); the embeddings do not depend on it beyond float rounding. */
  device?: Device;
  /** Documents per checkpointed chunk. Default 1024. */
  chunkSize?: number;
  shard?: Shard;
  force?: boolean;
  signal?: AbortSignal;
  onProgress?(p: EmbedProgress): void;
  /** Test hook: called after each chunk is saved. */
  onChunk?(start: number, end: number): void;
}

export interface EmbedProgress {
  done: number;
  total: number;
  /** Documents already embedded by an earlier, interrupted run. */
  resumed: number;
  docsPerSecond: number;
  etaSeconds: number;
}

export const DEFAULT_MAX_TOKENS = 510;

export function parseShard(text: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text);
  const index = Number(m?.[1]);
  const count = Number(m?.[2]);
  if (!m || count < 1 || index >= count) throw new InputError(`--shard must be i/n with 0 <= i < n, got '${text}'`);
  return { index, count };
}

export function shardRange(documents: number, shard: Shard | undefined): [number, number] {
  if (!shard) return [0, documents];
  return [Math.floor((shard.index * documents) / shard.count), Math.floor(((shard.index + 1) * documents) / shard.count)];
}

interface EncoderChoice {
  name: string;
  inputs: InputRef[];
  tokenizer: string;
  make(maxSequence: number, padId: number): Promise<Encoder>;
}

async function chooseEncoder(options: EmbedOptions): Promise<EncoderChoice> {
  const runtimeOptions = { threads: options.threads, batchTokens: options.batchTokens, device: options.device ?? CPU };
  if (options.encoder === undefined) {
    if (options.encoderTokenizer !== undefined) throw new InputError('--encoder-tokenizer goes with --encoder');
    const files = await miniLmFiles();
    return {
      name: MINILM_NAME,
      inputs: [await fileInput('encoder', files.weights), await fileInput('encoder-tokenizer', files.tokenizer)],
      tokenizer: files.tokenizer,
      make: async (maxSequence) => BertEncoder.load(files, MINILM_NAME, { ...runtimeOptions, sequenceLimit: maxSequence }),
    };
  }
  if (options.encoderTokenizer === undefined) throw new InputError('--encoder needs --encoder-tokenizer (the tokenizer.json the encoder was trained with)');
  // Both are loaded by path (ONNX Runtime, tokenizers), whose messages for a folder are raw OS text.
  checkInputFile(options.encoder, 'an ONNX model file');
  checkInputFile(options.encoderTokenizer, 'a tokenizer.json');
  const encoderInput = await fileInput('encoder', options.encoder);
  const path = options.encoder;
  return {
    name: `onnx:${encoderInput.hash.slice(0, 12)}`,
    inputs: [encoderInput, await fileInput('encoder-tokenizer', options.encoderTokenizer)],
    tokenizer: options.encoderTokenizer,
    make: (maxSequence, padId) => OnnxEncoder.load(path, `onnx:${encoderInput.hash.slice(0, 12)}`, { ...runtimeOptions, maxSequence, padId }),
  };
}

const CHUNKING_FILE = 'chunking.json';

/**
 * The chunk size of this work directory: an earlier, interrupted run's (so its finished chunks are
 * used whatever --chunk says now), else the one asked for, recorded before any chunk is written.
 */
function resumeChunking(dir: string, requested: number): number {
  const path = join(dir, CHUNKING_FILE);
  if (existsSync(path)) {
    try {
      const recorded = (JSON.parse(readFileSync(path, 'utf8')) as { chunkSize?: unknown }).chunkSize;
      if (typeof recorded === 'number' && Number.isInteger(recorded) && recorded > 0) return recorded;
    } catch {
      // unreadable: start the chunking afresh below
    }
  }
  // Chunks without a record of their chunking cannot be trusted to line up: start over.
  for (const name of readdirSync(dir)) if (name.startsWith('chunk-')) rmSync(join(dir, name));
  return requested;
}

/** What an embeddings artifact is made of (the stage's fingerprint): its kind, inputs and parameters. */
function stageIdentity(options: EmbedOptions, store: ReturnType<typeof openTokenStore>, choice: { name: string; inputs: InputRef[] }, maxTokens: number) {
  return {
    kind: options.shard ? EMBEDDINGS_SHARD_KIND : EMBEDDINGS_KIND,
    formatVersion: EMBEDDINGS_VERSION,
    inputs: [artifactInput('tokens', options.tokens, store.manifest), ...choice.inputs],
    // --chunk is how the work is cut, not what it computes: it stays out of the fingerprint, so changing
    // it neither recomputes a finished artifact nor loses a resumable run (which keeps its own chunking).
    params: { encoder: choice.name, maxTokens, shard: options.shard ?? null },
  };
}

/** Whether `options.out` already holds what `embed(options)` would write (merged shards included). */
export async function embeddingsUpToDate(options: EmbedOptions): Promise<boolean> {
  const store = openTokenStore(options.tokens);
  const identity = stageIdentity(options, store, await chooseEncoder(options), options.maxTokens ?? DEFAULT_MAX_TOKENS);
  return upToDate(resolve(options.out), fingerprint({ ...identity, tool: { name: 'lory', version: toolVersion() } })) !== undefined;
}

const chunkName = (start: number, end: number) => `chunk-${String(start).padStart(12, '0')}-${String(end).padStart(12, '0')}.f32`;

export async function embed(options: EmbedOptions): Promise<StageResult<EmbeddingsStats>> {
  const store = openTokenStore(options.tokens);
  const maxTokens = options.maxTokens ?? DEFAULT_MAX_TOKENS;
  if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new InputError(`--max-tokens must be a positive integer, got ${maxTokens}`);
  const requestedChunk = options.chunkSize ?? 1024;
  if (!Number.isInteger(requestedChunk) || requestedChunk < 1) throw new InputError(`--chunk must be a positive integer, got ${requestedChunk}`);
  const choice = await chooseEncoder(options);
  const [start, end] = shardRange(store.documentCount, options.shard);

  return runStage<EmbeddingsStats>({
    out: options.out,
    ...stageIdentity(options, store, choice, maxTokens),
    force: options.force,
    resumable: true,
    build: async (dir) => {
      const tokenizer = await EncoderTokenizer.load(choice.tokenizer, maxTokens);
      const encoder = await choice.make(maxTokens + tokenizer.specials, tokenizer.padId);
      try {
        if (maxTokens + tokenizer.specials > encoder.maxSequence) {
          throw new InputError(`--max-tokens ${maxTokens} (+${tokenizer.specials} special) exceeds the ${encoder.maxSequence} tokens the encoder takes`);
        }
        const dim = encoder.dim;
        const chunkSize = resumeChunking(dir, requestedChunk);
        const chunks: Array<[number, number]> = [];
        for (let s = start; s < end; s += chunkSize) chunks.push([s, Math.min(end, s + chunkSize)]);
        const finished = (c: [number, number]) => {
          const path = join(dir, chunkName(...c));
          return existsSync(path) && statSync(path).size === (c[1] - c[0]) * dim * 4;
        };
        const resumed = chunks.filter(finished).reduce((a, [s, e]) => a + e - s, 0);
        const total = end - start;
        let done = resumed;
        let saved = resumed;
        const began = performance.now();
        const report = () => {
          const seconds = (performance.now() - began) / 1000;
          const rate = seconds > 0 ? (done - resumed) / seconds : 0;
          options.onProgress?.({ done, total, resumed, docsPerSecond: rate, etaSeconds: rate > 0 ? (total - done) / rate : Infinity });
        };
        report();
        for (const chunk of chunks) {
          if (finished(chunk)) continue;
          if (options.signal?.aborted) throw interrupted(saved, total);
          const [s, e] = chunk;
          const ids = await tokenizer.encode(store.texts(s, e));
          const vectors = new Float32Array((e - s) * dim);
          await encoder.embed(ids, vectors, (n) => {
            done += n;
            report();
            // Stop between batches: the unfinished chunk is dropped, finished ones stay.
            if (options.signal?.aborted) throw interrupted(saved, total);
          });
          // Written under a temporary name and renamed: a chunk file is either whole or absent.
          const path = join(dir, chunkName(s, e));
          if (!existsSync(join(dir, CHUNKING_FILE))) writeFileSync(join(dir, CHUNKING_FILE), JSON.stringify({ chunkSize }));
          writeFileSync(`${path}.tmp`, new Uint8Array(vectors.buffer));
          renameSync(`${path}.tmp`, path);
          saved += e - s;
          options.onChunk?.(s, e);
        }
        if (options.signal?.aborted) throw interrupted(saved, total);
        const writer = new BufferedWriter(join(dir, EMBEDDINGS_FILE));
        for (const c of chunks) writer.write(new Uint8Array(readWholeFile(join(dir, chunkName(...c)))));
        writer.close();
        for (const name of readdirSync(dir)) if (name.startsWith('chunk-') || name === CHUNKING_FILE) rmSync(join(dir, name));
        const seconds = (performance.now() - began) / 1000;
        return {
          documents: total,
          dim,
          start,
          end,
          ...(options.shard ? { shard: options.shard } : {}),
          encoder: { name: choice.name, maxTokens },
          tokenStore: store.manifest.contentHash,
          seconds: Number(seconds.toFixed(2)),
          documentsPerSecond: Number(((total - resumed) / Math.max(seconds, 1e-9)).toFixed(2)),
        };
      } finally {
        encoder.dispose();
      }
    },
  });
}

function interrupted(saved: number, total: number): InterruptedError {
  return new InterruptedError(`embedding interrupted with ${saved.toLocaleString('en')} of ${total.toLocaleString('en')} documents saved; run the same command again to resume`);
}

/** Joins shards of one token store, made with the same encoder settings, into one embeddings artifact. */
export async function mergeEmbeddings(shards: string[], out: string, force = false): Promise<StageResult<EmbeddingsStats>> {
  if (shards.length === 0) throw new InputError('--merge needs the shard directories');
  const parts = shards.map((dir) => {
    const kind = tryReadManifest(dir)?.kind;
    if (kind === EMBEDDINGS_KIND) throw new InputError(`${dir}: is whole embeddings, not a shard; --merge joins the shards made with --shard i/n`);
    return { dir, ...readEmbeddings(dir, { allowShard: true }) };
  });
  if (parts.some((p) => p.manifest.kind !== EMBEDDINGS_SHARD_KIND)) throw new InputError('--merge joins shards made with `lory embed --shard i/n`');
  const seen = new Set<string>();
  for (const p of parts) {
    const id = `${p.manifest.stats.shard?.index}/${p.manifest.stats.shard?.count}`;
    if (seen.has(id)) throw new InputError(`${p.dir}: shard ${id} is given twice`);
    seen.add(id);
  }
  const { manifest: first, dir: firstDir } = parts[0]!;
  const count = first.stats.shard?.count ?? 1;
  for (const p of parts) {
    const s = p.manifest.stats;
    if (s.tokenStore !== first.stats.tokenStore) throw new InputError(`${p.dir}: is a shard of another token store than ${parts[0]!.dir}`);
    if (s.encoder.name !== first.stats.encoder.name || s.encoder.maxTokens !== first.stats.encoder.maxTokens || s.dim !== first.stats.dim) {
      throw new InputError(`${p.dir}: was made with other encoder settings than ${parts[0]!.dir}`);
    }
    if ((s.shard?.count ?? 1) !== count) throw new InputError(`${p.dir}: is shard ${s.shard?.index}/${s.shard?.count}, but ${parts[0]!.dir} is one of ${count}`);
  }
  if (parts.length !== count) throw new InputError(`the embeddings were cut into ${count} shards, but ${parts.length} were given`);
  parts.sort((a, b) => a.manifest.stats.start - b.manifest.stats.start);
  let at = 0;
  for (const p of parts) {
    if (p.manifest.stats.start !== at) throw new InputError(`shards do not join up: documents ${at}..${p.manifest.stats.start} are ${p.manifest.stats.start > at ? 'missing' : 'in two shards'} (${p.dir})`);
    at = p.manifest.stats.end;
  }
  const total = at;
  return runStage<EmbeddingsStats>({
    out,
    kind: EMBEDDINGS_KIND,
    formatVersion: EMBEDDINGS_VERSION,
    // Same inputs and params as an unsharded run, so both are interchangeable downstream.
    inputs: first.inputs.map((i) => ({ ...i, path: inputPath(firstDir, i) })),
    params: { ...(first.params as Record<string, unknown>), shard: null },
    force,
    build: async (dir) => {
      const writer = new BufferedWriter(join(dir, EMBEDDINGS_FILE));
      for (const p of parts) writer.writeTyped(p.vectors);
      writer.close();
      return {
        documents: total,
        dim: first.stats.dim,
        start: 0,
        end: total,
        encoder: first.stats.encoder,
        tokenStore: first.stats.tokenStore,
        mergedFrom: parts.length,
      };
    },
  });
}
