/**
 * Curves for drawing: smoothing, the gaps where steps are bad or missing, and downsampling that keeps
 * the extremes. A figure of a 100,000-step run must not carry 100,000 points per line, but a loss
 * spike or a grad-norm outlier must still show: per line, the x range is cut into buckets and each
 * bucket keeps its first, last, lowest and highest point (the M4 aggregation — at a bucket width of
 * about a pixel the drawn line is the same as with every point), and one break where it has bad steps.
 */

/** One point of a curve; y null breaks the line there. */
export interface Point {
  x: number;
  y: number | null;
}

/**
 * Buckets per line: the figures' width in pixels (720; routing panels get theirs), the M4 premise —
 * one bucket per pixel column draws the same line as every point.
 */
export const DEFAULT_BUCKETS = 720;

/**
 * Exponential moving average, debiased (as TensorBoard's smoothing): s_t = β·s_{t−1} + (1−β)·y_t,
 * shown as s_t / (1 − β^t). β = 1 − 1/window. Null values stay null and do not enter the average.
 */
export function smooth(ys: Array<number | null>, window: number): Array<number | null> {
  const beta = window <= 1 ? 0 : 1 - 1 / window;
  let s = 0;
  let weight = 0;
  return ys.map((y) => {
    if (y === null) return null;
    s = beta * s + (1 - beta) * y;
    weight = beta * weight + (1 - beta);
    return s / weight;
  });
}

/** The smoothing window for a run of n steps: about 4% of it, at least 1 and at most 500 steps. */
export const smoothingWindow = (n: number) => Math.min(500, Math.max(1, Math.round(n / 25)));

/**
 * At most 4 points per bucket of the x range — its first, last, lowest and highest — and, where the
 * bucket holds bad steps (null), one null that breaks the line there. Lines short enough are
 * returned as they are.
 */
export function downsample(points: Point[], buckets = DEFAULT_BUCKETS): Point[] {
  if (points.length <= 4 * buckets) return points;
  const x0 = points[0]!.x;
  const span = points.at(-1)!.x - x0 || 1;
  const bucketOf = (x: number) => Math.min(buckets - 1, Math.floor(((x - x0) / span) * buckets));
  const out: Point[] = [];
  let i = 0;
  while (i < points.length) {
    const b = bucketOf(points[i]!.x);
    let first = -1;
    let last = -1;
    let lo = -1;
    let hi = -1;
    let gap = -1;
    for (; i < points.length && bucketOf(points[i]!.x) === b; i++) {
      const y = points[i]!.y;
      if (y === null) {
        if (gap < 0) gap = i;
        continue;
      }
      if (first < 0) first = i;
      last = i;
      if (lo < 0 || y < points[lo]!.y!) lo = i;
      if (hi < 0 || y > points[hi]!.y!) hi = i;
    }
    for (const k of [...new Set([first, lo, hi, last, gap])].filter((k) => k >= 0).sort((a, c) => a - c)) out.push(points[k]!);
  }
  return out;
}

/** A stretch of bad steps [from, to] (inclusive), for the figures to mark. */
export interface Gap {
  from: number;
  to: number;
  why: string;
}

/**
 * Where a run's steps are bad: a non-finite loss, or step numbers missing between two logged steps
 * (lines that could not be read). Steps are the trainer's 1, 2, 3, …, one line each.
 */
export function findGaps(steps: ReadonlyArray<{ step: number; loss: number | null }>): Gap[] {
  const gaps: Gap[] = [];
  const add = (from: number, to: number, why: string) => {
    const prev = gaps.at(-1);
    if (prev && prev.why === why && prev.to + 1 >= from) prev.to = Math.max(prev.to, to);
    else gaps.push({ from, to, why });
  };
  for (let i = 0; i < steps.length; i++) {
    const s = steps[i]!;
    const before = steps[i - 1];
    if (before && s.step > before.step + 1) add(before.step + 1, s.step - 1, 'unreadable or missing lines');
    if (s.loss === null) add(s.step, s.step, 'loss not finite');
  }
  return gaps;
}
