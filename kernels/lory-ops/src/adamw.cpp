// Fused AdamW: an AVX2 loop (chosen at run time, see gemm_path.h; intrinsics, because std::sqrt's errno
// semantics keep the compiler from vectorising) and a portable one. Both do the multiplications and
// additions separately (no FMA), in the graph version's order, so results agree to float32 rounding.
#include "lory/adamw.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

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

// Stream: non-temporal stores. The outputs are the other buffer of the trainer's ping-pong pair, not in
// cache: ordinary stores would first read every output line (28 → 40 bytes of traffic per parameter).
template <bool Stream>
__attribute__((target("avx2"))) void chunk_avx2(int64_t n, const float* __restrict p, const float* __restrict g,
                                                const float* __restrict m, const float* __restrict v,
                                                const AdamWHyper h, float* __restrict p_out,
                                                float* __restrict m_out, float* __restrict v_out) {
  const __m256 scale = _mm256_set1_ps(h.grad_scale), b1 = _mm256_set1_ps(h.beta1), c1 = _mm256_set1_ps(1.f - h.beta1),
               b2 = _mm256_set1_ps(h.beta2), c2 = _mm256_set1_ps(1.f - h.beta2), bc2 = _mm256_set1_ps(h.bc2_sqrt),
               eps = _mm256_set1_ps(h.eps), decay = _mm256_set1_ps(h.decay), step = _mm256_set1_ps(h.step_size);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gi = _mm256_mul_ps(_mm256_loadu_ps(g + i), scale);
    const __m256 mi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(m + i), b1), _mm256_mul_ps(gi, c1));
    const __m256 vi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v + i), b2), _mm256_mul_ps(_mm256_mul_ps(gi, gi), c2));
    const __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), bc2), eps);
    const __m256 pi = _mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(p + i), decay),
                                    _mm256_mul_ps(step, _mm256_div_ps(mi, denom)));
    if (Stream) {
      _mm256_stream_ps(p_out + i, pi);
      _mm256_stream_ps(m_out + i, mi);
      _mm256_stream_ps(v_out + i, vi);
    } else {
      _mm256_storeu_ps(p_out + i, pi);
      _mm256_storeu_ps(m_out + i, mi);
      _mm256_storeu_ps(v_out + i, vi);
    }
  }
  if (Stream) _mm_sfence();  // streamed stores are weakly ordered: complete them before the op returns
  if (i < n) chunk_portable(n - i, p + i, g + i, m + i, v + i, h, p_out + i, m_out + i, v_out + i);
}

bool aligned32(const float* q) { return (reinterpret_cast<uintptr_t>(q) & 31) == 0; }

}  // namespace

void adamw_update(int64_t n, const float* p, const float* g, const float* m, const float* v, const AdamWHyper& h,
                  float* p_out, float* m_out, float* v_out, const ParallelFor& parallel) {
  constexpr int64_t kChunk = 1 << 16;  // 256 KiB per operand: a few tasks per thread for large tensors
  const int64_t chunks = std::max<int64_t>(1, (n + kChunk - 1) / kChunk);
  const bool avx2 = gemm_path() != GemmPath::kPortable;
  // Chunks start at multiples of kChunk floats, so aligned outputs stay aligned in every chunk.
  const bool stream = aligned32(p_out) && aligned32(m_out) && aligned32(v_out);
  auto kernel = !avx2 ? chunk_portable : stream ? chunk_avx2<true> : chunk_avx2<false>;
  auto run = [&](size_t c) {
    const int64_t i0 = int64_t(c) * kChunk, len = std::min(kChunk, n - i0);
    if (len <= 0) return;
    kernel(len, p + i0, g + i0, m + i0, v + i0, h, p_out + i0, m_out + i0, v_out + i0);
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
