// Forward: pass 1 builds h = silu(x·W̄g) ⊙ (x·W̄u) by column blocks of f (a and b go to `saved` when
// the caller keeps them for the backward, else to scratch); pass 2 computes y = h·W̄d by column blocks
// of d. Merged weights exist only as packed kc×64 panels inside merged_gemm.
#include "lory/moe_cpu.h"
#include "merged_gemm.h"
#include "segment_gemm.h"
#include "moe_tasks.h"
#include "swiglu_pointwise.h"

namespace lory {

// Scratch floats per segment: h, plus a and b when they are not saved (a becomes h in place).
static int64_t forward_floats_per_segment(const MoeShape& s, bool saving) { return (saving ? 1 : 2) * s.T * s.f; }

size_t moe_forward_scratch_floats(const MoeShape& s, const MoeCpuOptions& opt, bool saving) {
  const int64_t per_segment = forward_floats_per_segment(s, saving);
  return size_t(segments_per_chunk(s, per_segment, opt.scratch_budget_bytes) * per_segment);
}

void moe_forward(const MoeShape& s, const float* x, const float* e, const float* w_gate, const float* w_up,
                 const float* w_down, float* y, float* saved, float* scratch, const ParallelFor& parallel,
                 const MoeCpuOptions& opt) {
  const int64_t T = s.T, d = s.d, f = s.f, E = s.E;
  const int64_t chunk = segments_per_chunk(s, forward_floats_per_segment(s, saved != nullptr), opt.scratch_budget_bytes);
  for (int64_t g0 = 0; g0 < s.G; g0 += chunk) {
    const int64_t n = std::min(chunk, s.G - g0);
    float* h = scratch;  // [n, T, f]
    // a and b [n, T, f]: this chunk's rows of `saved`, or scratch with a becoming h in place.
    float* a = saved ? saved + g0 * T * f : h;
    float* b = saved ? saved + (s.G + g0) * T * f : h + n * T * f;
    const float* xg = x + g0 * T * d;
    const float* eg = e + g0 * E;
    for_column_blocks_and_segments(parallel, f, n, [&](int64_t j0, int64_t nb, int64_t s0, int64_t s1) {
      const SegmentGemm gemms[2] = {
          {xg, T * d, d, MergedB{w_gate + j0, d * f, f, 1, eg, E}, E, a + j0, T * f, f, false},
          {xg, T * d, d, MergedB{w_up + j0, d * f, f, 1, eg, E}, E, b + j0, T * f, f, false},
      };
      run_segment_gemms(gemms, 2, T, nb, d, s0, s1, [&](int64_t sg) {
        for (int64_t r = sg * T; r < (sg + 1) * T; ++r) swiglu_forward(nb, a + r * f + j0, b + r * f + j0, h + r * f + j0);
      });
    });
    for_column_blocks_and_segments(parallel, d, n, [&](int64_t j0, int64_t nb, int64_t s0, int64_t s1) {
      const SegmentGemm gemm = {h, T * f, f, MergedB{w_down + j0, f * d, d, 1, eg, E}, E, y + g0 * T * d + j0,
                                T * d, d, false};
      run_segment_gemms(&gemm, 1, T, nb, f, s0, s1);
    });
  }
}

}  // namespace lory
