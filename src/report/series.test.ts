import { test } from 'node:test';
import assert from 'node:assert/strict';
import { downsample, findGaps, smooth, smoothingWindow, type Point } from './series.js';

test('smooth is the debiased exponential moving average, worked by hand; nulls stay null and do not enter it', () => {
  // window 2: β = 0.5. s1 = 0.5·4 = 2, w1 = 0.5 → 4; s2 = 0.5·2 + 0.5·8 = 5, w2 = 0.75 → 6.667; s3 = 0.5·5 + 0.5·2 = 3.5, w3 = 0.875 → 4.
  const out = smooth([4, 8, null, 2], 2);
  assert.equal(out[0], 4);
  assert.ok(Math.abs(out[1]! - 20 / 3) < 1e-12);
  assert.equal(out[2], null);
  assert.ok(Math.abs(out[3]! - 4) < 1e-12);
  assert.deepEqual(smooth([3, 1, 2], 1), [3, 1, 2], 'window 1 is no smoothing');
  assert.equal(smoothingWindow(200), 8);
  assert.equal(smoothingWindow(10), 1);
  assert.equal(smoothingWindow(1e6), 500);
});

test('downsample keeps at most 4 points per bucket, every bucket\'s extremes exactly, and the order', () => {
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const points: Point[] = Array.from({ length: 100_000 }, (_, i) => ({ x: i + 1, y: Math.sin(i / 500) + rand() }));
  points[31_337]!.y = 50; // a spike
  points[77_001]!.y = -50;
  const buckets = 500;
  const out = downsample(points, buckets);
  assert.ok(out.length <= 4 * buckets && out.length > 2 * buckets, `${out.length} points`);
  assert.ok(out.every((p, i) => i === 0 || p.x > out[i - 1]!.x), 'increasing x');
  assert.ok(out.every((p) => points[p.x - 1] === p), 'only original points');
  // Brute force: in each bucket of the x range, the lowest and highest points are kept.
  const bucketOf = (x: number) => Math.min(buckets - 1, Math.floor(((x - 1) / (100_000 - 1)) * buckets));
  const lo = new Map<number, number>();
  const hi = new Map<number, number>();
  for (const p of points) {
    const b = bucketOf(p.x);
    lo.set(b, Math.min(lo.get(b) ?? Infinity, p.y!));
    hi.set(b, Math.max(hi.get(b) ?? -Infinity, p.y!));
  }
  const kept = new Map<number, Set<number | null>>();
  for (const p of out) kept.set(bucketOf(p.x), (kept.get(bucketOf(p.x)) ?? new Set()).add(p.y));
  for (let b = 0; b < buckets; b++) assert.ok(kept.get(b)?.has(lo.get(b)!) && kept.get(b)?.has(hi.get(b)!), `bucket ${b}`);
  assert.ok(out.some((p) => p.y === 50) && out.some((p) => p.y === -50), 'the spikes survive');
  const short = points.slice(0, 100);
  assert.equal(downsample(short, 500), short, 'a short line is drawn as it is');
});

test('downsample keeps a break (one null point) where a bucket holds bad steps, and at most 5 points a bucket however many breaks', () => {
  const points: Point[] = Array.from({ length: 1000 }, (_, i) => ({ x: i, y: i >= 400 && i < 410 ? null : i % 7 }));
  const out = downsample(points, 20);
  const nulls = out.filter((p) => p.y === null);
  assert.equal(nulls.length, 1, 'one break for one stretch of bad steps');
  assert.ok(nulls[0]!.x >= 400 && nulls[0]!.x < 410);
  const before = out.filter((p) => p.x < 400);
  const after = out.filter((p) => p.x >= 410);
  assert.ok(before.length > 0 && after.length > 0 && before.length + after.length + 1 === out.length);
  const holey: Point[] = Array.from({ length: 100_000 }, (_, i) => ({ x: i, y: i % 10 === 9 ? null : i % 7 }));
  const thinned = downsample(holey, 100);
  assert.ok(thinned.length <= 5 * 100, `${thinned.length} points for 10,000 breaks`);
  assert.equal(thinned.filter((p) => p.y === null).length, 100, 'a break in every bucket');
});

test('findGaps: non-finite losses and missing step numbers, merged into stretches', () => {
  const steps = [1, 2, 3, 4, 7, 8, 9, 10].map((step) => ({ step, loss: step === 9 || step === 10 ? null : 1 }));
  steps[1]!.loss = null;
  assert.deepEqual(findGaps(steps), [
    { from: 2, to: 2, why: 'loss not finite' },
    { from: 5, to: 6, why: 'unreadable or missing lines' },
    { from: 9, to: 10, why: 'loss not finite' },
  ]);
  assert.deepEqual(findGaps([{ step: 1, loss: 2 }]), []);
});
