#include "expert_scatter.h"

#include <immintrin.h>

namespace lory {
namespace {

bool cpu_has_avx2_fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

__attribute__((target("avx2,fma"))) void fan_out_avx2(int64_t rows, int64_t cols, const float* tiles,
                                                       int64_t segments, const float* coef, const float* w,
                                                       float* dw, int64_t ldw, bool first, double* dots) {
  const int64_t tile = rows * cols;
  __m256 c[kMaxFanOutSegments];
  for (int64_t s = 0; s < segments; ++s) c[s] = _mm256_set1_ps(coef[s]);
  for (int64_t r = 0; r < rows; ++r) {
    __m256 dot[kMaxFanOutSegments];  // one row per segment in float (≤ a few hundred terms), rows in double
    for (int64_t s = 0; s < segments; ++s) dot[s] = _mm256_setzero_ps();
    const float* wr = w + r * ldw;
    float* dr = dw + r * ldw;
    const float* gr = tiles + r * cols;
    int64_t j = 0;
    for (; j + 8 <= cols; j += 8) {
      const __m256 wv = _mm256_loadu_ps(wr + j);
      __m256 acc = first ? _mm256_setzero_ps() : _mm256_loadu_ps(dr + j);
      for (int64_t s = 0; s < segments; ++s) {
        const __m256 g = _mm256_loadu_ps(gr + s * tile + j);
        acc = _mm256_fmadd_ps(c[s], g, acc);
        dot[s] = _mm256_fmadd_ps(g, wv, dot[s]);
      }
      _mm256_storeu_ps(dr + j, acc);
    }
    for (int64_t s = 0; s < segments; ++s) {
      alignas(32) float lanes[8];
      _mm256_store_ps(lanes, dot[s]);
      double row = 0;
      for (float v : lanes) row += v;
      for (int64_t jj = j; jj < cols; ++jj) row += double(gr[s * tile + jj]) * wr[jj];
      dots[s] += row;
    }
    for (int64_t jj = j; jj < cols; ++jj) {
      float acc = first ? 0.f : dr[jj];
      for (int64_t s = 0; s < segments; ++s) acc += coef[s] * gr[s * tile + jj];
      dr[jj] = acc;
    }
  }
}

}  // namespace

void fan_out_to_expert(int64_t rows, int64_t cols, const float* tiles, int64_t segments, const float* coef,
                       const float* w, float* dw, int64_t ldw, bool first, double* dots) {
  if (cpu_has_avx2_fma()) return fan_out_avx2(rows, cols, tiles, segments, coef, w, dw, ldw, first, dots);
  const int64_t tile = rows * cols;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) {
      float acc = first ? 0.f : dw[r * ldw + j];
      for (int64_t s = 0; s < segments; ++s) {
        const float g = tiles[s * tile + r * cols + j];
        acc += coef[s] * g;
        dots[s] += double(g) * w[r * ldw + j];
      }
      dw[r * ldw + j] = acc;
    }
}

}  // namespace lory
