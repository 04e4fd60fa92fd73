/**
 * Tokenizers for the token store: a byte-level BPE trained on the corpus, or any existing
 * tokenizer.json (GPT-2, LLaMA, ...), both run by the Hugging Face `tokenizers` package.
 *
 * Training: the package's Node binding trains with the model's default trainer, whose vocabulary is
 * fixed at 30,000 tokens. BPE merges are learned greedily, so the first k merges of a longer run are
 * exactly the merges of a run stopped at k: lory trains once and keeps the first merges that fit the
 * requested size, and writes the tokenizer.json itself (EOS first, then all 256 byte symbols so any
 * text encodes, then the merges in order).
 */
import { fork } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import tokenizers, { type Tokenizer } from 'tokenizers';
import { InputError } from '../artifacts/index.js';

export const DEFAULT_EOS = '<|endoftext|>';
/** The package's trainer stops at 30,000 tokens (byte symbols included); EOS is added on top. */
export const MAX_TRAINED_VOCAB = 30001;
/** EOS spellings of common tokenizers, tried in order when none is named. */
const EOS_CANDIDATES = ['<|endoftext|>', '</s>', '<|end_of_text|>', '<eos>', '<|im_end|>', '[SEP]'];

export interface LoadedTokenizer {
  tokenizer: Tokenizer;
  eosToken: string;
  eosId: number;
  vocabSize: number;
  /**
   * True when cutting a text before a space that starts a word leaves the tokens unchanged (byte-level
   * BPE with GPT-2's pre-tokenizer and no normalizer: words never span such a space), so a long
   * document can be tokenized in pieces.
   */
  piecewise: boolean;
}

function runChild(script: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = fork(script, args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code === 0) return resolve();
      const reason = stderr.trim().split('\n').pop() ?? '';
      reject(Object.assign(new Error(`BPE training failed (${signal ?? `exit ${code}`}): ${reason}`), osErrorCode(reason, args[args.length - 1]!)));
    });
  });
}

/** The errno a native (Rust) message stands for, so a full disk in the child reads as one, not as a bug. */
function osErrorCode(message: string, path: string): { code?: string; path?: string; syscall?: string } {
  const os = /os error (\d+)/.exec(message)?.[1];
  const code = { '28': 'ENOSPC', '30': 'EROFS', '13': 'EACCES', '122': 'EDQUOT' }[os ?? ''] ?? (/No space left/i.test(message) ? 'ENOSPC' : undefined);
  return code ? { code, path, syscall: 'write' } : {};
}

interface TrainedJson {
  model: { vocab: Record<string, number>; merges: Array<[string, string] | string> };
}

/** Builds a byte-level BPE tokenizer.json from merges in training order. */
export function byteLevelTokenizerJson(merges: Array<[string, string]>, vocabSize: number, eos = DEFAULT_EOS): object {
  const vocab: Record<string, number> = { [eos]: 0 };
  let next = 1;
  for (const symbol of tokenizers.byteLevelAlphabet().sort()) vocab[symbol] = next++;
  const kept: string[] = [];
  for (const [a, b] of merges) {
    if (next >= vocabSize) break;
    if (!(a in vocab) || !(b in vocab)) continue; // cannot happen for a consistent merge list
    const merged = a + b;
    if (merged in vocab) continue;
    vocab[merged] = next++;
    kept.push(`${a} ${b}`);
  }
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [{ id: 0, content: eos, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: null,
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: kept,
    },
  };
}

/** Trains on the text in `textFile` and writes a tokenizer.json of at most `vocabSize` tokens to `outFile`. */
export async function trainByteLevelBpe(textFile: string, outFile: string, vocabSize: number): Promise<void> {
  if (!Number.isInteger(vocabSize) || vocabSize < 258) throw new InputError(`--vocab-size must be an integer of at least 258 (EOS + 256 bytes + 1 merge), got ${vocabSize}`);
  if (vocabSize > MAX_TRAINED_VOCAB) {
    throw new InputError(
      `--vocab-size ${vocabSize} is above ${MAX_TRAINED_VOCAB}, the most the tokenizers package's trainer learns; train a larger vocabulary elsewhere and pass its tokenizer.json with --tokenizer`,
    );
  }
  const rawFile = `${outFile}.trained.json`;
  const here = dirname(fileURLToPath(import.meta.url));
  await runChild(join(here, 'bpe-train-child.js'), [textFile, rawFile]);
  const trained = JSON.parse(readFileSync(rawFile, 'utf8')) as TrainedJson;
  // Sort merges by the id of their result: the trainer numbers tokens in the order it learned them.
  const merges = trained.model.merges
    .map((m) => (typeof m === 'string' ? (m.split(' ') as [string, string]) : m))
    .map((pair) => ({ pair, id: trained.model.vocab[pair[0] + pair[1]] ?? Infinity }))
    .sort((x, y) => x.id - y.id)
    .map((m) => m.pair);
  writeFileSync(outFile, JSON.stringify(byteLevelTokenizerJson(merges, vocabSize)));
  rmSync(rawFile, { force: true });
}

