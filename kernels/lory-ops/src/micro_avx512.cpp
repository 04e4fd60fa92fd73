// AVX-512 micro-kernels: an R×32 tile (two packed 16-column strips, one zmm per strip row) or R×16,
// R = 1…14. 14×32 keeps 28 accumulators, 2 B vectors and 1 broadcast in the 32 zmm registers; the
// broadcast of A(r,k) folds into the FMA's memory operand. Edge columns use write masks.
// Every function carries target("avx512f"): the file is built without -mavx512f, so no AVX-512
// instruction can leak into code that runs on other CPUs (inline helpers from headers included).
#include "micro_avx512.h"

#include "merged_gemm.h"

#include <immintrin.h>

namespace lory {
namespace {

#define LORY_AVX512 __attribute__((target("avx512f")))

template <int R, int S>
LORY_AVX512 void tile(int64_t kc, const float* a, int64_t a_rs, int64_t a_ks, const float* b, int64_t strip_floats,
                      float* c, int64_t ldc, __mmask16 mask0, __mmask16 mask1, bool accumulate) {
  __m512 acc[R][S];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
    for (int s = 0; s < S; ++s) acc[r][s] = _mm512_setzero_ps();
  const float* b1 = b + strip_floats;
  for (int64_t k = 0; k < kc; ++k) {
    __m512 bv[S];
    bv[0] = _mm512_loadu_ps(b + k * 16);
    if (S == 2) bv[S - 1] = _mm512_loadu_ps(b1 + k * 16);
    const float* ak = a + k * a_ks;
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 av = _mm512_set1_ps(ak[r * a_rs]);
#pragma GCC unroll 2
      for (int s = 0; s < S; ++s) acc[r][s] = _mm512_fmadd_ps(av, bv[s], acc[r][s]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
    for (int s = 0; s < S; ++s) {
      const __mmask16 m = s == 0 ? mask0 : mask1;
      float* cr = c + r * ldc + s * 16;
      __m512 v = acc[r][s];
      if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, cr));
      _mm512_mask_storeu_ps(cr, m, v);
    }
}

using TileFn = void (*)(int64_t, const float*, int64_t, int64_t, const float*, int64_t, float*, int64_t, __mmask16,
                        __mmask16, bool);

template <int... Rs>
struct TileTable {
  static constexpr TileFn two[] = {nullptr, tile<Rs, 2>...};
  static constexpr TileFn one[] = {nullptr, tile<Rs, 1>...};
};
using Tiles = TileTable<1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14>;
static_assert(sizeof(Tiles::two) / sizeof(TileFn) == kMaxRowsAvx512 + 1, "one kernel per row count");

__mmask16 mask_of(int64_t cols) { return cols >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << cols) - 1u); }

}  // namespace

void panel_rows_avx512(int64_t rows, int64_t n, int64_t kc, const float* a, int64_t a_rs, int64_t a_ks,
                       const float* panel, float* c, int64_t ldc, bool accumulate) {
  const int64_t strip_floats = kc * 16;
  for (int64_t j0 = 0; j0 < n; j0 += 32, panel += 2 * strip_floats) {
    const int64_t cols = n - j0 < 32 ? n - j0 : 32;
    if (cols > 16)
      Tiles::two[rows](kc, a, a_rs, a_ks, panel, strip_floats, c + j0, ldc, mask_of(16), mask_of(cols - 16), accumulate);
    else
      Tiles::one[rows](kc, a, a_rs, a_ks, panel, strip_floats, c + j0, ldc, mask_of(cols), 0, accumulate);
  }
}

LORY_AVX512 void merge_staged_avx512(const float* staged, int64_t terms, int64_t panel_floats, const float* coef,
                                     float* panel) {
  for (int64_t v = 0; v + 32 <= panel_floats; v += 32) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    for (int64_t i = 0; i < terms; ++i) {
      const __m512 w = _mm512_set1_ps(coef[i]);
      a0 = _mm512_fmadd_ps(w, _mm512_loadu_ps(staged + i * staged_stride(panel_floats) + v), a0);
      a1 = _mm512_fmadd_ps(w, _mm512_loadu_ps(staged + i * staged_stride(panel_floats) + v + 16), a1);
    }
    _mm512_storeu_ps(panel + v, a0);
    _mm512_storeu_ps(panel + v + 16, a1);
  }
  if (panel_floats % 32) {
    const int64_t v = panel_floats / 32 * 32;
    __m512 a0 = _mm512_setzero_ps();
    for (int64_t i = 0; i < terms; ++i)
      a0 = _mm512_fmadd_ps(_mm512_set1_ps(coef[i]), _mm512_loadu_ps(staged + i * staged_stride(panel_floats) + v), a0);
    _mm512_storeu_ps(panel + v, a0);
  }
}

template <int P>
LORY_AVX512 void merge_multi(const float* staged, int64_t terms, int64_t panel_floats, const float* coef,
                             int64_t coef_stride, float* panels, int64_t panel_stride) {
  for (int64_t v = 0; v < panel_floats; v += 16) {
    __m512 acc[P];
#pragma GCC unroll 4
    for (int j = 0; j < P; ++j) acc[j] = _mm512_setzero_ps();
    for (int64_t i = 0; i < terms; ++i) {
      const __m512 sv = _mm512_loadu_ps(staged + i * staged_stride(panel_floats) + v);
#pragma GCC unroll 4
      for (int j = 0; j < P; ++j) acc[j] = _mm512_fmadd_ps(_mm512_set1_ps(coef[j * coef_stride + i]), sv, acc[j]);
    }
#pragma GCC unroll 4
    for (int j = 0; j < P; ++j) _mm512_storeu_ps(panels + j * panel_stride + v, acc[j]);
  }
}

void merge_staged_multi_avx512(const float* staged, int64_t terms, int64_t panel_floats, const float* coef,
                               int64_t coef_stride, int64_t count, float* panels, int64_t panel_stride) {
  switch (count) {
    case 1: return merge_multi<1>(staged, terms, panel_floats, coef, coef_stride, panels, panel_stride);
    case 2: return merge_multi<2>(staged, terms, panel_floats, coef, coef_stride, panels, panel_stride);
    case 3: return merge_multi<3>(staged, terms, panel_floats, coef, coef_stride, panels, panel_stride);
    default: return merge_multi<4>(staged, terms, panel_floats, coef, coef_stride, panels, panel_stride);
  }
}

}  // namespace lory
