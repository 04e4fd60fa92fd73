/**
 * Drawing distractors: `n` distinct texts from a list, each passing `ok` (another document, not the
 * gold's text), drawn at random with a seeded generator; when random draws keep failing (few fit),
 * a scan from a random place finds whatever fits, so an item is dropped only when too few exist.
 */
export interface Source {
  doc: number;
  text: string;
}

/** Texts that differ only in spaces at their ends count as the same (an indented copy of the gold line). */
export const sameText = (a: string, b: string) => a.trim() === b.trim();

export function drawDistinct(list: Source[], n: number, rand: () => number, ok: (s: Source) => boolean): string[] | undefined {
  const picked: string[] = [];
  const seen = new Set<string>();
  const consider = (s: Source) => {
    const key = s.text.trim();
    if (!seen.has(key) && ok(s)) {
      seen.add(key);
      picked.push(s.text);
    }
  };
  for (let tries = 0; tries < 8 * n && picked.length < n && list.length > 0; tries++) consider(list[Math.floor(rand() * list.length)]!);
  const from = Math.floor(rand() * list.length);
  for (let k = 0; k < list.length && picked.length < n; k++) consider(list[(from + k) % list.length]!);
  return picked.length === n ? picked : undefined;
}
