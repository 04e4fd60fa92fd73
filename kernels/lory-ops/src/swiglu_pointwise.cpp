#include "swiglu_pointwise.h"

#include <immintrin.h>

#include <cmath>

namespace lory {
namespace {

bool cpu_has_avx2_fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

inline float sigmoid_scalar(float a) { return 1.f / (1.f + std::exp(-a)); }

// exp(x) = 2ⁿ·p(r), r = x − n·ln2 ∈ [−ln2/2, ln2/2]; degree-6 Taylor polynomial, relative error < 2e-7.
__attribute__((target("avx2,fma"))) inline __m256 exp_avx2(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.f)), _mm256_set1_ps(88.f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // ln2 split in two so n·hi is exact (Cody–Waite).
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.f / 720);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  const __m256i pow2n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(pow2n));
}

__attribute__((target("avx2,fma"))) inline __m256 sigmoid_avx2(__m256 a) {
  const __m256 one = _mm256_set1_ps(1.f);
  return _mm256_div_ps(one, _mm256_add_ps(one, exp_avx2(_mm256_sub_ps(_mm256_setzero_ps(), a))));
}

__attribute__((target("avx2,fma"))) int64_t swiglu_forward_avx2(int64_t n, const float* a, const float* b,
                                                                 float* h) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 av = _mm256_loadu_ps(a + i);
    _mm256_storeu_ps(h + i, _mm256_mul_ps(_mm256_mul_ps(av, sigmoid_avx2(av)), _mm256_loadu_ps(b + i)));
  }
  return i;
}

__attribute__((target("avx2,fma"))) int64_t swiglu_backward_avx2(int64_t n, const float* a, const float* b,
                                                                  const float* dh, float* h, float* da,
                                                                  float* db) {
  const __m256 one = _mm256_set1_ps(1.f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 av = _mm256_loadu_ps(a + i), bv = _mm256_loadu_ps(b + i), g = _mm256_loadu_ps(dh + i);
    const __m256 sg = sigmoid_avx2(av), silu = _mm256_mul_ps(av, sg);
    // silu'(a) = σ(a)·(1 + a·(1 − σ(a)))
    const __m256 dsilu = _mm256_mul_ps(sg, _mm256_fmadd_ps(av, _mm256_sub_ps(one, sg), one));
    _mm256_storeu_ps(h + i, _mm256_mul_ps(silu, bv));
    _mm256_storeu_ps(da + i, _mm256_mul_ps(_mm256_mul_ps(g, bv), dsilu));
    _mm256_storeu_ps(db + i, _mm256_mul_ps(g, silu));
  }
  return i;
}

}  // namespace

void swiglu_forward(int64_t n, const float* a, const float* b, float* h) {
  int64_t i = cpu_has_avx2_fma() ? swiglu_forward_avx2(n, a, b, h) : 0;
  for (; i < n; ++i) h[i] = a[i] * sigmoid_scalar(a[i]) * b[i];
}

void swiglu_backward(int64_t n, const float* a, const float* b, const float* dh, float* h, float* da, float* db) {
  int64_t i = cpu_has_avx2_fma() ? swiglu_backward_avx2(n, a, b, dh, h, da, db) : 0;
  for (; i < n; ++i) {
    const float av = a[i], bv = b[i], g = dh[i];  // read all first: outputs may alias inputs
    const float sg = sigmoid_scalar(av), silu = av * sg;
    h[i] = silu * bv;
    da[i] = g * bv * sg * (1.f + av * (1.f - sg));
    db[i] = g * silu;
  }
}

}  // namespace lory
