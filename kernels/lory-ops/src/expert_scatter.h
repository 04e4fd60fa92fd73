// The backward's per-segment fan-out of a merged-weight gradient tile to the experts.
#pragma once
#include <cstdint>

namespace lory {

// For a tile C (rows×cols, row stride ldc) of G_s and the same tile of Wᵢ and dWᵢ (row stride ldw):
// dWᵢ = (first ? 0 : dWᵢ) + coef·C, and returns ⟨C, Wᵢ⟩ (accumulated in double).
double scatter_and_dot(int64_t rows, int64_t cols, const float* C, int64_t ldc, const float* w, float* dw,
                       int64_t ldw, float coef, bool first);

}  // namespace lory
