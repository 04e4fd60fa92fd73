import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lrAt, warmupSteps, type Schedule } from './schedule.js';

// The schedule written another way: warm-up as a fraction of the peak, the decay as cos² of half the
// angle ((1 + cos x)/2 = cos²(x/2)), the warm-up length by hand (round half up), steps past the end
// held at the floor.
function reference(s: Schedule, step: number): number {
  const w = Math.floor(s.warmup * s.steps + 0.5);
  if (step <= w) return s.lr * (step / w);
  const floor = s.lr * s.minLrRatio;
  const decaySteps = s.steps - w;
  const done = decaySteps === 0 ? 1 : Math.min(step - w, decaySteps) / decaySteps;
  return floor + (s.lr - floor) * Math.cos((Math.PI / 2) * done) ** 2;
}

const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);

test('the learning rate rises linearly over the warm-up, then decays along a cosine to the floor at the last step, as an independent formula says', () => {
  const schedules: Schedule[] = [
    { lr: 3e-3, steps: 100, warmup: 0.05, minLrRatio: 0.1 },
    { lr: 1, steps: 10, warmup: 0.25, minLrRatio: 0 },
    { lr: 2e-4, steps: 37, warmup: 0.1, minLrRatio: 0.5 },
    { lr: 1, steps: 7, warmup: 0, minLrRatio: 0.2 },
    { lr: 1, steps: 4, warmup: 1, minLrRatio: 0.1 },
  ];
  for (const s of schedules) {
    for (let step = 1; step <= s.steps + 3; step++) close(lrAt(s, step), reference(s, step), `${JSON.stringify(s)} step ${step}`);
  }
});

test('warm-up and decay hit their exact values at the edge steps', () => {
  // 10 steps, warm-up 0.25 → round(2.5) = 3 warm-up steps, 7 decay steps.
  const s: Schedule = { lr: 1, steps: 10, warmup: 0.25, minLrRatio: 0.1 };
  assert.equal(warmupSteps(s), 3);
  close(lrAt(s, 1), 1 / 3, 'first step: a third of the peak');
  close(lrAt(s, 3), 1, 'last warm-up step: the peak');
  close(lrAt(s, 4), 0.1 + 0.9 * Math.cos(Math.PI / 14) ** 2, 'first decay step: one seventh of the half cosine');
  close(lrAt(s, 10), 0.1, 'last step: the floor');
  close(lrAt(s, 12), 0.1, 'past the end: still the floor');
  // Half-way through an even decay the rate is the mean of peak and floor.
  close(lrAt({ lr: 2, steps: 12, warmup: 1 / 6, minLrRatio: 0.25 }, 7), (2 + 0.5) / 2, 'decay midpoint');
  // No warm-up: the first step already decays from the peak; a warm-up share that rounds to 0 is none.
  close(lrAt({ lr: 1, steps: 5, warmup: 0, minLrRatio: 0 }, 1), Math.cos(Math.PI / 10) ** 2, 'no warm-up, step 1');
  assert.equal(warmupSteps({ lr: 1, steps: 9, warmup: 0.05, minLrRatio: 0 }), 0);
  // Warm-up over every step: a straight ramp that ends at the peak on the last step, then the floor.
  close(lrAt({ lr: 1, steps: 4, warmup: 1, minLrRatio: 0.1 }, 4), 1, 'all warm-up: last step at the peak');
  close(lrAt({ lr: 1, steps: 4, warmup: 1, minLrRatio: 0.1 }, 5), 0.1, 'all warm-up: past the end at the floor');
});

test('the rate never goes below the floor lr·min_lr_ratio after the warm-up, never rises during the decay and never exceeds the peak', () => {
  const s: Schedule = { lr: 3e-3, steps: 200, warmup: 0.05, minLrRatio: 0.1 };
  const floor = s.lr * s.minLrRatio;
  let previous = Infinity;
  for (let step = warmupSteps(s) + 1; step <= s.steps + 50; step++) {
    const lr = lrAt(s, step);
    assert.ok(lr >= floor - 1e-18 && lr <= s.lr, `step ${step}: ${lr} outside [${floor}, ${s.lr}]`);
    assert.ok(lr <= previous, `step ${step}: ${lr} rose from ${previous}`);
    previous = lr;
  }
  for (let step = 1; step <= warmupSteps(s); step++) assert.ok(lrAt(s, step) < lrAt(s, step + 1) || step === warmupSteps(s), `warm-up step ${step} rises`);
});
