/**
 * Token sequences for scoring. The context (the k-shot prompt and the item's context) and the
 * continuation are tokenized separately and concatenated, EOS first:
 *
 *   [EOS, context tokens…, continuation tokens…]
 *
 * so the tokens scored are exactly the continuation's own tokenization, the same for every context
 * (as lm-evaluation-harness does); tokenizing the joined text could merge a token across the
 * boundary and leave no exact place where the continuation starts. The model input is this sequence
 * without its last token; position p predicts token p + 1, and the continuation is scored at the
 * positions from the last context token on. A sequence longer than the window loses tokens from the
 * left (EOS first, then the oldest context).
 */
import { InputError } from '../../artifacts/index.js';
import { encodeMany, type LoadedTokenizer } from '../../data/tokenizer.js';

export interface ScoredSequence {
  /** Model inputs, at most the window. */
  inputs: Int32Array;
  /** Inputs [0, contextLength) are context (what prompt routing decides from). */
  contextLength: number;
  /** The continuation's tokens: the targets of inputs contextLength − 1 … inputs.length − 1. */
  continuation: Int32Array;
  /** Tokens dropped from the left to fit the window. */
  dropped: number;
}

/** The scored sequence of `context` (EOS included) and `continuation` in a window of `window` inputs. */
export function scoredSequence(context: readonly number[], continuation: readonly number[], window: number, where: () => string): ScoredSequence {
  if (continuation.length === 0) throw new InputError(`${where()}: the continuation has no tokens`);
  if (continuation.length > window) throw new InputError(`${where()}: the continuation is ${continuation.length} tokens; the model's window holds ${window} (at least one context token must precede it)`);
  const full = [...context, ...continuation];
  const dropped = Math.max(0, full.length - 1 - window);
  return { inputs: Int32Array.from(full.slice(dropped, full.length - 1)), contextLength: context.length - dropped, continuation: Int32Array.from(continuation), dropped };
}

/** The context a generation starts from: EOS + prompt, cut from the left to leave `room` positions. */
export function generationContext(context: readonly number[], capacity: number, room: number): { context: number[]; dropped: number } {
  const keep = Math.max(1, capacity - room);
  const dropped = Math.max(0, context.length - keep);
  return { context: context.slice(dropped), dropped };
}

/** Token ids of every distinct text in `texts`, tokenized once each. */
export async function tokenizeAll(tok: Pick<LoadedTokenizer, 'tokenizer' | 'piecewise'>, texts: Iterable<string>): Promise<Map<string, number[]>> {
  const distinct = [...new Set(texts)];
  const ids = await encodeMany(tok, distinct);
  return new Map(distinct.map((t, i) => [t, ids[i]!]));
}
