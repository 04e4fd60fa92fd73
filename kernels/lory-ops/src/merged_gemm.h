// Single-threaded packed SGEMM whose B operand is a weighted sum of matrices, merged while packing.
// This is where Lory's expert merge happens: each kc×n panel of W̄ = Σᵢ cᵢ·Wᵢ is built in cache right
// before the micro-kernel uses it, so a merged weight matrix never exists in memory as a whole.
#pragma once
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

// Largest N one call should get so the merge's source panels stay in L2.
constexpr int64_t kGemmColumnBlock = 64;

}  // namespace lory
