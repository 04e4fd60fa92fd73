/**
 * k-shot prompts (docs/tasks.md): [instruction + "\n\n"] + k solved examples joined by "\n\n", then
 * "\n\n" + the item's context. The examples come from the task's pool — its "fewshot": true items,
 * or when it has none every other item — drawn without replacement by a generator seeded from
 * (seed, task name, item index): the item being scored is never among them, and the same seed gives
 * the same prompts.
 */
import { createHash } from 'node:crypto';
import { InputError } from '../../artifacts/index.js';
import { mulberry32 } from '../../random/index.js';
import { solvedText, type Task } from './types.js';

export const EXAMPLE_SEPARATOR = '\n\n';

/** The generator for one item: the first 4 bytes of sha256(seed, task, index). */
export function itemRandom(seed: number, task: string, index: number): () => number {
  const h = createHash('sha256').update(`${seed}\0${task}\0${index}`).digest();
  return mulberry32(h.readUInt32LE(0));
}

/** Indices of the items that can be examples for item `index`. */
export function poolFor(task: Task, index: number): number[] {
  const marked = task.items.flatMap((it, i) => (it.fewshot ? [i] : []));
  if (marked.length > 0) return marked;
  return task.items.flatMap((_, i) => (i === index ? [] : [i]));
}

/** The k examples (item indices, in draw order) for item `index`: a partial Fisher–Yates shuffle of its pool. */
export function drawExamples(task: Task, index: number, k: number, seed: number): number[] {
  if (k === 0) return [];
  const pool = poolFor(task, index);
  if (pool.length < k) {
    const what = task.items.some((it) => it.fewshot) ? 'items marked "fewshot": true' : 'every other item';
    throw new InputError(`${task.file}: ${k}-shot prompts need ${k} examples, but the few-shot pool of task '${task.name}' holds ${pool.length} (${what}); use a smaller -k`);
  }
  const rand = itemRandom(seed, task.name, index);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rand() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool.slice(0, k);
}

/** The text before an item's context: the instruction and the k solved examples. */
export function promptPrefix(task: Task, examples: number[]): string {
  const parts = [...(task.instruction !== undefined ? [task.instruction] : []), ...examples.map((i) => solvedText(task, i))];
  return parts.length ? parts.join(EXAMPLE_SEPARATOR) + EXAMPLE_SEPARATOR : '';
}

/** The indices of the items that are scored (not in the few-shot pool), capped at `limit`. */
export function scoredItems(task: Task, limit?: number): number[] {
  const all = task.items.flatMap((it, i) => (it.fewshot ? [] : [i]));
  return limit !== undefined ? all.slice(0, limit) : all;
}
