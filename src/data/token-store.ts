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
import { InputError, readManifest, type Manifest } from '../artifacts/index.js';
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
  /** The first few bad lines skipped (--skip-bad-lines), as 'file:line: why'. */
  badLineExamples?: string[];
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
    this.checkStructure();
  }

  private damaged(what: string): InputError {
    return new InputError(`${this.dir}: damaged token store: ${what}; rebuild it with \`lory prepare … --force\``);
  }

  /**
   * Damage that keeps file sizes: offsets that are not increasing or point past the tokens, text
   * offsets past the text, counts that disagree with the manifest. O(documents), on every open.
   */
  private checkStructure(): void {
    const s = this.stats;
    if (s.dtype !== 'uint16' && s.dtype !== 'uint32') throw this.damaged(`dtype '${String(s.dtype)}' is neither uint16 nor uint32`);
    const files = this.manifest.files;
    for (const name of Object.values(FILES)) if (!files[name]) throw this.damaged(`the manifest does not list ${name}`);
    const tokenCount = files[FILES.tokens]!.bytes / (s.dtype === 'uint16' ? 2 : 4);
    if (s.documents === 0 && this.offsets.length === 1) throw new InputError(`${this.dir}: the token store holds no documents; nothing to read`);
    if (!Number.isSafeInteger(s.documents) || s.documents < 1 || this.offsets.length !== s.documents + 1) {
      throw this.damaged(`${FILES.offsets} holds ${this.offsets.length} offsets, but the manifest counts ${String(s.documents)} documents`);
    }
    if (s.tokens !== tokenCount) throw this.damaged(`${FILES.tokens} holds ${tokenCount} tokens, but the manifest counts ${String(s.tokens)}`);
    checkOffsets(this.offsets, tokenCount, 1, (why) => this.damaged(`${FILES.offsets}: ${why}`));
    checkOffsets(this.textOffsets(), files[FILES.text]!.bytes, 0, (why) => this.damaged(`${FILES.textOffsets}: ${why}`));
    if (this.textOffsets().length !== this.offsets.length) throw this.damaged(`${FILES.textOffsets} holds ${this.textOffsets().length} offsets, not ${this.offsets.length}`);
  }

  /**
   * The checks that read every token and metadata line (for \`lory verify\`): each document ends
   * with EOS, every id is inside the vocabulary, documents.jsonl has a line per document.
   */
  checkContents(): void {
    const tokens = this.tokens();
    const { eosId } = this.stats;
    for (let i = 0; i < this.documentCount; i++) {
      if (tokens[this.offsets[i + 1]! - 1] !== eosId) throw this.damaged(`document ${i} does not end with EOS (${eosId})`);
    }
    this.checkTokenIds();
    let lines: number;
    try {
      lines = this.metadata().length;
    } catch (error) {
      throw this.damaged(`${FILES.documents}: ${(error as Error).message}`);
    }
    if (lines !== this.documentCount) throw this.damaged(`${FILES.documents} has ${lines} lines for ${this.documentCount} documents`);
  }

  /**
   * Every id inside the vocabulary: one pass over tokens.bin. Readers that feed ids to a model run it
   * on open, since an id past the embedding table fails deep inside ONNX Runtime (a Gather error).
   */
  checkTokenIds(): void {
    const tokens = this.tokens();
    const { vocabSize } = this.stats;
    for (let i = 0; i < tokens.length; i++) {
      if (tokens[i]! >= vocabSize) throw this.damaged(`${FILES.tokens}: token ${i} is ${tokens[i]}, outside the vocabulary of ${vocabSize}`);
    }
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

  textOffsets(): Float64Array {
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
      .map((l, i) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          throw this.damaged(`${FILES.documents}: line ${i + 1} is not JSON`);
        }
      });
    return this.metaCache;
  }

  /** Each document's `domain` as a string, or undefined where it has none. */
  domains(): Array<string | undefined> {
    return this.metadata().map((m) => (typeof m.domain === 'string' ? m.domain : undefined));
  }
}

/** Offsets must start at 0, grow (by at least `minStep`: each document holds its EOS) and end at `end`. */
function checkOffsets(offsets: Float64Array, end: number, minStep: number, damaged: (why: string) => Error): void {
  if (offsets[0] !== 0) throw damaged(`the first offset is ${offsets[0]}, not 0`);
  for (let i = 1; i < offsets.length; i++) {
    const step = offsets[i]! - offsets[i - 1]!;
    if (!(step >= minStep)) throw damaged(`offset ${i} (${offsets[i]}) does not follow offset ${i - 1} (${offsets[i - 1]})`);
  }
  const last = offsets[offsets.length - 1]!;
  if (last !== end) throw damaged(`the last offset is ${last}, but the file holds ${end}`);
}

export function openTokenStore(dir: string): TokenStore {
  return new TokenStore(dir);
}
