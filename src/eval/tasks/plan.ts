/**
 * What one task at k shots asks of one tokenizer and window: the k-shot prompt of every scored item
 * (fewshot.ts), tokenized, and for multiple choice one scored sequence per option (sequences.ts).
 */
import type { LoadedTokenizer } from '../../data/tokenizer.js';
import { drawExamples, promptPrefix, scoredItems } from './fewshot.js';
import { scoredSequence, tokenizeAll, type ScoredSequence } from './sequences.js';
import type { AnswerTask, ChoiceTask, Task } from './types.js';

export interface ChoicePlan {
  kind: 'multiple_choice';
  task: ChoiceTask;
  shots: number;
  /** Scored items (indices into task.items). */
  items: number[];
  /** One sequence per option of each scored item, item after item. */
  seqs: ScoredSequence[];
  /** Index of each scored item's first sequence. */
  first: number[];
}

export interface AnswerPlan {
  kind: 'generative';
  task: AnswerTask;
  shots: number;
  items: number[];
  /** EOS + the k-shot prompt of each scored item, not yet cut to the model's window. */
  contexts: number[][];
}

export type TaskPlan = ChoicePlan | AnswerPlan;

/** The k-shot prompt prefix of each scored item. */
export function prefixes(task: Task, items: number[], shots: number, seed: number): string[] {
  return items.map((i) => promptPrefix(task, drawExamples(task, i, shots, seed)));
}

export async function planTask(task: Task, o: { shots: number; seed: number; limit?: number }, tok: Pick<LoadedTokenizer, 'tokenizer' | 'piecewise' | 'eosId'>, window: number): Promise<TaskPlan> {
  const items = scoredItems(task, o.limit);
  const pre = prefixes(task, items, o.shots, o.seed);
  if (task.kind === 'generative') {
    const prompts = items.map((i, n) => pre[n]! + task.items[i]!.context);
    const ids = await tokenizeAll(tok, prompts);
    return { kind: 'generative', task, shots: o.shots, items, contexts: prompts.map((p) => [tok.eosId, ...ids.get(p)!]) };
  }
  const texts: string[] = [];
  items.forEach((i, n) => task.items[i]!.options.forEach((opt) => texts.push(pre[n]! + opt.context, opt.continuation)));
  const ids = await tokenizeAll(tok, texts);
  const seqs: ScoredSequence[] = [];
  const first: number[] = [];
  items.forEach((i, n) => {
    const item = task.items[i]!;
    first.push(seqs.length);
    item.options.forEach((opt, j) => {
      const where = () => `${task.file}:${item.line}: choice ${j}`;
      seqs.push(scoredSequence([tok.eosId, ...ids.get(pre[n]! + opt.context)!], ids.get(opt.continuation)!, window, where));
    });
  });
  return { kind: 'multiple_choice', task, shots: o.shots, items, seqs, first };
}
