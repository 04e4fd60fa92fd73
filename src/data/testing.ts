/** Helpers shared by the data tests: fixture paths and small corpora written on the fly. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../artifacts/index.js';

export const FIXTURE_TRAIN = join(PROJECT_ROOT, 'fixtures', 'corpus', 'train.jsonl');
export const FIXTURE_HELDOUT = join(PROJECT_ROOT, 'fixtures', 'corpus', 'heldout.jsonl');

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `lory-${prefix}-`));
}

export function writeJsonl(path: string, records: unknown[]): string {
  writeFileSync(path, records.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n');
  return path;
}

/**
 * A LLaMA-style tokenizer.json (SentencePiece BPE as the tokenizers package stores it): `▁` for
 * spaces via normalizer, byte fallback for unknown characters, <s> added by the post-processor, </s>
 * as EOS. Tiny vocabulary, real format.
 */
export function llamaStyleTokenizer(path: string): string {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  const pieces = ['▁', 't', 'h', 'e', 'a', 'o', 'n', 'd', 's', 'r', 'l', 'i', 'c', 'w', 'g', 'T', '.', ','];
  const merges: string[] = [];
  let next = 259;
  for (const p of pieces) vocab[p] = next++;
  for (const [a, b] of [['t', 'h'], ['▁', 'th'], ['▁th', 'e'], ['a', 'n'], ['an', 'd'], ['▁', 'and']] as const) {
    vocab[a + b] = next++;
    merges.push(`${a} ${b}`);
  }
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 0 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }],
    },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges },
  };
  writeFileSync(path, JSON.stringify(json));
  return path;
}
