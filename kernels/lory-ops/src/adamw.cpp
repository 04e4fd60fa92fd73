// Fused AdamW: the loop is written plainly and compiled twice, for AVX2/FMA (chosen at run time, see
// gemm_path.h) and portable; the compiler vectorises both (sqrt and division included).
#include "lory/adamw.h"

#include <algorithm>
#include <cmath>

#include "gemm_path.h"

namespace lory {
namespace {

// Per-element operation order follows the graph version, so results agree to float32 rounding.
#define LORY_ADAMW_BODY                                                              \
  for (int64_t i = 0; i < n; ++i) {                                                  \
    const float gi = g[i] * h.grad_scale;                                            \
    const float mi = m[i] * h.beta1 + gi * (1.f - h.beta1);                          \
    const float vi = v[i] * h.beta2 + gi * gi * (1.f - h.beta2);                     \
    const float denom = std::sqrt(vi) / h.bc2_sqrt + h.eps;                          \
    p_out[i] = p[i] * h.decay - h.step_size * (mi / denom);                          \
    m_out[i] = mi;                                                                   \
    v_out[i] = vi;                                                                   \
  }

void chunk_portable(int64_t n, const float* __restrict p, const float* __restrict g, const float* __restrict m,
                    const float* __restrict v, const AdamWHyper h, float* __restrict p_out, float* __restrict m_out,
                    float* __restrict v_out) {
  LORY_ADAMW_BODY
}

// No FMA contraction: a fused multiply-add would round differently from the graph's Mul then Add.
__attribute__((target("avx2"), optimize("fp-contract=off"))) void chunk_avx2(
    int64_t n, const float* __restrict p, const float* __restrict g, const float* __restrict m,
    const float* __restrict v, const AdamWHyper h, float* __restrict p_out, float* __restrict m_out,
    float* __restrict v_out) {
  LORY_ADAMW_BODY
}

}  // namespace

void adamw_update(int64_t n, const float* p, const float* g, const float* m, const float* v, const AdamWHyper& h,
                  float* p_out, float* m_out, float* v_out, const ParallelFor& parallel) {
  constexpr int64_t kChunk = 1 << 16;  // 256 KiB per operand: a few tasks per thread for large tensors
  const int64_t chunks = std::max<int64_t>(1, (n + kChunk - 1) / kChunk);
  const bool avx2 = gemm_path() != GemmPath::kPortable;
  auto run = [&](size_t c) {
    const int64_t i0 = int64_t(c) * kChunk, len = std::min(kChunk, n - i0);
    if (len <= 0) return;
    (avx2 ? chunk_avx2 : chunk_portable)(len, p + i0, g + i0, m + i0, v + i0, h, p_out + i0, m_out + i0, v_out + i0);
  };
  if (chunks == 1) return run(0);
  parallel(size_t(chunks), run);
}

void adamw_update_reference(int64_t n, const float* p, const float* g, const float* m, const float* v,
                            const AdamWHyper& h, double* p_out, double* m_out, double* v_out) {
  for (int64_t i = 0; i < n; ++i) {
    const double gi = double(g[i]) * h.grad_scale;
    const double mi = double(m[i]) * h.beta1 + gi * (1.0 - double(h.beta1));
    const double vi = double(v[i]) * h.beta2 + gi * gi * (1.0 - double(h.beta2));
    const double denom = std::sqrt(vi) / h.bc2_sqrt + h.eps;
    p_out[i] = double(p[i]) * h.decay - double(h.step_size) * (mi / denom);
    m_out[i] = mi;
    v_out[i] = vi;
  }
}

}  // namespace lory
