/**
 * The embeddings artifact `lory embed` writes and `lory build-batches` reads:
 *   embeddings.bin  float32 LE, documents × dim, row i = document i of the token store, L2-normalised
 * A shard (`--shard i/n`) holds rows [start, end) of the same store and has kind 'embeddings-shard'.
 * This file imports nothing but artifacts, so readers do not pull in the encoder or the runtime.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { artifactInput, InputError, readManifest, runStage, tryReadManifest, type InputRef, type Manifest } from '../artifacts/index.js';
import { readWholeFile } from '../data/binary.js';

export const EMBEDDINGS_KIND = 'embeddings';
export const EMBEDDINGS_SHARD_KIND = 'embeddings-shard';
export const EMBEDDINGS_VERSION = 1;
export const EMBEDDINGS_FILE = 'embeddings.bin';

export interface EmbeddingsStats {
  documents: number;
  dim: number;
  /** Rows [start, end) of the token store (the whole store unless a shard). */
  start: number;
  end: number;
  shard?: { index: number; count: number };
  encoder: { name: string; maxTokens: number };
  /** The token store's contentHash, so build-batches can check both came from the same store. */
  tokenStore: string;
  seconds?: number;
  documentsPerSecond?: number;
  /** How many shards `lory embed --merge` joined. */
  mergedFrom?: number;
}

export interface Embeddings {
  manifest: Manifest<EmbeddingsStats>;
  vectors: Float32Array;
  dim: number;
  count: number;
}

export function readEmbeddings(dir: string, options: { allowShard?: boolean } = {}): Embeddings {
  const isShard = tryReadManifest(dir)?.kind === EMBEDDINGS_SHARD_KIND;
  if (isShard && !options.allowShard) throw new InputError(`${dir}: is one shard of the embeddings; join all shards first with \`lory embed --merge <shards...> -o <dir>\``);
  const kind = isShard ? EMBEDDINGS_SHARD_KIND : EMBEDDINGS_KIND;
  const manifest = readManifest<EmbeddingsStats>(dir, kind, EMBEDDINGS_VERSION);
  const vectors = new Float32Array(readWholeFile(join(dir, EMBEDDINGS_FILE)));
  const { documents, dim, start, end } = manifest.stats;
  if (!Number.isSafeInteger(documents) || !Number.isSafeInteger(dim) || dim < 1 || end - start !== documents) {
    throw new InputError(`${dir}: damaged embeddings: the manifest counts ${String(documents)} documents of ${String(dim)} dimensions for rows ${String(start)}..${String(end)}; rebuild it with --force`);
  }
  if (vectors.length !== documents * dim) throw new InputError(`${dir}: ${EMBEDDINGS_FILE} holds ${vectors.length} floats, not ${documents}×${dim}; rebuild it with --force`);
  checkUnitRows(dir, vectors, dim);
  return { manifest, vectors, dim, count: documents };
}

/** Every row finite and of unit length: NaN or zeroed rows would poison kNN and every figure after it. */
export function checkUnitRows(dir: string, vectors: Float32Array, dim: number): void {
  for (let row = 0; row * dim < vectors.length; row++) {
    let norm = 0;
    for (let j = row * dim; j < (row + 1) * dim; j++) norm += vectors[j]! * vectors[j]!;
    if (!Number.isFinite(norm) || Math.abs(norm - 1) > 1e-3) {
      const what = Number.isFinite(norm) ? `has length ${Math.sqrt(norm).toPrecision(4)}, not 1` : 'holds a value that is not a finite number';
      throw new InputError(`${dir}: damaged embeddings: row ${row} of ${EMBEDDINGS_FILE} ${what}; rebuild it with \`lory embed … --force\``);
    }
  }
}

/** Writes the embeddings artifact for `vectors` (rows = documents of the token store). */
export async function writeEmbeddingsArtifact(options: {
  out: string;
  tokenStore: { dir: string; manifest: Manifest<unknown>; documentCount: number };
  vectors: Float32Array;
  dim: number;
  encoder: { name: string; maxTokens: number };
  inputs?: InputRef[];
  params?: Record<string, unknown>;
  force?: boolean;
}): Promise<Manifest<EmbeddingsStats>> {
  const documents = options.vectors.length / options.dim;
  const result = await runStage<EmbeddingsStats>({
    out: options.out,
    kind: EMBEDDINGS_KIND,
    formatVersion: EMBEDDINGS_VERSION,
    inputs: options.inputs ?? [artifactInput('tokens', options.tokenStore.dir, options.tokenStore.manifest)],
    params: options.params ?? { encoder: options.encoder },
    force: options.force,
    build: async (dir) => {
      writeFileSync(join(dir, EMBEDDINGS_FILE), new Uint8Array(options.vectors.buffer, options.vectors.byteOffset, options.vectors.byteLength));
      return { documents, dim: options.dim, start: 0, end: documents, encoder: options.encoder, tokenStore: options.tokenStore.manifest.contentHash };
    },
  });
  return result.manifest;
}