/** Loads a tokenizer.json and finds its end-of-sequence token (named, or a common spelling). */
export function loadTokenizer(path: string, eos?: string): LoadedTokenizer {
  if (!existsSync(path)) throw new InputError(`${path}: tokenizer not found`);
  let tokenizer: Tokenizer;
  try {
    tokenizer = tokenizers.Tokenizer.fromFile(path);
  } catch (error) {
    throw new InputError(`${path}: not a tokenizer.json the tokenizers package can load (${tokenizerLoadReason(error)})`);
  }
  const piecewise = piecewiseSafe(path);
  const candidates = eos !== undefined ? [eos] : EOS_CANDIDATES;
  for (const token of candidates) {
    const id = tokenizer.tokenToId(token);
    if (id !== null && id !== undefined) return { tokenizer, eosToken: token, eosId: id, vocabSize: tokenizer.getVocabSize(true), piecewise };
  }
  throw new InputError(
    eos !== undefined
      ? `${path}: has no token '${eos}' (given with --eos)`
      : `${path}: has none of the usual end-of-sequence tokens (${EOS_CANDIDATES.join(' ')}); name one with --eos`,
  );
}

/** A native error message on one line, whatever its line breaks ("file\nexpected" → "file expected"). */
export function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, ' ').trim();
}

/** The tokenizers package's load error, readable: it runs "Error loading from file" into the reason. */
export function tokenizerLoadReason(error: unknown): string {
  return oneLine(String((error as Error)?.message ?? error)).replace(/^Error loading from file(?=\S)/, 'error loading from file: ');
}

function piecewiseSafe(path: string): boolean {
  try {
    const json = JSON.parse(readFileSync(path, 'utf8')) as { normalizer?: unknown; pre_tokenizer?: { type?: string; add_prefix_space?: boolean; use_regex?: boolean } | null };
    const pre = json.pre_tokenizer;
    return (json.normalizer ?? null) === null && pre?.type === 'ByteLevel' && pre.add_prefix_space === false && pre.use_regex !== false;
  } catch {
    return false;
  }
}

/**
 * Characters of text per piece. The tokenizers package holds about 200 bytes per character of its
 * input while encoding (offsets, token strings, ...): one 8 MB document took 1.6 GB whole.
 */
export const PIECE_CHARS = 1 << 16;

const isSpace = (c: number) => c === 32 || c === 9 || c === 10 || c === 13;

/**
 * Cuts a long text into pieces of about PIECE_CHARS characters, each cut just before a space that
 * starts a word (a space between two non-space characters). A text with no such place in a window
 * stays in one piece there.
 */
export function splitForTokenizing(text: string, pieceChars = PIECE_CHARS): string[] {
  const pieces: string[] = [];
  let start = 0;
  while (text.length - start > pieceChars) {
    let cut = -1;
    for (let i = start + pieceChars; i > start + pieceChars / 2; i--) {
      if (text.charCodeAt(i) === 32 && !isSpace(text.charCodeAt(i - 1)) && i + 1 < text.length && !isSpace(text.charCodeAt(i + 1))) {
        cut = i;
        break;
      }
    }
    if (cut < 0) {
      // No word-starting space in the window: look further ahead rather than cut inside a word.
      cut = text.indexOf(' ', start + pieceChars);
      while (cut > 0 && (isSpace(text.charCodeAt(cut - 1)) || cut + 1 >= text.length || isSpace(text.charCodeAt(cut + 1)))) cut = text.indexOf(' ', cut + 1);
      if (cut < 0) break;
    }
    pieces.push(text.slice(start, cut));
    start = cut;
  }
  pieces.push(text.slice(start));
  return pieces;
}

/**
 * Token ids of many texts (no special tokens: EOS goes between documents, nothing else). Long texts
 * are tokenized in pieces where the tokenizer allows it, and no call sees more than about 2·PIECE_CHARS
 * characters, so memory stays bounded by the pieces, not by the longest document.
 */
export async function encodeMany(loaded: Pick<LoadedTokenizer, 'tokenizer' | 'piecewise'>, texts: string[]): Promise<number[][]> {
  const pieces: string[] = [];
  const owner: number[] = [];
  texts.forEach((text, i) => {
    for (const piece of loaded.piecewise ? splitForTokenizing(text) : [text]) {
      pieces.push(piece);
      owner.push(i);
    }
  });
  const out: number[][] = texts.map(() => []);
  for (let from = 0; from < pieces.length; ) {
    let to = from + 1;
    let chars = pieces[from]!.length;
    while (to < pieces.length && chars + pieces[to]!.length <= 2 * PIECE_CHARS) chars += pieces[to++]!.length;
    const encodings = await loaded.tokenizer.encodeBatch(pieces.slice(from, to), { addSpecialTokens: false });
    encodings.forEach((e, j) => {
      const ids = e.getIds();
      const target = out[owner[from + j]!]!;
      if (target.length === 0) out[owner[from + j]!] = ids;
      else for (const id of ids) target.push(id);
    });
    from = to;
  }
  return out;
}
