// How the CPU kernel cuts its passes into parallel tasks and segment chunks.
#pragma once
#include <algorithm>
#include <cstdint>

#include "lory/moe_cpu.h"
#include "merged_gemm.h"

namespace lory {

// Segments per chunk so that chunk_floats_per_segment·Gc floats fit the budget (at least 1).
inline int64_t segments_per_chunk(const MoeShape& s, int64_t floats_per_segment, size_t budget_bytes) {
  const int64_t fit = int64_t(budget_bytes / sizeof(float)) / std::max<int64_t>(1, floats_per_segment);
  return std::max<int64_t>(1, std::min(s.G, fit));
}

// Tasks = column blocks of N × groups of segments. A task loops over its segments innermost so the
// expert panels it merges stay in cache from one segment to the next; groups exist only to give
// enough tasks to the pool when N has few blocks.
template <typename Body>  // body(j0, nb, s_begin, s_end)
void for_column_blocks_and_segments(const ParallelFor& parallel, int64_t N, int64_t segments, Body&& body) {
  const int64_t nb = kGemmColumnBlock;
  const int64_t blocks = (N + nb - 1) / nb;
  const int64_t want_groups = std::max<int64_t>(1, (8 + blocks - 1) / blocks);
  const int64_t group = (segments + std::min(segments, want_groups) - 1) / std::min(segments, want_groups);
  const int64_t groups = (segments + group - 1) / group;
  parallel(size_t(blocks * groups), [&](size_t task) {
    const int64_t b = int64_t(task) % blocks, g = int64_t(task) / blocks;
    const int64_t j0 = b * nb;
    body(j0, std::min(nb, N - j0), g * group, std::min(segments, (g + 1) * group));
  });
}

}  // namespace lory
