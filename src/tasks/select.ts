/**
 * Which candidate items a task keeps, and which documents feed its few-shot pool. Everything is a
 * seeded shuffle, so the same store and seed give the same tasks on every machine.
 *
 * Balance: candidates are taken round-robin over groups (domains), and within a group round-robin
 * over documents, so a long document or a big domain does not fill the task. Pool documents are set
 * apart first, so no scored item shares a document with a few-shot example (a later sentence of the
 * same document would otherwise show the answer in an example's context).
 */
import { createHash } from 'node:crypto';
import { shuffleInPlace } from '../batching/random.js';

export interface Candidate {
  /** Document index in the store. */
  doc: number;
  /** What the task balances over: the document's domain (or language). */
  group: string;
  /** Position in the document (a unit index). */
  at: number;
}

/** A 32-bit seed of its own for each use of the user's seed (task, purpose, document, ...). */
export function subSeed(seed: number, ...parts: Array<string | number>): number {
  return createHash('sha256').update(JSON.stringify([seed, ...parts])).digest().readUInt32LE(0);
}

function byGroupAndDoc<C extends Candidate>(candidates: C[]): Map<string, Map<number, C[]>> {
  const groups = new Map<string, Map<number, C[]>>();
  for (const c of candidates) {
    let docs = groups.get(c.group);
    if (!docs) groups.set(c.group, (docs = new Map()));
    let list = docs.get(c.doc);
    if (!list) docs.set(c.doc, (list = []));
    list.push(c);
  }
  return groups;
}

/** Takes one from each list in turn until all are empty. */
function roundRobin<T>(lists: T[][]): T[] {
  const out: T[] = [];
  const longest = Math.max(0, ...lists.map((l) => l.length));
  for (let i = 0; i < longest; i++) for (const l of lists) if (i < l.length) out.push(l[i]!);
  return out;
}

const sortedKeys = <K extends string | number>(m: Map<K, unknown>) => [...m.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

/** Every candidate, in the order the task takes them: groups in turn, documents in turn, positions shuffled. */
export function balancedOrder<C extends Candidate>(candidates: C[], seed: number, task: string): C[] {
  const groups = byGroupAndDoc(candidates);
  const perGroup = sortedKeys(groups).map((g) => {
    const docs = groups.get(g)!;
    const order = shuffleInPlace(sortedKeys(docs), subSeed(seed, task, 'documents', g));
    return roundRobin(order.map((d) => shuffleInPlace([...docs.get(d)!].sort((a, b) => a.at - b.at), subSeed(seed, task, 'positions', d))));
  });
  return roundRobin(perGroup);
}

/**
 * The documents set apart for the few-shot pool: one of each group first (a group keeps at least
 * one document for scoring), then more in turn until they hold `poolSize` candidates.
 */
export function poolDocuments(candidates: Candidate[], seed: number, task: string, poolSize: number): Set<number> {
  const pool = new Set<number>();
  if (poolSize <= 0) return pool;
  const groups = byGroupAndDoc(candidates);
  const orders = sortedKeys(groups).map((g) => shuffleInPlace(sortedKeys(groups.get(g)!), subSeed(seed, task, 'pool', g)).map((d) => ({ d, n: groups.get(g)!.get(d)!.length })));
  let held = 0;
  for (let round = 0; ; round++) {
    let added = false;
    for (const docs of orders) {
      if (round >= docs.length - 1) continue;
      if (round > 0 && held >= poolSize) return pool;
      pool.add(docs[round]!.d);
      held += docs[round]!.n;
      added = true;
    }
    if (!added || held >= poolSize) return pool;
  }
}
