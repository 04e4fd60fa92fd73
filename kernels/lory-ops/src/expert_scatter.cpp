#include "expert_scatter.h"

#include <immintrin.h>

namespace lory {
namespace {

bool cpu_has_avx2_fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

__attribute__((target("avx2,fma"))) double scatter_avx2(int64_t rows, int64_t cols, const float* C, int64_t ldc,
                                                         const float* w, float* dw, int64_t ldw, float coef,
                                                         bool first) {
  const __m256 cv = _mm256_set1_ps(coef);
  double total = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* c = C + r * ldc;
    const float* wr = w + r * ldw;
    float* dr = dw + r * ldw;
    __m256 dot = _mm256_setzero_ps();  // one row in float (≤ a few hundred terms), rows summed in double
    int64_t j = 0;
    for (; j + 8 <= cols; j += 8) {
      const __m256 g = _mm256_loadu_ps(c + j);
      dot = _mm256_fmadd_ps(g, _mm256_loadu_ps(wr + j), dot);
      const __m256 base = first ? _mm256_setzero_ps() : _mm256_loadu_ps(dr + j);
      _mm256_storeu_ps(dr + j, _mm256_fmadd_ps(cv, g, base));
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, dot);
    double row = 0;
    for (float v : lanes) row += v;
    for (; j < cols; ++j) {
      row += double(c[j]) * wr[j];
      dr[j] = (first ? 0.f : dr[j]) + coef * c[j];
    }
    total += row;
  }
  return total;
}

}  // namespace

double scatter_and_dot(int64_t rows, int64_t cols, const float* C, int64_t ldc, const float* w, float* dw,
                       int64_t ldw, float coef, bool first) {
  if (cpu_has_avx2_fma()) return scatter_avx2(rows, cols, C, ldc, w, dw, ldw, coef, first);
  double total = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) {
      const float g = C[r * ldc + j];
      total += double(g) * w[r * ldw + j];
      dw[r * ldw + j] = (first ? 0.f : dw[r * ldw + j]) + coef * g;
    }
  return total;
}

}  // namespace lory
