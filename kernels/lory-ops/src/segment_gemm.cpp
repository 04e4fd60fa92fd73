#include "segment_gemm.h"

#include <algorithm>
#include <vector>

namespace lory {

// Per k-slab and gemm: the E expert panels are first copied (packed, one after another) into a
// contiguous per-thread buffer, then merged for each segment from there. Reading them in place would
// keep E panels at the same offsets of matrices d·f floats apart; when d·f·4 bytes is a multiple of
// 64 KiB (it is at d=512, f=1408) they all fall into the same L2 sets and evict each other.
//
// Consecutive gemms that read the same A with the same coefficients (the forward's gate and up
// projections of x) run as one: their merged panels sit side by side and each row strip of A_s is
// streamed once for both, which halves the activation traffic of those passes.
void run_segment_gemms(const SegmentGemm* gemms, int count, int64_t M, int64_t N, int64_t K, int64_t s0,
                       int64_t s1, const std::function<void(int64_t)>& finished) {
  constexpr int kMaxGroup = 4;
  auto terms_of = [](const SegmentGemm& g) { return g.b.coef ? g.b.terms : int64_t(1); };
  auto shares_a = [&](const SegmentGemm& p, const SegmentGemm& q) {
    return p.a == q.a && p.a_seg == q.a_seg && p.lda == q.lda && terms_of(p) == terms_of(q) &&
           (p.b.coef == nullptr) == (q.b.coef == nullptr) && p.b.coef == q.b.coef && p.coef_seg == q.coef_seg;
  };
  int64_t hot_terms = 1;
  for (int q = 0; q < count; ++q) hot_terms = std::max(hot_terms, terms_of(gemms[q]));
  int max_group = 1;
  for (int q = 0, len = 1; q < count; ++q, ++len) {
    if (q == 0 || !shares_a(gemms[q - 1], gemms[q]) || len > kMaxGroup) len = 1;
    max_group = std::max(max_group, len);
  }
  const int64_t kc_max = panel_depth_for(K, N, hot_terms);
  const int64_t n_pad = (N + 15) / 16 * 16;
  thread_local std::vector<float> staged_storage;
  const size_t staged_floats = size_t(max_group * hot_terms * staged_stride(kc_max * n_pad) + 8);
  if (staged_storage.size() < staged_floats) staged_storage.resize(staged_floats);
  float* staged = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(staged_storage.data()) + 31) & ~uintptr_t(31));
  // Merged panels of up to kMergeSegments segments: merging several segments per read of the staged
  // expert panels divides that (L2-bound) read traffic by as many.
  const int64_t merge_at_once = kMergeSegments;
  float* panel = thread_panel_buffer(size_t(merge_at_once * (max_group * kc_max * n_pad + kPanelPad)));
  for (int64_t k0 = 0; k0 < K; k0 += kc_max) {
    const int64_t kc = std::min(kc_max, K - k0), panel_floats = kc * n_pad;
    for (int q0 = 0; q0 < count;) {
      int q1 = q0 + 1;
      while (q1 < count && q1 - q0 < kMaxGroup && shares_a(gemms[q1 - 1], gemms[q1])) ++q1;
      const int group = q1 - q0;
      const SegmentGemm& lead = gemms[q0];
      const int64_t terms = terms_of(lead);
      // Unmerged panels are used where they are staged, so they stay side by side, unpadded.
      const int64_t stride = lead.b.coef ? staged_stride(panel_floats) : panel_floats;
      for (int q = 0; q < group; ++q) {
        const SegmentGemm& g = gemms[q0 + q];
        for (int64_t i = 0; i < terms; ++i)
          pack_merged_panel(MergedB{g.b.p + i * g.b.term_stride, 0, g.b.rs, g.b.cs, nullptr, 1}, k0, kc, N,
                            staged + (q * terms + i) * stride);
      }
      const int64_t set_floats = group * panel_floats + kPanelPad;  // one segment's merged panels, side by side
      for (int64_t sm = s0; sm < s1; sm += merge_at_once) {
        const int64_t ns = std::min(merge_at_once, s1 - sm);
        if (lead.b.coef)
          for (int q = 0; q < group; ++q)
            merge_staged_panels_multi(staged + q * terms * stride, terms, panel_floats,
                                      lead.b.coef + sm * lead.coef_seg, lead.coef_seg, ns, panel + q * panel_floats,
                                      set_floats);
        for (int64_t s = sm; s < sm + ns; ++s) {
          // unmerged (terms == 1): the staged panels are already side by side
          const float* b_panel = lead.b.coef ? panel + (s - sm) * set_floats : staged;
          PanelOutput outs[kMaxGroup];
          for (int q = 0; q < group; ++q) {
            const SegmentGemm& g = gemms[q0 + q];
            outs[q] = PanelOutput{g.c + s * g.c_seg, g.ldc, N, g.accumulate || k0 > 0};
          }
          gemm_on_panels(M, kc, StridedA{lead.a + s * lead.a_seg + k0, lead.lda, 1}, b_panel, outs, group);
          if (finished && q1 == count && k0 + kc >= K) finished(s);  // last slab of the last group
        }
      }
      q0 = q1;
    }
  }
}

}  // namespace lory
