/**
 * Statistics of Lory routing weights, per MoE layer, over labelled segments (each segment: the weights
 * e[E] it was served with, its document, its document's domain).
 *
 * - mean weight per (layer, domain, expert): the paper's Figures 6/11.
 * - utilisation of expert i: share of segments with e_i > 2/E (the paper's "activated" threshold);
 *   active experts per segment: the mean count of such experts.
 * - specialisation: I(D; X) / H(D), where D is a segment's domain and X an expert drawn from the
 *   segment's routing weights, i.e. p(d, i) = (1/S)·Σ_{segments s of domain d} e_{s,i}. I(D;X) is the
 *   p(d)-weighted Jensen–Shannon divergence of the domains' mean routing distributions, so the score
 *   is 0 when every domain has the same mean routing and 1 when domains use disjoint experts (then the
 *   expert tells the domain: I = H(D)). Undefined (null) with a single domain.
 * - chance level: the same score with domain labels shuffled across documents (label counts kept,
 *   segments of one document stay together); finite samples make I(D;X) > 0 even without any
 *   specialisation, so the observed score means something only well above this.
 * - routing entropy: mean over segments of H(e_s) in nats (log E: uniform; 0: one expert).
 * - load: mean weight of each expert over all segments; balance = H(load)/log E (1: even), max load·E.
 */
import { mulberry32 } from '../random/index.js';

export interface RoutingRecords {
  experts: number;
  layers: number;
  domains: string[];
  /** Per segment: its domain (index into domains) and document. */
  domain: Int32Array;
  document: Int32Array;
  /** Per layer: [segments × E] weights. */
  weights: Float64Array[];
}

export interface LayerStats {
  layer: number;
  /** [domain][expert] mean routing weight. */
  meanWeight: number[][];
  segmentsPerDomain: number[];
  /** [expert] share of segments with weight > 2/E. */
  utilisation: number[];
  activePerSegment: number;
  specialisation: number | null;
  chance: { mean: number; p95: number; shuffles: number } | null;
  /** Mean over segments of H(e_s), nats, and divided by log E. */
  entropy: number;
  entropyNormalised: number;
  /** [expert] mean weight over every segment. */
  load: number[];
  loadBalance: number;
  maxLoadRatio: number;
}

const xlogx = (x: number) => (x > 0 ? x * Math.log(x) : 0);

/** I(D;X)/H(D) for labels `domain` (per segment) and weights w [S×E]; null with one domain present. */
export function specialisation(domain: Int32Array, domains: number, w: Float64Array, E: number): number | null {
  const S = domain.length;
  if (S === 0) return null;
  const joint = new Float64Array(domains * E);
  const pd = new Float64Array(domains);
  for (let s = 0; s < S; s++) {
    const d = domain[s]!;
    pd[d] = pd[d]! + 1 / S;
    for (let i = 0; i < E; i++) joint[d * E + i] = joint[d * E + i]! + w[s * E + i]! / S;
  }
  const px = new Float64Array(E);
  for (let d = 0; d < domains; d++) for (let i = 0; i < E; i++) px[i] = px[i]! + joint[d * E + i]!;
  let hd = 0;
  for (let d = 0; d < domains; d++) hd -= xlogx(pd[d]!);
  if (hd <= 1e-12) return null;
  let mi = 0;
  for (let d = 0; d < domains; d++) {
    for (let i = 0; i < E; i++) {
      const p = joint[d * E + i]!;
      if (p > 0) mi += p * Math.log(p / (pd[d]! * px[i]!));
    }
  }
  return Math.min(1, Math.max(0, mi / hd));
}

/** The specialisation score with domain labels shuffled across documents, `shuffles` times (seeded). */
export function chanceSpecialisation(r: RoutingRecords, layer: number, shuffles: number, seed: number): { mean: number; p95: number; shuffles: number } | null {
  let docs = 0;
  for (const d of r.document) docs = Math.max(docs, d + 1);
  const docDomain = new Int32Array(docs).fill(-1);
  for (let s = 0; s < r.domain.length; s++) docDomain[r.document[s]!] = r.domain[s]!;
  const present = [...docDomain.keys()].filter((d) => docDomain[d]! >= 0);
  const rand = mulberry32(seed + 7919 * layer);
  const scores: number[] = [];
  const shuffled = new Int32Array(r.domain.length);
  for (let k = 0; k < shuffles; k++) {
    const labels = present.map((d) => docDomain[d]!);
    for (let i = labels.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [labels[i], labels[j]] = [labels[j]!, labels[i]!];
    }
    const relabel = new Int32Array(docs);
    present.forEach((d, i) => (relabel[d] = labels[i]!));
    for (let s = 0; s < shuffled.length; s++) shuffled[s] = relabel[r.document[s]!]!;
    const v = specialisation(shuffled, r.domains.length, r.weights[layer]!, r.experts);
    if (v === null) return null;
    scores.push(v);
  }
  if (scores.length === 0) return null;
  scores.sort((a, b) => a - b);
  return { mean: scores.reduce((a, b) => a + b, 0) / scores.length, p95: scores[Math.min(scores.length - 1, Math.ceil(0.95 * scores.length) - 1)]!, shuffles };
}

export function layerStats(r: RoutingRecords, layer: number, o: { shuffles?: number; seed?: number } = {}): LayerStats {
  const E = r.experts;
  const D = r.domains.length;
  const w = r.weights[layer]!;
  const S = r.domain.length;
  const sums = Array.from({ length: D }, () => new Float64Array(E));
  const counts = new Array<number>(D).fill(0);
  const active = new Float64Array(E);
  const load = new Float64Array(E);
  let entropy = 0;
  let activeTotal = 0;
  const threshold = 2 / E;
  for (let s = 0; s < S; s++) {
    const d = r.domain[s]!;
    counts[d]!++;
    let h = 0;
    for (let i = 0; i < E; i++) {
      const v = w[s * E + i]!;
      sums[d]![i] = sums[d]![i]! + v;
      load[i] = load[i]! + v / S;
      if (v > threshold) {
        active[i] = active[i]! + 1 / S;
        activeTotal++;
      }
      h -= xlogx(v);
    }
    entropy += h / S;
  }
  let loadEntropy = 0;
  for (let i = 0; i < E; i++) loadEntropy -= xlogx(load[i]!);
  const logE = Math.log(E);
  const shuffles = o.shuffles ?? 20;
  return {
    layer,
    meanWeight: sums.map((row, d) => [...row].map((v) => (counts[d]! > 0 ? v / counts[d]! : NaN))),
    segmentsPerDomain: counts,
    utilisation: [...active],
    activePerSegment: S > 0 ? activeTotal / S : NaN,
    specialisation: specialisation(r.domain, D, w, E),
    chance: shuffles > 0 ? chanceSpecialisation(r, layer, shuffles, o.seed ?? 0) : null,
    entropy,
    entropyNormalised: entropy / logE,
    load: [...load],
    loadBalance: loadEntropy / logE,
    maxLoadRatio: load.reduce((a, b) => Math.max(a, b), 0) * E,
  };
}
