/**
 * Cutting a document into units — the sentences or lines a task asks about — as character spans of
 * the stored text, so every context and answer is an exact slice of the source.
 *
 *   prose: a unit ends at a newline, or after `.`, `!` or `?` followed by spaces and a capital letter
 *          ("Dr. Smith" is cut too: the rule is simple on purpose). Units are trimmed of spaces.
 *   code:  a unit is one non-blank line, its indentation kept, trailing spaces dropped.
 * What lies between two units (a space, a newline, a blank line, an indentation) is their separator.
 */

export interface Unit {
  /** Offset of the unit's first character in the text. */
  start: number;
  /** Offset just past its last character. */
  end: number;
}

const isBlank = (c: string) => c === ' ' || c === '\t' || c === '\n' || c === '\r';

/** The trimmed span of text[from, to), or nothing when it is all whitespace. */
function trimmed(text: string, from: number, to: number, keepIndent: boolean): Unit | undefined {
  let start = from;
  let end = to;
  while (end > start && isBlank(text[end - 1]!)) end--;
  if (!keepIndent) while (start < end && isBlank(text[start]!)) start++;
  if (!text.slice(start, end).trim()) return undefined;
  return { start, end };
}

/** Where each sentence-ending mark is followed by spaces and a capital letter: the offset after the mark. */
function sentenceBreaks(line: string): number[] {
  const breaks: number[] = [];
  for (const m of line.matchAll(/[.!?](?= +\p{Lu})/gu)) breaks.push(m.index! + 1);
  return breaks;
}

/** Units line by line: prose lines are cut further at sentence breaks; code lines keep their indentation. */
function lineUnits(text: string, code: boolean): Unit[] {
  const units: Unit[] = [];
  let lineStart = 0;
  while (lineStart <= text.length) {
    const nl = text.indexOf('\n', lineStart);
    const lineEnd = nl < 0 ? text.length : nl;
    let from = lineStart;
    for (const cut of code ? [] : sentenceBreaks(text.slice(lineStart, lineEnd))) {
      const u = trimmed(text, from, lineStart + cut, false);
      if (u) units.push(u);
      from = lineStart + cut;
    }
    const u = trimmed(text, from, lineEnd, code);
    if (u) units.push(u);
    lineStart = lineEnd + 1;
  }
  return units;
}

export const proseUnits = (text: string): Unit[] => lineUnits(text, false);

export const codeUnits = (text: string): Unit[] => lineUnits(text, true);

/** The text between unit i-1 and unit i: what a continuation choice starts with. */
export function separatorBefore(text: string, units: Unit[], i: number): string {
  return text.slice(units[i - 1]!.end, units[i]!.start);
}
