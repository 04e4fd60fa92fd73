#include "segment_gemm.h"

#include <algorithm>
#include <vector>

namespace lory {

// Per k-slab and gemm: the E expert panels are first copied (packed, one after another) into a
// contiguous per-thread buffer, then merged for each segment from there. Reading them in place would
// keep E panels at the same offsets of matrices d·f floats apart; when d·f·4 bytes is a multiple of
// 64 KiB (it is at d=512, f=1408) they all fall into the same L2 sets and evict each other.
void run_segment_gemms(const SegmentGemm* gemms, int count, int64_t M, int64_t N, int64_t K, int64_t s0,
                       int64_t s1) {
  int64_t hot_terms = 1;
  for (int q = 0; q < count; ++q) hot_terms = std::max(hot_terms, gemms[q].b.coef ? gemms[q].b.terms : 1);
  const int64_t kc_max = panel_depth_for(K, N, hot_terms);
  const int64_t n_pad = (N + 15) / 16 * 16;
  thread_local std::vector<float> staged_storage;
  if (staged_storage.size() < size_t(hot_terms * kc_max * n_pad + 8)) staged_storage.resize(hot_terms * kc_max * n_pad + 8);
  float* staged = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(staged_storage.data()) + 31) & ~uintptr_t(31));
  float* panel = thread_panel_buffer(size_t(kc_max * n_pad));
  for (int64_t k0 = 0; k0 < K; k0 += kc_max) {
    const int64_t kc = std::min(kc_max, K - k0), panel_floats = kc * n_pad;
    for (int q = 0; q < count; ++q) {
      const SegmentGemm& g = gemms[q];
      const int64_t terms = g.b.coef ? g.b.terms : 1;
      for (int64_t i = 0; i < terms; ++i)
        pack_merged_panel(MergedB{g.b.p + i * g.b.term_stride, 0, g.b.rs, g.b.cs, nullptr, 1}, k0, kc, N,
                          staged + i * panel_floats);
      for (int64_t s = s0; s < s1; ++s) {
        const float* b_panel = staged;
        if (g.b.coef) {
          merge_staged_panels(staged, terms, panel_floats, g.b.coef + s * g.coef_seg, panel);
          b_panel = panel;
        }
        gemm_on_panel(M, N, kc, StridedA{g.a + s * g.a_seg + k0, g.lda, 1}, b_panel, g.c + s * g.c_seg, g.ldc,
                      g.accumulate || k0 > 0);
      }
    }
  }
}

}  // namespace lory
