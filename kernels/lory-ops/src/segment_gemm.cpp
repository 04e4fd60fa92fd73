#include "segment_gemm.h"

#include <algorithm>

namespace lory {

void run_segment_gemms(const SegmentGemm* gemms, int count, int64_t M, int64_t N, int64_t K, int64_t s0,
                       int64_t s1) {
  int64_t hot_terms = 0;
  for (int q = 0; q < count; ++q) hot_terms += gemms[q].b.coef ? gemms[q].b.terms : 1;
  const int64_t kc_max = panel_depth_for(K, N, hot_terms);
  float* panel = thread_panel_buffer(size_t(kc_max * ((N + 15) / 16 * 16)));
  for (int64_t k0 = 0; k0 < K; k0 += kc_max) {
    const int64_t kc = std::min(kc_max, K - k0);
    for (int64_t s = s0; s < s1; ++s)
      for (int q = 0; q < count; ++q) {
        const SegmentGemm& g = gemms[q];
        MergedB b = g.b;
        if (b.coef) b.coef += s * g.coef_seg;
        pack_merged_panel(b, k0, kc, N, panel);
        gemm_on_panel(M, N, kc, StridedA{g.a + s * g.a_seg + k0, g.lda, 1}, panel, g.c + s * g.c_seg, g.ldc,
                      g.accumulate || k0 > 0);
      }
  }
}

}  // namespace lory
