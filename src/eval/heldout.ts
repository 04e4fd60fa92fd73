/**
 * A held-out token store opened for evaluation: checked against a checkpoint's tokenizer, its
 * documents grouped by a metadata field (one row per value), their UTF-8 byte counts.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../artifacts/index.js';
import { FILES, openTokenStore, type TokenStore } from '../data/token-store.js';
import { readOffsets } from '../data/binary.js';

export interface HeldOut {
  store: TokenStore;
  dir: string;
  /** The metadata field rows are split by, or null for one row. */
  by: string | null;
  /** Row name per document. */
  labels: string[];
  /** Row names in order of first appearance. */
  rows: string[];
  /** UTF-8 bytes of each document's text. */
  bytes: Float64Array;
  eosId: number;
  tokenizerHash: string;
}

export const ALL_ROW = 'all';

/** sha256 of a token store's tokenizer.json (the same hash a checkpoint records for its copy). */
export function storeTokenizerHash(dir: string): string {
  return createHash('sha256').update(readFileSync(join(dir, FILES.tokenizer))).digest('hex');
}

export function openHeldOut(dir: string, by: string | null): HeldOut {
  const store = openTokenStore(dir);
  const n = store.documentCount;
  if (n === 0) throw new InputError(`${dir}: the token store holds no documents; nothing to evaluate`);
  store.checkTokenIds();
  const labels: string[] = [];
  if (by === null) labels.push(...Array<string>(n).fill(ALL_ROW));
  else {
    const meta = store.metadata();
    for (let i = 0; i < n; i++) {
      const v = meta[i]?.[by];
      if (typeof v !== 'string' && typeof v !== 'number') {
        throw new InputError(
          `${join(dir, FILES.documents)}: line ${i + 1} has no '${by}' field${v === undefined ? '' : ` (it is ${JSON.stringify(v)}, expected a string)`}; split by another field with --by <field>, or use --by none`,
        );
      }
      labels.push(String(v));
    }
  }
  const textOffsets = readOffsets(join(dir, FILES.textOffsets));
  const bytes = new Float64Array(n);
  for (let i = 0; i < n; i++) bytes[i] = textOffsets[i + 1]! - textOffsets[i]!;
  return { store, dir, by, labels, rows: [...new Set(labels)], bytes, eosId: store.stats.eosId, tokenizerHash: storeTokenizerHash(dir) };
}

/** Refuse a store made with another tokenizer than the checkpoint's. */
export function checkTokenizer(h: HeldOut, checkpoint: { dir: string; tokenizerHash: string; model: { vocabSize: number } }): void {
  if (h.tokenizerHash !== checkpoint.tokenizerHash) {
    throw new InputError(
      `${h.dir}: made with another tokenizer than ${checkpoint.dir} (tokenizer.json sha256 ${h.tokenizerHash.slice(0, 12)}… vs ${checkpoint.tokenizerHash.slice(0, 12)}…); prepare it with --tokenizer <the training store>`,
    );
  }
  if (h.store.stats.vocabSize > checkpoint.model.vocabSize) {
    throw new InputError(`${h.dir}: vocabulary ${h.store.stats.vocabSize} is larger than the model's (${checkpoint.model.vocabSize})`);
  }
}
