/**
 * Generative items: greedy decoding (argmax at every step) with `lory generate`'s decoder and
 * key/value cache, until a stop string appears, EOS, or the token limit. The context is cut from the
 * left so the answer has room in the model's context.
 */
import { InterruptedError } from '../../artifacts/index.js';
import type { LoadedTokenizer } from '../../data/tokenizer.js';
import type { GenerateResult, Generator } from '../../generate/generate.js';
import { cutAtStop } from './metrics.js';
import type { AnswerPlan } from './plan.js';
import { generationContext } from './sequences.js';

export interface GeneratedAnswer {
  /** The decoded answer up to the first stop string. */
  text: string;
  stoppedBy: GenerateResult['stoppedBy'];
  /** Context tokens dropped from the left. */
  dropped: number;
}

const GREEDY = { temperature: 0, topK: 0, topP: 1, seed: 0, stopAtEos: true } as const;

export async function generateAnswers(
  gen: Generator,
  plan: AnswerPlan,
  tok: Pick<LoadedTokenizer, 'tokenizer' | 'eosId'>,
  o: { maxNewTokens: number; signal?: AbortSignal },
  onDone?: (n: number) => void,
): Promise<GeneratedAnswer[]> {
  const decode = (ids: readonly number[]) => tok.tokenizer.decode([...ids], false);
  const out: GeneratedAnswer[] = [];
  for (const [n, i] of plan.items.entries()) {
    const { stop } = plan.task.items[i]!;
    const { context, dropped } = generationContext(plan.contexts[n]!, gen.capacity, o.maxNewTokens);
    const r = await gen.generate(context, tok.eosId, {
      ...GREEDY,
      maxTokens: o.maxNewTokens,
      ...(o.signal ? { signal: o.signal } : {}),
      until: async (tokens) => {
        const text = await decode(tokens);
        return stop.some((s) => text.includes(s));
      },
    });
    if (r.stoppedBy === 'interrupted') throw new InterruptedError('interrupted; nothing was written');
    out.push({ text: cutAtStop(await decode(r.tokens), stop), stoppedBy: r.stoppedBy, dropped });
    onDone?.(1);
  }
  return out;
}
