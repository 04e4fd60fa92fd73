// Single-threaded packed SGEMM whose B operand is a weighted sum of matrices, merged while packing.
// This is where Lory's expert merge happens: each kc×n panel of W̄ = Σᵢ cᵢ·Wᵢ is built in cache right
// before the micro-kernel uses it, so a merged weight matrix never exists in memory as a whole.
#pragma once
#include <cstddef>
#include <cstdint>

namespace lory {

// A(m,k) = p[m*rs + k*cs]: strides express row-major, transposed or sliced operands alike.
struct StridedA {
  const float* p;
  int64_t rs, cs;
};

// B̄(k,n) = Σ_{i<terms} coef[i]·p[i*term_stride + k*rs + n*cs]; coef == nullptr means one term, weight 1.
struct MergedB {
  const float* p;
  int64_t term_stride, rs, cs;
  const float* coef;
  int64_t terms;
};

// C[M,N] (row stride ldc) = A·B̄, or C += A·B̄ when accumulate. Callers split N across threads.
void merged_gemm(int64_t M, int64_t N, int64_t K, const StridedA& A, const MergedB& B, float* C, int64_t ldc,
                 bool accumulate);

// Micro-kernel strip widths, for callers that keep operands pre-packed.
constexpr int64_t kStripRows = 6, kStripCols = 16;

// X[K, N] row-major (row stride ld) → strips of `width` columns: out[(strip*K + k)*width + w], zero past N.
// Packs a row-major operand once into the layout the micro-kernel streams (width kStripRows for an A
// operand read transposed, kStripCols for a B operand).
void pack_strips(const float* X, int64_t K, int64_t N, int64_t ld, int64_t width, float* out);

// C[M,N] = A·B from pre-packed strips: a = strips of 6 rows (k-major, K deep), b = strips of 16 columns.
void strips_gemm(int64_t M, int64_t N, int64_t K, const float* a, const float* b, float* C, int64_t ldc);

// Column block width the kernels hand to one task.
constexpr int64_t kGemmColumnBlock = 64;

// The pieces merged_gemm is made of, for callers that reuse one slab of expert panels across segments:
// depth kc of a slab whose `hot_terms` source panels (kc×N each) should stay in L2 together,
int64_t panel_depth_for(int64_t K, int64_t N, int64_t hot_terms);
// a per-thread buffer for one packed panel (kc × N rounded up to 16 columns),
float* thread_panel_buffer(size_t floats);
// packing B̄(k0..k0+kc, 0..N) into it,
void pack_merged_panel(const MergedB& B, int64_t k0, int64_t kc, int64_t N, float* panel);
// merging `terms` staged single-matrix panels (each kc×N packed, staged_stride(panel_floats) apart) with
// coefficients,
void merge_staged_panels(const float* staged, int64_t terms, int64_t panel_floats, const float* coef, float* panel);
// the same for up to kMergeSegments segments at once (coefficient set j at coef + j*coef_stride, panel j at
// panels + j*panel_stride): the staged panels are read once for all of them,
constexpr int64_t kMergeSegments = 4;
// Staged panels (and sets of merged ones) sit one cache line further apart than their size: panels of
// kc×64 floats are multiples of 4 KiB, which put the E streams a merge reads, and the panels it writes,
// all in one L1 set.
constexpr int64_t kPanelPad = 16;
inline int64_t staged_stride(int64_t panel_floats) { return panel_floats + kPanelPad; }
void merge_staged_panels_multi(const float* staged, int64_t terms, int64_t panel_floats, const float* coef,
                               int64_t coef_stride, int64_t count, float* panels, int64_t panel_stride);
// and C (+)= A(:, 0..kc)·panel, with A already offset to the slab's first column.
void gemm_on_panel(int64_t M, int64_t N, int64_t kc, const StridedA& A, const float* panel, float* C, int64_t ldc,
                   bool accumulate);

// One output of gemm_on_panels: n columns, from the panel's next ⌈n/16⌉ strips.
struct PanelOutput {
  float* c;
  int64_t ldc, n;
  bool accumulate;
};
// Several GEMMs sharing A, their packed panels one after another (each padded to whole 16-column strips):
// outs[o].c (+)= A(:, 0..kc)·panel_o. Each row strip of A is read once for all of them (the forward's
// gate and up projections both read x).
void gemm_on_panels(int64_t M, int64_t kc, const StridedA& A, const float* panel, const PanelOutput* outs, int count);

}  // namespace lory
