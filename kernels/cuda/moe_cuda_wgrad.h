// Host-and-device pieces of the `shared` weight-gradient path (MoeCudaOptions::wgrad = shared,
// moe_cuda_wgrad.cu; never run on a GPU, docs/kernels.md): which products it takes, how a block splits
// its 64×64 output tile into row passes, and the warp-per-output `de` reduction's fixed order. Plain
// C++, so the host test (moe_cuda_orchestrate_test.cpp) runs exactly this indexing and this order with
// the GEMMs emulated.
#pragma once
#include "moe_cuda_group.h"
#include "moe_cuda_job.h"
#include "moe_cuda_plan.h"

namespace lory {

// Experts × rows of the W (2 B) and float32 dW (4 B) tiles one block keeps in shared memory:
// 512 × 64 columns × 6 B = 192 KiB (sm_90 allows 227 KiB per block).
constexpr int kWgradSharedSlots = 512;
// Fewest rows per pass: WMMA computes 16-row fragments.
constexpr int kWgradMinRows = 16;
constexpr int kWgradTile = int(kWeightGradTile);

// Rows of each pass over the 64-row tile for E experts: 64 (E ≤ 8), 32 (E ≤ 16), 16 (E ≤ 32); 0 when E
// is larger (the tile kernel runs those products).
LORY_HOST_DEVICE inline int wgrad_pass_rows(int E) {
  for (int rows = kWgradTile; rows >= kWgradMinRows; rows /= 2)
    if (E >= 1 && E * rows <= kWgradSharedSlots) return rows;
  return 0;
}

// Rows [first, first + count) of pass p of the tile starting at row m0, for M rows in all (count 0:
// the pass lies past M).
struct RowRange {
  int first, count;
};
LORY_HOST_DEVICE inline RowRange wgrad_pass(int m0, int M, int rows, int p) {
  const int first = m0 + p * rows, left = M - first;
  return RowRange{first, left <= 0 ? 0 : left < rows ? left : rows};
}

// Whether the shared kernel takes this product: 16-bit, A = a transposed activation with unit row
// stride (xᵀ, hᵀ), B one plain matrix per segment with unit column stride, E ≤ 32. Otherwise the tile
// weight-gradient kernel runs it. *vector (when taken): A and B can be read as 16-byte vectors.
template <typename T>
bool wgrad_shared_takes(const Phase<T>& prod, bool sixteen_bit, int E, bool* vector) {
  const MergedOperand<T>& b = prod.b[0];
  if (!sixteen_bit || wgrad_pass_rows(E) == 0 || prod.n_b != 1 || prod.a.rs != 1 || b.cs != 1 || b.coef) return false;
  *vector = aligned16(prod.a.p) && prod.a.cs % 8 == 0 && prod.a.seg % 8 == 0 && aligned16(b.w) && b.rs % 8 == 0 &&
            b.seg % 8 == 0;
  return true;
}

// de_reduce with one warp per output: lane l sums tiles l, l + 32, … in order, then the warp adds the
// lanes in a fixed tree (step `off` = 16, 8, 4, 2, 1: lane l takes lane l + off's value). Same bits on
// every run; not the tile path's order (tile after tile), so not its bits.
constexpr int kDeLanes = 32;
LORY_HOST_DEVICE inline float de_lane_sum(const float* partial, long long tiles, long long n, long long j, int lane) {
  float sum = 0.f;
  for (long long t = lane; t < tiles; t += kDeLanes) sum += partial[t * n + j];
  return sum;
}
// Lane 0's result of the tree over the lanes' sums (the host's rendering of the shuffles).
inline float de_tree_sum(float (&lanes)[kDeLanes]) {
  for (int off = kDeLanes / 2; off > 0; off /= 2)
    for (int l = 0; l < off; ++l) lanes[l] += lanes[l + off];
  return lanes[0];
}

}  // namespace lory
