/**
 * Training data: the packed instances of `lory build-batches` (train.bin / valid.bin: instances of
 * seqLen+1 tokens back to back), read a micro-batch at a time from disk. Epoch 0 reads the file in
 * order (build-batches already shuffled it with its seed); every later epoch reads a permutation
 * drawn from (seed, epoch), so the cursor {epoch, position} and the seed say exactly what comes next.
 */
import { closeSync, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { InputError, inputPath, readManifest, type Manifest } from '../artifacts/index.js';
import { mulberry32 } from '../random/index.js';
import type { DataCursor } from './checkpoint.js';

export const BATCHES_KIND = 'batches';
export const BATCHES_VERSION = 1;

export interface BatchesInfo {
  dir: string;
  manifest: Manifest<{ seqLen: number; dtype: 'uint16' | 'uint32'; eosId: number; trainInstances: number; validInstances: number; strategy: string }>;
  seqLen: number;
  dtype: 'uint16' | 'uint32';
  /** The token store the batches were packed from (its tokenizer.json travels with checkpoints). */
  tokensDir: string;
}

export function openBatches(dir: string): BatchesInfo {
  const manifest = readManifest<BatchesInfo['manifest']['stats']>(dir, BATCHES_KIND, BATCHES_VERSION);
  const tokens = manifest.inputs.find((i) => i.role === 'tokens');
  if (!tokens) throw new InputError(`${dir}: batches manifest names no token store`);
  const tokensDir = inputPath(dir, tokens);
  if (!existsSync(tokensDir)) {
    throw new InputError(`${dir}: the token store it was built from is not found at ${tokensDir} (its manifest records it as ${tokens.path}, relative to the batches); put it back there or rebuild the batches`);
  }
  return { dir, manifest, seqLen: manifest.stats.seqLen, dtype: manifest.stats.dtype, tokensDir };
}

export interface MicroBatch {
  tokens: BigInt64Array; // [B,S]
  targets: BigInt64Array; // [B,S]
}

/** Fisher–Yates over 0..n-1 from a seeded generator. */
function epochOrder(n: number, seed: number, epoch: number): Uint32Array {
  const p = Uint32Array.from({ length: n }, (_, i) => i);
  if (epoch === 0) return p;
  const rand = mulberry32((Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(epoch, 0x85ebca6b)) >>> 0);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

export class InstanceReader {
  readonly count: number;
  private readonly fd: number;
  private readonly width: number;
  private readonly bytesPer: number;
  private order: Uint32Array;
  private orderEpoch: number;
  private readonly buf: Buffer;

  constructor(
    readonly path: string,
    readonly seqLen: number,
    dtype: 'uint16' | 'uint32',
    private readonly seed: number,
  ) {
    this.width = seqLen + 1;
    this.bytesPer = dtype === 'uint16' ? 2 : 4;
    this.fd = openSync(path, 'r');
    const size = fstatSync(this.fd).size;
    if (size % (this.width * this.bytesPer) !== 0) throw new InputError(`${path}: ${size} bytes is not a whole number of ${this.width}-token instances`);
    this.count = size / (this.width * this.bytesPer);
    this.order = epochOrder(this.count, seed, 0);
    this.orderEpoch = 0;
    this.buf = Buffer.alloc(this.width * this.bytesPer);
  }

  static open(batches: BatchesInfo, which: 'train' | 'valid', seed: number): InstanceReader {
    return new InstanceReader(join(batches.dir, `${which}.bin`), batches.seqLen, batches.dtype, seed);
  }

  /** Instance `index` (file order) into row `row` of tokens/targets. */
  private readInto(index: number, row: number, out: MicroBatch): void {
    readSync(this.fd, this.buf, 0, this.buf.length, index * this.buf.length);
    const S = this.seqLen;
    for (let t = 0; t < S; t++) {
      const a = this.bytesPer === 2 ? this.buf.readUInt16LE(2 * t) : this.buf.readUInt32LE(4 * t);
      const b = this.bytesPer === 2 ? this.buf.readUInt16LE(2 * (t + 1)) : this.buf.readUInt32LE(4 * (t + 1));
      out.tokens[row * S + t] = BigInt(a);
      out.targets[row * S + t] = BigInt(b);
    }
  }

  /** The next `batch` instances from `cursor` (which advances, wrapping into new epochs). */
  next(cursor: DataCursor, batch: number): MicroBatch {
    const out: MicroBatch = { tokens: new BigInt64Array(batch * this.seqLen), targets: new BigInt64Array(batch * this.seqLen) };
    for (let r = 0; r < batch; r++) this.readInto(this.advance(cursor), r, out);
    return out;
  }

  /** Moves `cursor` past the next `batch` instances without reading them (another rank's micro-batch). */
  skip(cursor: DataCursor, batch: number): void {
    for (let r = 0; r < batch; r++) this.advance(cursor);
  }

  /** The file index of the instance at `cursor`, which then moves one on (wrapping into a new epoch). */
  private advance(cursor: DataCursor): number {
    if (cursor.position >= this.count) {
      cursor.epoch += 1;
      cursor.position = 0;
    }
    if (this.orderEpoch !== cursor.epoch) {
      this.order = epochOrder(this.count, this.seed, cursor.epoch);
      this.orderEpoch = cursor.epoch;
    }
    const index = this.order[cursor.position]!;
    cursor.position += 1;
    return index;
  }

  /**
   * Instances [start, start+rows) in file order as a batch of `batch` rows; rows past `rows` are
   * padding whose targets are -100, which the loss ignores.
   */
  slice(start: number, rows: number, batch: number): MicroBatch {
    const out: MicroBatch = { tokens: new BigInt64Array(batch * this.seqLen), targets: new BigInt64Array(batch * this.seqLen).fill(-100n) };
    for (let r = 0; r < Math.min(rows, this.count - start); r++) this.readInto(start + r, r, out);
    return out;
  }

  close(): void {
    closeSync(this.fd);
  }
}
