// The backward's fan-out of merged-weight gradient tiles to the experts.
#pragma once
#include <cstdint>

namespace lory {

// One tile (rows×cols) of every expert's weight gradient, from the tiles G_s of `segments` segments,
// stored row-interleaved: G_s(r, j) = tiles[(r·segments + s)·cols + j] (row r of every segment together,
// so a pass over the segments reads one contiguous run; a tile-after-tile layout put all the segments'
// rows at a multiple of 4 KiB apart, in one L1 set), for i < E:
//   dWᵢ = (first ? 0 : dWᵢ) + Σ_s coef[s·E + i]·G_s      and      dots[s·E + i] += ⟨G_s, Wᵢ⟩ (double).
// w and dw point at expert 0's tile; expert i's is at + i·expert_stride, its rows ldw apart.
// Each dWᵢ tile is read and written once for all the segments; on the AVX-512 path both sums run as
// small register-blocked GEMMs (4 experts × 64 columns, 4 segments × 4 experts), so they are bound by
// FMAs, not by traffic.
void fan_out_tile(int64_t rows, int64_t cols, const float* tiles, int64_t segments, const float* coef, int64_t E,
                  const float* w, float* dw, int64_t expert_stride, int64_t ldw, bool first, double* dots);

// The simple reference: the same sums with plain loops in double (tests compare every path against it).
void fan_out_tile_reference(int64_t rows, int64_t cols, const float* tiles, int64_t segments, const float* coef,
                            int64_t E, const float* w, float* dw, int64_t expert_stride, int64_t ldw, bool first,
                            double* dots);

}  // namespace lory
