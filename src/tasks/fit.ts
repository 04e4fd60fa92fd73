/**
 * Fitting contexts to a model's window in tokens (--max-context-tokens): the longest context whose
 * tokens, plus those of the item's longest choice, stay within the budget. Counted with the store's
 * own tokenizer, so the budget means what the model will read.
 */
import { encodeMany, type LoadedTokenizer } from '../data/tokenizer.js';
import type { Draft, Fitter } from './assemble.js';

export function fitByTokens(loaded: LoadedTokenizer, maxTokens: number): Fitter {
  const count = async (texts: string[]) => (await encodeMany(loaded, texts)).map((ids) => ids.length);
  return async (drafts: Draft[]) => {
    const choiceCounts = await count(drafts.flatMap((d) => d.choices));
    let offset = 0;
    const budget = drafts.map((d) => {
      const longest = Math.max(...choiceCounts.slice(offset, offset + d.choices.length));
      offset += d.choices.length;
      return maxTokens - longest;
    });
    const picked = drafts.map(() => -1);
    // Shorter contexts are tried only for the drafts whose longer one did not fit, a round at a time.
    let trying = drafts.map((d, i) => ({ i, at: 0 })).filter(({ i }) => drafts[i]!.contexts.length > 0);
    while (trying.length > 0) {
      const counts = await count(trying.map(({ i, at }) => drafts[i]!.contexts[at]!));
      trying = trying.filter(({ i, at }, k) => {
        if (counts[k]! <= budget[i]!) picked[i] = at;
        return picked[i]! < 0 && at + 1 < drafts[i]!.contexts.length;
      }).map(({ i, at }) => ({ i, at: at + 1 }));
    }
    return picked;
  };
}
