// AVX-512 micro-kernels (zmm), compiled in their own translation unit with per-function target
// attributes: nothing here runs unless the CPU reports avx512f (see gemm_path.h), so the library still
// loads and runs on CPUs without it.
#pragma once
#include <cstdint>

namespace lory {

// Most rows one call computes (R×32 tile: 2R accumulators + 2 B vectors + 1 broadcast ≤ 32 zmm).
constexpr int kMaxRowsAvx512 = 14;
// Rows per tile by default: 8 rows of A at the panel depth cap (768) are 24 KiB, within a 32 KiB L1d
// (14 rows would be 43 KiB and stream A from L2 once per 32 columns); T = 64 and 128 split evenly.
// On Zen 4 (zmm FMAs issue as two 256-bit halves) 6, 8 and 14 rows measured alike within noise.
constexpr int kDefaultRowsAvx512 = 8;

// C[rows, n] (row stride ldc) = or += A·P for rows ≤ kMaxRowsAvx512, where A(r,k) = a[r*a_rs + k*a_ks]
// and P[kc, n] is stored as consecutive 16-column strips (strip j at panel + j*kc*16, zero-padded past n).
// Columns past n are never touched (masked loads/stores), so edge tiles need no local copy.
void panel_rows_avx512(int64_t rows, int64_t n, int64_t kc, const float* a, int64_t a_rs, int64_t a_ks,
                       const float* panel, float* c, int64_t ldc, bool accumulate);

// panel[v] = Σᵢ coef[i]·staged[i*panel_floats + v] for v < panel_floats (a multiple of 16).
void merge_staged_avx512(const float* staged, int64_t terms, int64_t panel_floats, const float* coef, float* panel);

// The same for `count` ≤ 4 coefficient sets at once (coef + j*coef_stride → panels + j*panel_stride):
// each staged vector is read once for all of them.
void merge_staged_multi_avx512(const float* staged, int64_t terms, int64_t panel_floats, const float* coef,
                               int64_t coef_stride, int64_t count, float* panels, int64_t panel_stride);

}  // namespace lory
