// Forward: pass 1 builds h = silu(x·W̄g) ⊙ (x·W̄u) by column blocks of f; pass 2 computes y = h·W̄d by
// column blocks of d. Merged weights exist only as packed kc×64 panels inside merged_gemm.
#include <vector>

#include "lory/moe_cpu.h"
#include "merged_gemm.h"
#include "moe_tasks.h"
#include "swiglu_pointwise.h"

namespace lory {

size_t moe_forward_scratch_floats(const MoeShape& s, const MoeCpuOptions& opt) {
  const int64_t per_segment = s.T * s.f;  // h
  return size_t(segments_per_chunk(s, per_segment, opt.scratch_budget_bytes) * per_segment);
}

void moe_forward(const MoeShape& s, const float* x, const float* e, const float* w_gate, const float* w_up,
                 const float* w_down, float* y, float* scratch, const ParallelFor& parallel,
                 const MoeCpuOptions& opt) {
  const int64_t T = s.T, d = s.d, f = s.f, E = s.E;
  const int64_t chunk = segments_per_chunk(s, T * f, opt.scratch_budget_bytes);
  for (int64_t g0 = 0; g0 < s.G; g0 += chunk) {
    const int64_t n = std::min(chunk, s.G - g0);
    float* h = scratch;  // [n, T, f]
    for_column_blocks_and_segments(parallel, f, n, [&](int64_t j0, int64_t nb, int64_t s0, int64_t s1) {
      thread_local std::vector<float> a, b;
      a.resize(T * nb);
      b.resize(T * nb);
      for (int64_t si = s0; si < s1; ++si) {
        const int64_t g = g0 + si;
        const StridedA xs{x + g * T * d, d, 1};
        merged_gemm(T, nb, d, xs, MergedB{w_gate + j0, d * f, f, 1, e + g * E, E}, a.data(), nb, false);
        merged_gemm(T, nb, d, xs, MergedB{w_up + j0, d * f, f, 1, e + g * E, E}, b.data(), nb, false);
        for (int64_t t = 0; t < T; ++t)
          swiglu_forward(nb, a.data() + t * nb, b.data() + t * nb, h + (si * T + t) * f + j0);
      }
    });
    for_column_blocks_and_segments(parallel, d, n, [&](int64_t j0, int64_t nb, int64_t s0, int64_t s1) {
      for (int64_t si = s0; si < s1; ++si) {
        const int64_t g = g0 + si;
        merged_gemm(T, nb, f, StridedA{h + si * T * f, f, 1}, MergedB{w_down + j0, f * d, d, 1, e + g * E, E},
                    y + g * T * d + j0, d, false);
      }
    });
  }
}

}  // namespace lory
