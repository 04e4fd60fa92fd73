/**
 * The token store `lory prepare` writes and later stages read. Files:
 *   tokens.bin        every document's tokens followed by EOS, in corpus order (uint16 LE when the
 *                     vocabulary fits, else uint32 LE) — read as is, it is a valid training stream
 *   offsets.bin       uint64 LE, documents + 1 entries: document i is tokens[off[i], off[i+1] - 1),
 *                     and tokens[off[i+1] - 1] is its EOS
 *   text.bin          the documents' UTF-8 text, concatenated (embedding and deduplication read it)
 *   text-offsets.bin  uint64 LE byte offsets into text.bin, documents + 1 entries
 *   documents.jsonl   one JSON object per document: every input field but the text (id, domain, ...)
 *   tokenizer.json    the tokenizer the tokens were made with
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { readManifest, type Manifest } from '../artifacts/index.js';
import { readOffsets, readWholeFile } from './binary.js';

export const TOKEN_STORE_KIND = 'token-store';
export const TOKEN_STORE_VERSION = 1;

export type TokenDtype = 'uint16' | 'uint32';
export type TokenArray = Uint16Array | Uint32Array;

export interface TokenStoreStats {
  documents: number;
  /** Tokens including one EOS per document. */
  tokens: number;
  textBytes: number;
  dtype: TokenDtype;
  vocabSize: number;
  eosToken: string;
  eosId: number;
  /** Documents per `domain` value, when the input has one. */
  domains: Record<string, number>;
  badLines: number;
  emptyDocuments: number;
  tokenizer: 'trained' | 'given';
}

export const FILES = {
  tokens: 'tokens.bin',
  offsets: 'offsets.bin',
  text: 'text.bin',
  textOffsets: 'text-offsets.bin',
  documents: 'documents.jsonl',
  tokenizer: 'tokenizer.json',
} as const;

export function dtypeFor(vocabSize: number): TokenDtype {
  return vocabSize <= 65536 ? 'uint16' : 'uint32';
}

export function tokenArray(dtype: TokenDtype, buffer: ArrayBuffer): TokenArray {
  return dtype === 'uint16' ? new Uint16Array(buffer) : new Uint32Array(buffer);
}

/** Read access to a token store; big files are loaded only when asked for. */
export class TokenStore {
  readonly manifest: Manifest<TokenStoreStats>;
  readonly offsets: Float64Array;
  private tokenCache?: TokenArray;
  private textOffsetCache?: Float64Array;
  private metaCache?: Array<Record<string, unknown>>;

  constructor(readonly dir: string) {
    this.manifest = readManifest<TokenStoreStats>(dir, TOKEN_STORE_KIND, TOKEN_STORE_VERSION);
    this.offsets = readOffsets(join(dir, FILES.offsets));
  }

  get stats(): TokenStoreStats {
    return this.manifest.stats;
  }
  get documentCount(): number {
    return this.offsets.length - 1;
  }
  get tokenizerPath(): string {
    return join(this.dir, FILES.tokenizer);
  }

  /** All tokens (each document followed by its EOS). */
  tokens(): TokenArray {
    this.tokenCache ??= tokenArray(this.stats.dtype, readWholeFile(join(this.dir, FILES.tokens)));
    return this.tokenCache;
  }

  /** Document i's tokens, without its EOS (a view, not a copy). */
  documentTokens(i: number): TokenArray {
    return this.tokens().subarray(this.offsets[i]!, this.offsets[i + 1]! - 1);
  }

  /** Document i's length in tokens, without EOS. */
  documentLength(i: number): number {
    return this.offsets[i + 1]! - this.offsets[i]! - 1;
  }

  private textOffsets(): Float64Array {
    this.textOffsetCache ??= readOffsets(join(this.dir, FILES.textOffsets));
    return this.textOffsetCache;
  }

  /** Texts of documents [start, end), read from disk in one positioned read. */
  texts(start: number, end: number): string[] {
    const offs = this.textOffsets();
    const from = offs[start]!;
    const bytes = Buffer.allocUnsafe(offs[end]! - from);
    const fd = openSync(join(this.dir, FILES.text), 'r');
    try {
      let done = 0;
      while (done < bytes.length) {
        const n = readSync(fd, bytes, done, bytes.length - done, from + done);
        if (n === 0) break;
        done += n;
      }
    } finally {
      closeSync(fd);
    }
    const out: string[] = [];
    for (let i = start; i < end; i++) out.push(bytes.toString('utf8', offs[i]! - from, offs[i + 1]! - from));
    return out;
  }

  text(i: number): string {
    return this.texts(i, i + 1)[0]!;
  }

  /** Per-document metadata (every input field but the text). */
  metadata(): Array<Record<string, unknown>> {
    this.metaCache ??= readFileSync(join(this.dir, FILES.documents), 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    return this.metaCache;
  }

  /** Each document's `domain` as a string, or undefined where it has none. */
  domains(): Array<string | undefined> {
    return this.metadata().map((m) => (typeof m.domain === 'string' ? m.domain : undefined));
  }
}

export function openTokenStore(dir: string): TokenStore {
  return new TokenStore(dir);
}
