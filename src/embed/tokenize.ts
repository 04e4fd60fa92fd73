/**
 * The encoder's tokenizer: each document is cut to its first N tokens (default 510, as In-Context
 * Pretraining did) plus the encoder's special tokens ([CLS] ... [SEP] for BERT).
 *
 * Only the start of a document matters, and tokenizing a 16 KB document to keep 510 tokens wastes
 * most of the work; so the text is first cut at a whitespace before 12·N characters (a prefix that
 * ends between words tokenizes to a prefix of the full tokenization) and tokenized whole only when
 * the cut text gives fewer than N tokens.
 */
import tokenizers, { type Tokenizer } from 'tokenizers';
import { InputError } from '../artifacts/index.js';
import { tokenizerLoadReason } from '../data/tokenizer.js';

export class EncoderTokenizer {
  private readonly tokenizer: Tokenizer;
  /** Special tokens the post-processor adds around one sequence. */
  readonly specials: number;

  private constructor(
    tokenizer: Tokenizer,
    specials: number,
    readonly maxTokens: number,
    readonly padId: number,
  ) {
    this.tokenizer = tokenizer;
    this.specials = specials;
  }

  static async load(path: string, maxTokens: number): Promise<EncoderTokenizer> {
    let tokenizer: Tokenizer;
    try {
      tokenizer = tokenizers.Tokenizer.fromFile(path);
    } catch (error) {
      throw new InputError(`${path}: not a tokenizer.json the tokenizers package can load (${tokenizerLoadReason(error)})`);
    }
    // Packaged tokenizers often carry their own truncation and padding (MiniLM's: 128, fixed); lory does both itself.
    tokenizer.disablePadding();
    tokenizer.disableTruncation();
    const withSpecials = (await tokenizer.encode('a', null, { addSpecialTokens: true })).getLength();
    const without = (await tokenizer.encode('a', null, { addSpecialTokens: false })).getLength();
    const specials = withSpecials - without;
    // HF truncation counts the special tokens in max_length and keeps them.
    tokenizer.setTruncation(maxTokens + specials);
    const padId = tokenizer.tokenToId('[PAD]') ?? tokenizer.tokenToId('<pad>') ?? 0;
    return new EncoderTokenizer(tokenizer, specials, maxTokens, padId);
  }

  /** Token ids (special tokens included) of each text, truncated to maxTokens + specials. */
  async encode(texts: string[]): Promise<number[][]> {
    const limit = this.maxTokens * 12;
    const cut = texts.map((t) => {
      if (t.length <= limit) return t;
      const space = t.lastIndexOf(' ', limit) > 0 ? Math.max(t.lastIndexOf(' ', limit), t.lastIndexOf('\n', limit)) : t.lastIndexOf('\n', limit);
      return space > 0 ? t.slice(0, space) : t;
    });
    const encodings = await this.tokenizer.encodeBatch(cut, { addSpecialTokens: true });
    const ids = encodings.map((e) => e.getIds());
    const redo = ids.map((_, i) => i).filter((i) => cut[i] !== texts[i] && ids[i]!.length < this.maxTokens + this.specials);
    if (redo.length > 0) {
      const full = await this.tokenizer.encodeBatch(redo.map((i) => texts[i]!), { addSpecialTokens: true });
      redo.forEach((i, j) => (ids[i] = full[j]!.getIds()));
    }
    return ids;
  }
}
