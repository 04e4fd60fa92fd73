/**
 * The contexts an item may take, and which units are fit to be answers. A context is the document's
 * text from the start of some unit up to the end of the unit before the answer: it is cut on the left
 * at a sentence or line boundary, never inside one, and holds at least `minUnits` units.
 */
import type { TaskDocument } from './documents.js';
import type { Unit } from './split.js';

/** Prose answers and distractors: whole sentences or lines of this many characters. */
export const PROSE_CHARS = { min: 20, max: 300 };
/** Code answers and distractors: lines with this many non-space characters, at most `max` long. */
export const CODE_CHARS = { min: 4, max: 200 };

/** A unit that makes a fair answer: not a fragment ("n.", "}") and not so long it fills the window. */
export function answerUnit(doc: TaskDocument, unit: Unit): boolean {
  const text = doc.text.slice(unit.start, unit.end);
  if (doc.language) return text.replace(/\s/g, '').length >= CODE_CHARS.min && text.length <= CODE_CHARS.max;
  return text.length >= PROSE_CHARS.min && text.length <= PROSE_CHARS.max;
}

/** Every context before unit `j` of at most `maxChars` characters and at least `minUnits` units, longest first. */
export function contextsBefore(doc: TaskDocument, j: number, maxChars: number, minUnits: number): string[] {
  const end = doc.units[j - 1]?.end ?? 0;
  const out: string[] = [];
  for (let i = 0; i + minUnits <= j; i++) {
    if (end - doc.units[i]!.start <= maxChars) out.push(doc.text.slice(doc.units[i]!.start, end));
  }
  return out;
}

/** Whether unit `j` has any context at all (contextsBefore without making the strings). */
export function hasContext(doc: TaskDocument, j: number, maxChars: number, minUnits: number): boolean {
  return j >= minUnits && doc.units[j - 1]!.end - doc.units[j - minUnits]!.start <= maxChars;
}

export const unitText = (doc: TaskDocument, i: number) => doc.text.slice(doc.units[i]!.start, doc.units[i]!.end);
