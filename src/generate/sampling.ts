/**
 * Choosing the next token from logits: greedy at temperature 0; otherwise softmax(logits / T)
 * restricted to the top-k tokens, then to the smallest set of most likely tokens whose probability
 * reaches top-p (nucleus sampling), renormalised and sampled with a seeded generator.
 */
export interface SamplingOptions {
  /** 0 = greedy (argmax). */
  temperature: number;
  /** Keep the k most likely tokens (0 = all). */
  topK: number;
  /** Keep the smallest set of most likely tokens with total probability ≥ p (1 = all). */
  topP: number;
}

export function argmax(logits: ArrayLike<number>, offset = 0, V = logits.length - offset): number {
  let best = 0;
  for (let v = 1; v < V; v++) if (logits[offset + v]! > logits[offset + best]!) best = v;
  return best;
}

/** The candidate tokens and their renormalised probabilities, most likely first. */
export function candidates(logits: ArrayLike<number>, o: SamplingOptions, offset = 0, V = logits.length - offset): { ids: number[]; probs: number[] } {
  const order = Array.from({ length: V }, (_, v) => v).sort((a, b) => logits[offset + b]! - logits[offset + a]!);
  const kept = o.topK > 0 ? order.slice(0, o.topK) : order;
  const max = logits[offset + kept[0]!]!;
  let probs = kept.map((v) => Math.exp((logits[offset + v]! - max) / o.temperature));
  let sum = probs.reduce((a, b) => a + b, 0);
  probs = probs.map((p) => p / sum);
  let n = probs.length;
  if (o.topP < 1) {
    let mass = 0;
    for (n = 0; n < probs.length && mass < o.topP; n++) mass += probs[n]!;
  }
  const ids = kept.slice(0, n);
  probs = probs.slice(0, n);
  sum = probs.reduce((a, b) => a + b, 0);
  return { ids, probs: probs.map((p) => p / sum) };
}

export function sampleToken(logits: ArrayLike<number>, o: SamplingOptions, rand: () => number, offset = 0, V = logits.length - offset): number {
  if (o.temperature === 0) return argmax(logits, offset, V);
  const { ids, probs } = candidates(logits, o, offset, V);
  let u = rand();
  for (let i = 0; i < ids.length; i++) {
    u -= probs[i]!;
    if (u < 0) return ids[i]!;
  }
  return ids[ids.length - 1]!;
}
