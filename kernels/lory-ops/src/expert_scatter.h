// The backward's fan-out of merged-weight gradient tiles to the experts.
#pragma once
#include <cstdint>

namespace lory {

// For one tile (rows×cols) and one expert i, given the tiles G_s of `segments` segments stored one after
// another (each rows×cols, contiguous): dWᵢ = (first ? 0 : dWᵢ) + Σ_s coef[s]·G_s, and
// dots[s] += ⟨G_s, Wᵢ⟩ (double). w and dw are tiles of Wᵢ and dWᵢ with row stride ldw.
// Taking several segments per pass reads and writes each dWᵢ tile once per group, not once per segment.
void fan_out_to_expert(int64_t rows, int64_t cols, const float* tiles, int64_t segments, const float* coef,
                       const float* w, float* dw, int64_t ldw, bool first, double* dots);

constexpr int64_t kMaxFanOutSegments = 8;

}  // namespace lory
