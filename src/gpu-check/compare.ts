/**
 * bin/gpu-check's loss comparison: two runs of the same 30-step training (same data, seed and
 * schedule) must agree at every step within a relative bound that grows with the step. The bounds and
 * their reasons are in docs/gpu.md ("GPU check"); in short:
 * - fp32 GPU vs fp32 CPU (TF32 off): the same operations in another summation order. One forward's
 *   reductions (lengths ≤ a few hundred) differ by ~√n·2⁻²⁴ ≈ 1e-6 relative per op, a few 1e-6 through
 *   the layers: 2e-5 at step 1 leaves a margin of several times. Each update then adds an independent
 *   perturbation of the same size to the weights; their effects on the loss add like a random walk: √k.
 * - bf16 GPU vs the CPU's emulated bf16: the same roundings at the same places; only the fp32
 *   accumulations inside differ (as above), which flips a bf16 rounding (2⁻⁸ relative) only for the few
 *   values within ~1e-6 of a rounding boundary. 1e-3 at step 1 (a quarter of one bf16 ulp on the mean
 *   loss), growing with √k; an accumulation in bf16 (~√n·2⁻⁹ ≈ 1e-2) or a missed cast breaks it.
 * - bf16 vs fp32: every matrix-product operand rounded to 8 significant bits (2⁻⁹ relative); the
 *   runs drift apart as training goes on. 2e-2 at every step: a broken transform (bf16 master weights,
 *   bf16 loss or softmax statistics) is far outside it from the first steps.
 */

export interface Tolerance {
  name: string;
  /** Largest allowed |candidate − reference| / |reference| at 1-based step k. */
  bound(step: number): number;
  /** How the bound reads in logs and docs. */
  formula: string;
}

export const FP32_TOLERANCE: Tolerance = { name: 'fp32 GPU vs CPU', bound: (k) => 2e-5 * Math.sqrt(k), formula: '2e-5·√k' };
export const BF16_TOLERANCE: Tolerance = { name: 'bf16 GPU vs CPU (emulated bf16)', bound: (k) => 1e-3 * Math.sqrt(k), formula: '1e-3·√k' };
export const BF16_VS_FP32_TOLERANCE: Tolerance = { name: 'bf16 vs fp32', bound: () => 2e-2, formula: '2e-2' };

export interface StepDifference {
  step: number;
  reference: number;
  candidate: number;
  relative: number;
  bound: number;
}

export interface LossComparison {
  ok: boolean;
  tolerance: string;
  steps: number;
  /** The step whose difference is the largest share of its bound. */
  worst: StepDifference | null;
  /** Steps beyond their bound (or not finite). */
  failures: StepDifference[];
  /** Why the runs cannot be compared at all (different lengths, nothing to compare). */
  problem?: string;
  summary: string;
}

const relative = (reference: number, candidate: number) => Math.abs(candidate - reference) / Math.max(Math.abs(reference), 1e-30);

/** Every step of `candidate` against `reference` under `tolerance`; a non-finite loss fails its step. */
export function compareLosses(reference: readonly number[], candidate: readonly number[], tolerance: Tolerance): LossComparison {
  const base = { tolerance: `${tolerance.name}: relative ≤ ${tolerance.formula}`, steps: reference.length };
  const problem = reference.length === 0 ? 'no steps to compare' : reference.length !== candidate.length ? `the runs have ${reference.length} and ${candidate.length} steps` : undefined;
  if (problem) return { ...base, ok: false, worst: null, failures: [], problem, summary: `FAILED: ${problem}` };
  const diffs = reference.map((r, i): StepDifference => {
    const c = candidate[i]!;
    const finite = Number.isFinite(r) && Number.isFinite(c);
    return { step: i + 1, reference: r, candidate: c, relative: finite ? relative(r, c) : Infinity, bound: tolerance.bound(i + 1) };
  });
  const failures = diffs.filter((d) => !(d.relative <= d.bound));
  const worst = diffs.reduce((a, b) => (b.relative / b.bound > a.relative / a.bound ? b : a));
  const at = (d: StepDifference) => `step ${d.step}: ${d.reference} vs ${d.candidate}, relative ${d.relative.toExponential(2)} (bound ${d.bound.toExponential(2)})`;
  const summary = failures.length === 0
    ? `all ${diffs.length} steps within ${tolerance.formula}; largest share of the bound at ${at(worst)}`
    : `FAILED at ${failures.length} of ${diffs.length} steps; first at ${at(failures[0]!)}`;
  return { ...base, ok: failures.length === 0, worst, failures, summary };
}
