import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mulberry32 } from '../random/index.js';
import { chanceSpecialisation, layerStats, specialisation, type RoutingRecords } from './stats.js';

const records = (segments: Array<{ domain: number; doc: number; w: number[] }>, domains = ['A', 'B']): RoutingRecords => ({
  experts: segments[0]!.w.length,
  layers: 1,
  domains,
  domain: Int32Array.from(segments.map((s) => s.domain)),
  document: Int32Array.from(segments.map((s) => s.doc)),
  weights: [Float64Array.from(segments.flatMap((s) => s.w))],
});

const close = (a: number, b: number, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);
const H = (p: number[]) => -p.reduce((a, x) => a + (x > 0 ? x * Math.log(x) : 0), 0);

test('routing statistics on a constructed case give the known averages, utilisation, entropy and load', () => {
  const r = records([
    { domain: 0, doc: 0, w: [0.7, 0.1, 0.1, 0.1] },
    { domain: 0, doc: 1, w: [0.5, 0.3, 0.1, 0.1] },
    { domain: 1, doc: 2, w: [0.1, 0.1, 0.1, 0.7] },
  ]);
  const s = layerStats(r, 0, { shuffles: 0 });
  [[0.6, 0.2, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]].forEach((row, d) => row.forEach((v, i) => close(s.meanWeight[d]![i]!, v)));
  assert.deepEqual(s.segmentsPerDomain, [2, 1]);
  // 2/E = 0.5: 0.7 is above, 0.5 is not.
  [1 / 3, 0, 0, 1 / 3].forEach((v, i) => close(s.utilisation[i]!, v));
  close(s.activePerSegment, 2 / 3);
  const ent = (H([0.7, 0.1, 0.1, 0.1]) + H([0.5, 0.3, 0.1, 0.1]) + H([0.1, 0.1, 0.1, 0.7])) / 3;
  close(s.entropy, ent);
  close(s.entropyNormalised, ent / Math.log(4));
  const load = [1.3 / 3, 0.5 / 3, 0.3 / 3, 0.9 / 3];
  load.forEach((v, i) => close(s.load[i]!, v));
  close(s.loadBalance, H(load) / Math.log(4));
  close(s.maxLoadRatio, 4 * (1.3 / 3));
  assert.equal(s.chance, null);
});

test('specialisation is 0 for identical per-domain routing, 1 for disjoint routing, and the weighted Jensen–Shannon divergence over H(domain) in between', () => {
  const same = records([
    { domain: 0, doc: 0, w: [0.6, 0.4, 0] },
    { domain: 0, doc: 1, w: [0.2, 0.2, 0.6] },
    { domain: 1, doc: 2, w: [0.4, 0.3, 0.3] },
  ]);
  close(specialisation(same.domain, 2, same.weights[0]!, 3)!, 0);
  const disjoint = records([
    { domain: 0, doc: 0, w: [0.5, 0.5, 0, 0] },
    { domain: 0, doc: 1, w: [0.9, 0.1, 0, 0] },
    { domain: 0, doc: 2, w: [1, 0, 0, 0] },
    { domain: 1, doc: 3, w: [0, 0, 0.2, 0.8] },
  ]);
  close(specialisation(disjoint.domain, 2, disjoint.weights[0]!, 4)!, 1);
  // In between: the generalised JSD H(Σ π_d P_d) − Σ π_d H(P_d), over H(π), computed directly.
  const rand = mulberry32(4);
  const segs = Array.from({ length: 30 }, (_, s) => {
    const raw = [rand(), rand(), rand()].map((x, i) => x + (s % 3 === i ? 1 : 0));
    const sum = raw.reduce((a, b) => a + b, 0);
    return { domain: s % 3, doc: s, w: raw.map((x) => x / sum) };
  });
  const r = records(segs, ['a', 'b', 'c']);
  const pi = [1 / 3, 1 / 3, 1 / 3];
  const P = [0, 1, 2].map((d) => [0, 1, 2].map((i) => segs.filter((s) => s.domain === d).reduce((a, s) => a + s.w[i]!, 0) / 10));
  const mix = [0, 1, 2].map((i) => P.reduce((a, p, d) => a + pi[d]! * p[i]!, 0));
  const jsd = H(mix) - P.reduce((a, p, d) => a + pi[d]! * H(p), 0);
  const score = specialisation(r.domain, 3, r.weights[0]!, 3)!;
  close(score, jsd / H(pi), 1e-12);
  assert.ok(score > 0.01 && score < 0.99);
  assert.equal(specialisation(Int32Array.from([0, 0]), 1, Float64Array.from([1, 0, 0, 1]), 2), null, 'one domain: undefined');
});

test('the shuffled-label chance level sits far below disjoint routing and near the score of label-independent routing', () => {
  const rand = mulberry32(9);
  const disjoint = Array.from({ length: 40 }, (_, s) => ({ domain: s % 2, doc: s, w: s % 2 === 0 ? [0.8, 0.2, 0, 0] : [0, 0, 0.3, 0.7] }));
  const chance = chanceSpecialisation(records(disjoint), 0, 50, 1)!;
  assert.ok(chance.mean < 0.2 && chance.p95 < 0.4, `chance ${JSON.stringify(chance)} for a score of 1`);
  const random = Array.from({ length: 40 }, (_, s) => {
    const raw = [rand(), rand(), rand(), rand()];
    const sum = raw.reduce((a, b) => a + b, 0);
    return { domain: s % 2, doc: s, w: raw.map((x) => x / sum) };
  });
  const r = records(random);
  const observed = specialisation(r.domain, 2, r.weights[0]!, 4)!;
  const c = chanceSpecialisation(r, 0, 50, 1)!;
  assert.ok(observed < c.p95 * 3 && observed < 0.05, `label-independent routing ${observed} is within chance (${JSON.stringify(c)})`);
  // Segments of one document keep one label: a document split over many segments stays together.
  const oneDocPerDomain = records([
    { domain: 0, doc: 0, w: [1, 0] },
    { domain: 0, doc: 0, w: [1, 0] },
    { domain: 1, doc: 1, w: [0, 1] },
  ]);
  // Swapping whole documents only renames the domains: the score stays 1 (segment-level shuffles would not).
  close(chanceSpecialisation(oneDocPerDomain, 0, 10, 1)!.mean, 1);
});
