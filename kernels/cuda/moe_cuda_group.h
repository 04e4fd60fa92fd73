// Host-and-device pieces of the wide GEMM kernels (moe_cuda_segment.cu: `segment`; moe_cuda_group.cu:
// `group`): which jobs they take, which loads may be 16-byte vectors, and how the `group` kernel splits
// a chunk's segments into groups (one thread block per group, row block and column tile). Plain C++ so
// the host test (moe_cuda_orchestrate_test.cpp) runs exactly this grouping and this fallback decision.
#pragma once
#include <cstdint>

#include "moe_cuda_job.h"

namespace lory {

// Segments one `group` block serves: each expert vector it reads is merged into this many segments'
// B tiles, so expert tiles are read once per group instead of once per segment.
constexpr int kGroupSegments = 4;
// Rows of each segment one `group` block computes (2 warps × 32 rows per segment).
constexpr int kGroupRows = 64;
// Output columns per slot of one wide-kernel block: all slots share a 64-column staged tile (1 slot: 64,
// 2: 32, 3: 16); `group-wide` gives 3-slot jobs (backward pass A with the recompute: a, b and dh) 32 each,
// 96 staged columns, so x and dy are re-read half as often (f/32 column tiles instead of f/16).
LORY_HOST_DEVICE inline int columns_per_slot(int slots, bool wide) {
  return slots <= 1 ? 64 : slots == 2 ? 32 : wide ? 32 : 16;
}

// Experts a wide kernel merges (its per-block coefficient table); jobs with more run on `tile`.
constexpr int kWideKernelMaxTerms = 64;

// Segments [first, first + count) of group g, for `segments` segments in groups of `per_group`;
// only the last group may be partial.
struct SegmentGroup {
  long long first;
  int count;
};
LORY_HOST_DEVICE inline long long segment_group_count(long long segments, int per_group) {
  return segments > 0 && per_group > 0 ? (segments + per_group - 1) / per_group : 0;
}
LORY_HOST_DEVICE inline SegmentGroup segment_group(long long g, long long segments, int per_group) {
  const long long first = g * per_group, left = segments - first;
  return SegmentGroup{first, int(left < per_group ? (left > 0 ? left : 0) : per_group)};
}

// Which fast paths the host proved safe (alignment and unit strides).
struct VectorFlags {
  bool a[2];     // phase p's A rows can be read as 16-byte vectors
  bool b[2][2];  // phase p's operand j can be read as 16-byte vectors along its contiguous axis
};

inline bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// Whether a wide kernel (segment, group) can run `job` over `blocks_x` blocks along grid.x: 16-bit types,
// 1–3 slots, A row-major (unit column stride), every operand with a unit stride and ≤ 64 experts.
// Fills *flags when it can; otherwise the caller runs the job on the tile kernel.
template <typename T>
bool wide_kernel_takes(const SegmentJob<T>& job, bool sixteen_bit, long long blocks_x, VectorFlags* flags) {
  if (!sixteen_bit || blocks_x > 0x7fffffffLL || job.slots < 1 || job.slots > 3) return false;
  *flags = VectorFlags{};
  for (int p = 0; p < job.n_ph; ++p) {
    const Phase<T>& ph = job.ph[p];
    if (ph.a.cs != 1) return false;
    flags->a[p] = aligned16(ph.a.p) && ph.a.rs % 8 == 0 && ph.a.seg % 8 == 0;
    for (int j = 0; j < ph.n_b; ++j) {
      const MergedOperand<T>& b = ph.b[j];
      if (b.terms > kWideKernelMaxTerms || (b.cs != 1 && b.rs != 1)) return false;
      const long long other = b.cs == 1 ? b.rs : b.cs;
      flags->b[p][j] = aligned16(b.w) && other % 8 == 0 && b.term_stride % 8 == 0 && b.seg % 8 == 0;
    }
  }
  return true;
}

}  // namespace lory
