/**
 * Code line cloze: the lines of a Go or Python file before a line, then that line against 3 other
 * lines of the same file (not blank, not the same text), so only the code's sense tells them apart.
 */
import { assemble, type Built, type BuildSettings } from './assemble.js';
import { answerUnit, hasContext, unitText } from './context.js';
import { DISTRACTORS, minContextUnits, nextUnitItem } from './continuation.js';
import type { Source } from './distractors.js';
import type { TaskDocument } from './documents.js';
import type { Candidate } from './select.js';

export async function buildCodeCloze(docs: TaskDocument[], s: BuildSettings): Promise<Built> {
  const code = docs.filter((d) => d.language);
  if (code.length === 0) return { skipped: 'no Go or Python files (a `language` field go/python, a domain code_go/code_python, or an id ending in .go/.py)' };
  const lines = new Map<number, Source[]>();
  const candidates: Candidate[] = [];
  for (const d of code) {
    const fit = d.units.flatMap((u, j) => (answerUnit(d, u) ? [j] : []));
    lines.set(d.index, fit.map((j) => ({ doc: d.index, text: unitText(d, j) })));
    for (const j of fit) if (hasContext(d, j, s.maxContextChars, minContextUnits(d))) candidates.push({ doc: d.index, group: d.language!, at: j });
  }
  const made = await assemble({
    task: 'code-cloze',
    seed: s.seed,
    items: s.items,
    fewshot: s.fewshot,
    candidates,
    fit: s.fit,
    realise: (c, rand) => nextUnitItem(docs[c.doc]!, c.at, lines.get(c.doc)!, () => true, s.maxContextChars, rand),
  });
  if (made.scored.length === 0) return { skipped: `no code file has a line with ${minContextUnits(code[0]!)} lines before it and ${DISTRACTORS} other distinct lines` };
  return {
    task: {
      name: 'code-cloze',
      description:
        `Code line cloze on held-out Go and Python files: the file's lines before a line (up to ${s.maxContextChars} characters, at least 3 lines, cut on the left at a line boundary), ` +
        `then that line against ${DISTRACTORS} other non-blank lines of the same file with different text, none of them already in the context. Made by lory make-tasks (seed ${s.seed}); ` +
        'items marked fewshot come from other files than the scored ones.',
      items: [...made.pool, ...made.scored],
    },
    stats: { items: made.scored.length, fewshot: made.pool.length, documents: made.documents, groups: made.groups },
  };
}
