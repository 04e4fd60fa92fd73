/**
 * The part every task builder shares: set the pool documents apart, walk the candidates in balanced
 * order, turn each into an item (the builder's `realise`), keep those whose context fits the window,
 * until the task has its items.
 */
import { mulberry32 } from '../random/index.js';
import { balancedOrder, poolDocuments, subSeed, type Candidate } from './select.js';
import type { TaskFile, TaskItem } from './task-file.js';

/** What every builder is given. */
export interface BuildSettings {
  seed: number;
  items: number;
  fewshot: number;
  maxContextChars: number;
  fit: Fitter;
}

export interface TaskStats {
  items: number;
  fewshot: number;
  documents: number;
  /** Scored items per domain (per language for code-cloze). */
  groups: Record<string, number>;
}

/** A task, or why it was not made. */
export type Built = { task: TaskFile; stats: TaskStats } | { skipped: string };

/** An item before its context is fitted: the contexts it may take, longest first. */
export interface Draft {
  id: string;
  contexts: string[];
  choices: string[];
  gold: number;
}

/** Picks for each draft the longest context that fits (index into `contexts`), or -1 when none does. */
export type Fitter = (drafts: Draft[]) => Promise<number[]>;

export const fitByCharacters: Fitter = async (drafts) => drafts.map((d) => (d.contexts.length > 0 ? 0 : -1));

export interface AssembleOptions<C extends Candidate> {
  task: string;
  seed: number;
  items: number;
  fewshot: number;
  candidates: C[];
  /** The item for a candidate, drawing any randomness from `rand`; undefined when it cannot be made. */
  realise(candidate: C, rand: () => number): Draft | undefined;
  fit: Fitter;
}

export interface Assembled {
  pool: TaskItem[];
  scored: TaskItem[];
  /** Documents the scored items come from. */
  documents: number;
  /** Scored items per group, groups in name order. */
  groups: Record<string, number>;
}

export async function assemble<C extends Candidate>(o: AssembleOptions<C>): Promise<Assembled> {
  const poolDocs = poolDocuments(o.candidates, o.seed, o.task, o.fewshot);
  const pool = await take(o, balancedOrder(o.candidates.filter((c) => poolDocs.has(c.doc)), o.seed, o.task), o.fewshot);
  const scored = await take(o, balancedOrder(o.candidates.filter((c) => !poolDocs.has(c.doc)), o.seed, o.task), o.items);
  return {
    pool: pool.map(({ item }) => ({ ...item, fewshot: true })),
    scored: scored.map(({ item }) => item),
    documents: new Set(scored.map(({ candidate }) => candidate.doc)).size,
    groups: countGroups(scored.map(({ candidate }) => candidate.group)),
  };
}

function countGroups(groups: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const g of [...groups].sort()) counts[g] = (counts[g] ?? 0) + 1;
  return counts;
}

/** The first `need` candidates (in `order`) that make an item, sorted back into document order. */
async function take<C extends Candidate>(o: AssembleOptions<C>, order: C[], need: number): Promise<Array<{ candidate: C; item: TaskItem }>> {
  const kept: Array<{ candidate: C; item: TaskItem }> = [];
  let next = 0;
  while (kept.length < need && next < order.length) {
    // Each candidate's outcome depends on it alone (its own seed), so the batch size changes nothing.
    const batch = order.slice(next, next + Math.max(16, need - kept.length));
    next += batch.length;
    const made = batch.map((c) => ({ c, draft: o.realise(c, mulberry32(subSeed(o.seed, o.task, 'item', c.doc, c.at))) }));
    const drafts = made.filter((m) => m.draft) as Array<{ c: C; draft: Draft }>;
    const fitted = await o.fit(drafts.map((m) => m.draft));
    drafts.forEach(({ c, draft }, i) => {
      const at = fitted[i]!;
      if (at < 0 || kept.length >= need) return;
      kept.push({ candidate: c, item: { id: draft.id, context: draft.contexts[at]!, choices: draft.choices, gold: draft.gold } });
    });
  }
  return kept.sort((a, b) => a.candidate.doc - b.candidate.doc || a.candidate.at - b.candidate.at);
}

/** Puts `gold` among `others` at a random place; returns the choices and the gold index. */
export function placeGold(gold: string, others: string[], rand: () => number): { choices: string[]; gold: number } {
  const at = Math.floor(rand() * (others.length + 1));
  return { choices: [...others.slice(0, at), gold, ...others.slice(at)], gold: at };
}
