/**
 * In-context domain classification: "Text: <snippet>\nDomain:" with one choice per domain of the
 * store. Snippets are whole sentences or lines of a document, up to SNIPPET_CHARS, without blank lines
 * (a few-shot prompt joins its examples with a blank line). The labelled examples are not inlined:
 * items marked fewshot are the pool `lory eval tasks -k` draws the k examples from.
 */
import { assemble, type Built, type BuildSettings } from './assemble.js';
import type { TaskDocument } from './documents.js';
import type { Candidate } from './select.js';

/** A snippet: units [at, end) of a document. */
interface Snippet extends Candidate {
  end: number;
}

export const SNIPPET_CHARS = { min: 40, max: 200 };

/** The store's domains, in name order. */
export function domainNames(docs: TaskDocument[]): string[] {
  return [...new Set(docs.flatMap((d) => (d.domain === undefined ? [] : [d.domain])))].sort();
}

/** Non-overlapping runs of whole units, each as long as fits in `maxChars`: [first unit, end unit). */
function snippetSpans(doc: TaskDocument, maxChars: number): Array<[number, number]> {
  const spans: Array<[number, number]> = [];
  let a = 0;
  while (a < doc.units.length) {
    let b = a;
    while (b < doc.units.length && doc.units[b]!.end - doc.units[a]!.start <= maxChars) b++;
    if (b === a) a++; // a unit longer than a snippet: skipped
    else {
      spans.push([a, b]);
      a = b;
    }
  }
  return spans;
}

export const snippetText = (doc: TaskDocument, [a, b]: [number, number]) => doc.text.slice(doc.units[a]!.start, doc.units[b - 1]!.end).replace(/\n(?:[ \t]*\n)+/g, '\n');

export async function buildDomain(docs: TaskDocument[], s: BuildSettings): Promise<Built> {
  const domains = domainNames(docs);
  if (domains.length < 2) return { skipped: `the store has ${domains.length} domain${domains.length === 1 ? ` (${domains[0]})` : 's'}; classifying needs at least 2` };
  const maxChars = Math.min(SNIPPET_CHARS.max, s.maxContextChars);
  const candidates: Snippet[] = [];
  for (const d of docs) {
    if (d.domain === undefined) continue;
    for (const span of snippetSpans(d, maxChars)) {
      if (snippetText(d, span).length < SNIPPET_CHARS.min) continue;
      candidates.push({ doc: d.index, group: d.domain, at: span[0], end: span[1] });
    }
  }
  const choices = domains.map((name) => ` ${name}`);
  const made = await assemble({
    task: 'domain',
    seed: s.seed,
    items: s.items,
    fewshot: s.fewshot,
    candidates,
    fit: s.fit,
    realise: (c) => {
      const d = docs[c.doc]!;
      return { id: `${d.id}#${c.at}`, contexts: [`Text: ${snippetText(d, [c.at, c.end])}\nDomain:`], choices, gold: domains.indexOf(d.domain!) };
    },
  });
  if (made.scored.length === 0) return { skipped: `no document has a snippet of ${SNIPPET_CHARS.min} to ${maxChars} characters` };
  return {
    task: {
      name: 'domain',
      instruction: `Each text comes from one of these domains: ${domains.join(', ')}.`,
      description:
        `In-context domain classification over the ${domains.length} domains of the held-out store: a snippet of whole sentences or lines ` +
        `(${SNIPPET_CHARS.min} to ${maxChars} characters, blank lines removed) and its document's domain. ` +
        `Items marked fewshot are the labelled examples for k-shot prompts; they come from other documents than the scored ones. Made by lory make-tasks (seed ${s.seed}).`,
      items: [...made.pool, ...made.scored],
    },
    stats: { items: made.scored.length, fewshot: made.pool.length, documents: made.documents, groups: made.groups },
  };
}
