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

/**
 * Mean and standard deviation of the specialisation score under the shuffled-label null, for two
 * domains and one segment per document (the chance level's own null: labels permuted over documents).
 *
 * With π_d = n_d/N, overall mean routing m (fixed under relabelling) and Δ = P₀ − P₁ the difference of
 * the two domains' mean routing, P_d − m = ±π_{1−d}·Δ, so to second order in Δ
 *   I(D;X) = Σ_d π_d KL(P_d ‖ m) ≈ ½ Σ_d π_d Σ_i (P_{d,i} − m_i)²/m_i = ½ π₀π₁ ΔᵀAΔ,   A = diag(1/m).
 * A uniform relabelling draws domain 0's n₀ documents without replacement from the N, so
 *   Cov(P₀) = S·(N − n₀)/(n₀(N − 1)),  Δ = (N/n₁)(P₀ − m)  ⇒  C = Cov(Δ) = N²·S/(n₀n₁(N − 1)),
 * S the population covariance (÷N) of the segments' weight vectors. For Gaussian Δ (N = 40 is enough)
 * the quadratic form has mean ½π₀π₁·tr(AC) and variance 2·(½π₀π₁)²·tr(ACAC); the score is I / H(D).
 */
function shuffledNull(segs: Array<{ domain: number; w: number[] }>): { mean: number; sd: number } {
  const N = segs.length;
  const E = segs[0]!.w.length;
  const n0 = segs.filter((s) => s.domain === 0).length;
  const n1 = N - n0;
  const m = Array.from({ length: E }, (_, i) => segs.reduce((a, s) => a + s.w[i]!, 0) / N);
  const S = m.map((mi, i) => m.map((mj, j) => segs.reduce((a, s) => a + (s.w[i]! - mi) * (s.w[j]! - mj), 0) / N));
  const AC = S.map((row, i) => row.map((v) => (N * N * v) / (n0 * n1 * (N - 1)) / m[i]!));
  let tr = 0;
  let tr2 = 0;
  for (let i = 0; i < E; i++) {
    tr += AC[i]![i]!;
    for (let j = 0; j < E; j++) tr2 += AC[i]![j]! * AC[j]![i]!;
  }
  const k = (0.5 * (n0 / N) * (n1 / N)) / H([n0 / N, n1 / N]);
  return { mean: k * tr, sd: k * Math.sqrt(2 * tr2) };
}

/**
 * The chance level from `shuffles` shuffles against the null above: its mean is the mean of
 * `shuffles` draws (standard error σ/√shuffles: within 4 of those); its p95 is the 48th of 50 sorted
 * draws, which lies below the null mean only if 48 of 50 draws do, while a (weighted) χ²-like score
 * falls below its mean with probability ≈ 0.6–0.7 (χ²₃: 0.61, χ²₁: 0.68): P(Bin(50, 0.7) ≥ 48) ≈ 1e-5;
 * and above μ + 5σ only if 3 draws are (P ≈ 1e-4 even for χ²₁).
 */
function assertChanceMatchesNull(c: { mean: number; p95: number; shuffles: number }, nul: { mean: number; sd: number }, what: string) {
  const info = `${what}: chance ${JSON.stringify(c)}, null mean ${nul.mean} sd ${nul.sd}`;
  assert.ok(Math.abs(c.mean - nul.mean) <= (4 * nul.sd) / Math.sqrt(c.shuffles), `mean: ${info}`);
  assert.ok(c.p95 > nul.mean && c.p95 <= nul.mean + 5 * nul.sd, `p95: ${info}`);
}

test('the shuffled-label chance level sits far below disjoint routing and near the score of label-independent routing', () => {
  const rand = mulberry32(9);
  const disjoint = Array.from({ length: 40 }, (_, s) => ({ domain: s % 2, doc: s, w: s % 2 === 0 ? [0.8, 0.2, 0, 0] : [0, 0, 0.3, 0.7] }));
  const chance = chanceSpecialisation(records(disjoint), 0, 50, 1)!;
  assert.equal(chance.shuffles, 50);
  assertChanceMatchesNull(chance, shuffledNull(disjoint), 'disjoint routing (a score of 1)');
  const random = Array.from({ length: 40 }, (_, s) => {
    const raw = [rand(), rand(), rand(), rand()];
    const sum = raw.reduce((a, b) => a + b, 0);
    return { domain: s % 2, doc: s, w: raw.map((x) => x / sum) };
  });
  const r = records(random);
  const observed = specialisation(r.domain, 2, r.weights[0]!, 4)!;
  const c = chanceSpecialisation(r, 0, 50, 1)!;
  const nul = shuffledNull(random);
  assertChanceMatchesNull(c, nul, 'label-independent routing');
  // The labels here are independent of the weights: the observed score is itself a draw from the null
  // (one-sided: the score is ≥ 0 and skewed right, so only its upper tail can flag a problem).
  assert.ok(observed <= nul.mean + 4 * nul.sd, `label-independent routing ${observed} is within chance: null mean ${nul.mean}, sd ${nul.sd}`);
  // Segments of one document keep one label: a document split over many segments stays together.
  const oneDocPerDomain = records([
    { domain: 0, doc: 0, w: [1, 0] },
    { domain: 0, doc: 0, w: [1, 0] },
    { domain: 1, doc: 1, w: [0, 1] },
  ]);
  // Swapping whole documents only renames the domains: the score stays 1 (segment-level shuffles would not).
  close(chanceSpecialisation(oneDocPerDomain, 0, 10, 1)!.mean, 1);
});
