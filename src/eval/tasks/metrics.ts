/**
 * Per-item scores and their means with standard errors.
 *
 *   acc        1 when the option with the highest total log-likelihood is the gold one
 *   acc_norm   the same with log-likelihood per UTF-8 byte of the continuation (ties: the first option)
 *   exact      1 when the generated answer (cut at the first stop string, trimmed) equals an accepted
 *              answer (trimmed)
 *   f1         SQuAD's token F1, best over the accepted answers: lower case, punctuation and the
 *              articles a/an/the removed, split on white space, F1 of the multiset overlap
 * The standard error of a mean of n per-item scores is the sample standard deviation / √n (as
 * lm-evaluation-harness reports it; for 0/1 scores √(p(1−p)/(n−1))).
 */

export interface Mean {
  value: number;
  stderr: number;
  n: number;
}

export function mean(xs: ArrayLike<number>): Mean {
  const n = xs.length;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += xs[i]!;
  const m = n > 0 ? sum / n : NaN;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (xs[i]! - m) ** 2;
  return { value: m, stderr: n > 1 ? Math.sqrt(ss / (n - 1) / n) : NaN, n };
}

/** The mean of independent means (tasks) and its standard error √(Σ seᵢ²) / k. */
export function meanOfMeans(ms: Mean[]): Mean {
  const k = ms.length;
  const value = ms.reduce((a, m) => a + m.value, 0) / k;
  const stderr = Math.sqrt(ms.reduce((a, m) => a + m.stderr ** 2, 0)) / k;
  return { value, stderr, n: ms.reduce((a, m) => a + m.n, 0) };
}

/** Index of the largest value; the first on ties. */
export function argmaxOf(xs: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i]! > xs[best]!) best = i;
  return best;
}

export const utf8Bytes = (s: string) => Buffer.byteLength(s, 'utf8');

/** The option picked by total log-likelihood and by log-likelihood per byte. */
export function choicePicks(logLik: ArrayLike<number>, continuations: string[]): { pick: number; pickNorm: number } {
  const perByte = continuations.map((c, i) => logLik[i]! / utf8Bytes(c));
  return { pick: argmaxOf(logLik), pickNorm: argmaxOf(perByte) };
}

/** The generated text up to the first stop string. */
export function cutAtStop(text: string, stop: string[]): string {
  let end = text.length;
  for (const s of stop) {
    const at = text.indexOf(s);
    if (at >= 0 && at < end) end = at;
  }
  return text.slice(0, end);
}

export const exactMatch = (answer: string, accepted: string[]) => (accepted.some((a) => a.trim() === answer.trim()) ? 1 : 0);

function squadTokens(s: string): string[] {
  return s
    .toLowerCase()
    .replace(/\p{P}/gu, '')
    .replace(/\b(a|an|the)\b/g, ' ')
    .split(/\s+/)
    .filter((t) => t !== '');
}

/** SQuAD token F1 of `answer` against one reference. */
export function tokenF1(answer: string, reference: string): number {
  const a = squadTokens(answer);
  const r = squadTokens(reference);
  if (a.length === 0 || r.length === 0) return a.length === r.length ? 1 : 0;
  const counts = new Map<string, number>();
  for (const t of r) counts.set(t, (counts.get(t) ?? 0) + 1);
  let common = 0;
  for (const t of a) {
    const c = counts.get(t) ?? 0;
    if (c > 0) {
      common++;
      counts.set(t, c - 1);
    }
  }
  if (common === 0) return 0;
  const precision = common / a.length;
  const recall = common / r.length;
  return (2 * precision * recall) / (precision + recall);
}

export const bestF1 = (answer: string, accepted: string[]) => Math.max(...accepted.map((a) => tokenF1(answer, a)));
