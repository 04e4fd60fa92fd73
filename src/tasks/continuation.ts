/**
 * Continuation choice: a document's prefix; its true next sentence (prose) or line (code) against 3
 * from other documents of the same domain, so knowing the domain does not pick the answer.
 */
import { assemble, placeGold, type Built, type BuildSettings, type Draft } from './assemble.js';
import { answerUnit, contextsBefore, hasContext, unitText } from './context.js';
import { drawDistinct, sameText, type Source } from './distractors.js';
import type { TaskDocument } from './documents.js';
import type { Candidate } from './select.js';
import { separatorBefore } from './split.js';
import type { TaskFile } from './task-file.js';

export const DISTRACTORS = 3;

/** Code items see at least 3 lines before the answer; prose items one sentence or line. */
export const minContextUnits = (doc: TaskDocument) => (doc.language ? 3 : 1);

/**
 * The item asking for unit `at` of `d` after its context, against DISTRACTORS distinct texts from
 * `pool` that `accept` lets through (never the gold's text, never a text the context already holds);
 * each choice keeps the gold's separator.
 */
export function nextUnitItem(d: TaskDocument, at: number, pool: Source[], accept: (o: Source) => boolean, maxContextChars: number, rand: () => number): Draft | undefined {
  const gold = unitText(d, at);
  const contexts = contextsBefore(d, at, maxContextChars, minContextUnits(d));
  // A wrong choice already in the context would reward copying, not understanding (code repeats lines).
  const seen = contexts[0] ?? '';
  const others = drawDistinct(pool, DISTRACTORS, rand, (o) => accept(o) && !sameText(o.text, gold) && !seen.includes(o.text.trim()));
  if (!others) return undefined;
  const sep = separatorBefore(d.text, d.units, at);
  return { id: `${d.id}#${at}`, contexts, ...placeGold(sep + gold, others.map((o) => sep + o), rand) };
}

export async function buildContinuation(docs: TaskDocument[], s: BuildSettings): Promise<Built> {
  const labelled = docs.filter((d) => d.domain !== undefined);
  const sources = new Map<string, Source[]>();
  const candidates: Candidate[] = [];
  for (const d of labelled) {
    const list = sources.get(d.domain!) ?? [];
    sources.set(d.domain!, list);
    d.units.forEach((u, j) => {
      if (!answerUnit(d, u)) return;
      list.push({ doc: d.index, text: unitText(d, j) });
      if (hasContext(d, j, s.maxContextChars, minContextUnits(d))) candidates.push({ doc: d.index, group: d.domain!, at: j });
    });
  }
  const made = await assemble({
    task: 'continuation',
    seed: s.seed,
    items: s.items,
    fewshot: s.fewshot,
    candidates,
    fit: s.fit,
    realise: (c, rand) => {
      const d = docs[c.doc]!;
      return nextUnitItem(d, c.at, sources.get(d.domain!)!, (o) => o.doc !== d.index, s.maxContextChars, rand);
    },
  });
  if (made.scored.length === 0) return { skipped: 'no domain has two documents with sentences or lines to draw an item and its distractors from' };
  const task: TaskFile = {
    name: 'continuation',
    description:
      `Continuation choice from held-out text: a document's prefix (up to ${s.maxContextChars} characters, cut on the left at a sentence or line boundary), ` +
      `its true next sentence (prose) or line (code) against ${DISTRACTORS} sentences or lines of other documents of the same domain. ` +
      'Prose is cut into sentences at newlines and after . ! ? followed by a space and a capital letter. ' +
      `Made by lory make-tasks (seed ${s.seed}); items marked fewshot come from other documents than the scored ones.`,
    items: [...made.pool, ...made.scored],
  };
  return { task, stats: { items: made.scored.length, fewshot: made.pool.length, documents: made.documents, groups: made.groups } };
}
