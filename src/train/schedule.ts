/**
 * The learning-rate schedule: linear warm-up over the first `warmup` share of steps, then cosine decay
 * from `lr` to the floor `lr·minLrRatio` at the last step. Steps count from 1.
 */
export interface Schedule {
  lr: number;
  steps: number;
  warmup: number;
  minLrRatio: number;
}

export const warmupSteps = (s: Schedule) => Math.round(s.warmup * s.steps);

export function lrAt(s: Schedule, step: number): number {
  const w = warmupSteps(s);
  if (step <= w) return (s.lr * step) / w;
  const floor = s.lr * s.minLrRatio;
  const span = s.steps - w;
  const progress = span > 0 ? Math.min(1, (step - w) / span) : 1;
  return floor + 0.5 * (s.lr - floor) * (1 + Math.cos(Math.PI * progress));
}
