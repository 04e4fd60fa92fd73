// Runs the same-shaped merged GEMM for a range of segments, slab by slab of K: each slab's expert
// panels are read from memory once (staged into a contiguous buffer) and merged for every segment from
// there. Without this, every segment streams all E expert matrices (E·d·f floats) from DRAM, and the
// merge, not the arithmetic, sets the speed.
#pragma once
#include <cstdint>
#include <functional>

#include "merged_gemm.h"

namespace lory {

struct SegmentGemm {
  const float* a;  // A_s = a + s*a_seg, row-major [M,K] with row stride lda
  int64_t a_seg, lda;
  MergedB b;  // B̄_s uses coefficients b.coef + s*coef_seg
  int64_t coef_seg;
  float* c;  // C_s = c + s*c_seg, row stride ldc
  int64_t c_seg, ldc;
  bool accumulate;
};

// C_s (+)= A_s·B̄_s for every gemm in [gemms, gemms+count) and every s in [s0, s1); C is M×N.
// Gemms listed later that write the same C should set accumulate.
// `finished(s)`, when given, runs as soon as every C_s of segment s is final, while its tiles are still
// in cache (the SwiGLU epilogues: run after the whole range instead, they streamed from memory).
void run_segment_gemms(const SegmentGemm* gemms, int count, int64_t M, int64_t N, int64_t K, int64_t s0,
                       int64_t s1, const std::function<void(int64_t)>& finished = {});

}  // namespace lory
