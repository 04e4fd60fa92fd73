// Host-side scratch planning of the CUDA merged-expert FFN (pure C++, no CUDA headers): how many
// segments run per chunk so the device scratch stays under a byte budget, and where each buffer sits.
// The CUDA kernel and its ORT wrapper size and carve their scratch with exactly these functions, so the
// host unit test (chunk_plan_test.cpp) covers the layout the GPU code uses.
#pragma once
#include <cstddef>
#include <cstdint>

#include "lory/moe_shape.h"

namespace lory {

enum class CudaDType { f32, f16, bf16 };
const char* dtype_name(CudaDType t);
size_t element_size(CudaDType t);

// Which implementation of the per-segment GEMMs runs (kernels/cuda/moe_cuda*.cu, docs/kernels.md).
//   tile:    the B tile is merged inside every 64×64 output tile (the measured-nothing-yet default);
//   segment: one block spans a whole segment's rows (≤ 256), so each merged B tile is built once per
//            segment; A arrives through a cp.async double buffer (sm_80+);
//   group:   one block serves a group of kGroupSegments segments (moe_cuda_group.h) and merges each
//            expert vector it reads into all of their B tiles (issue 25; never run on a GPU yet);
//   group_wide ("group-wide"): group with 32 instead of 16 columns per slot for 3-slot jobs (backward
//            pass A with the recompute; columns_per_slot, moe_cuda_group.h; never run on a GPU).
// segment and group(-wide) take 16-bit types only: float32 (and E > 64) runs the tile kernel under any switch.
enum class CudaKernel { tile, segment, group, group_wide };
const char* kernel_name(CudaKernel k);
bool parse_kernel_name(const char* s, CudaKernel* out);  // "tile" | "segment" | "group" | "group-wide"

// Which weight-gradient path runs (backward C and D, docs/kernels.md):
//   tile:   a 64×64 dW tile × ≤ 8 experts per block, G_s recomputed per group of 8 experts, W read from
//           global memory per segment; `de` summed tile after tile by one thread per output (default);
//   shared: a 64×64 dW tile × all experts (≤ 32) per block, G_s computed once per segment and pass, W
//           and dW tiles kept in shared memory; `de` by one warp per output (moe_cuda_wgrad.h; issue 25,
//           never run on a GPU). 16-bit only: float32 and E > 32 run the tile path under either switch.
enum class CudaWgrad { tile, shared };
const char* wgrad_name(CudaWgrad w);
bool parse_wgrad_name(const char* s, CudaWgrad* out);  // "tile" | "shared"

struct MoeCudaOptions {
  size_t scratch_budget_bytes = size_t(256) << 20;  // like the CPU kernel (MoeCpuOptions)
  CudaKernel kernel = CudaKernel::tile;
  CudaWgrad wgrad = CudaWgrad::tile;
};

// Output tile of the weight-gradient kernel (also the granularity of its `de` partial sums).
constexpr int64_t kWeightGradTile = 64;
constexpr size_t kScratchAlign = 256;

// A split of G segments into chunks of at most `segments_per_chunk` (the last may be shorter).
struct ChunkPlan {
  int64_t segments = 0;            // G
  int64_t segments_per_chunk = 0;  // Gc (0 only when G = 0)
  int64_t chunks = 0;
  size_t scratch_bytes = 0;        // what the caller must provide for this plan
  bool over_budget = false;        // true when even one segment (plus fixed buffers) exceeds the budget
};

// per_segment: bytes one segment of a chunk needs; fixed: bytes needed once whatever the split;
// fixed_if_split: bytes needed once only when there are ≥ 2 chunks (state carried across chunks).
// Takes the largest Gc that fits the budget; at least 1 segment per chunk whatever the budget.
ChunkPlan plan_chunks(int64_t segments, size_t per_segment, size_t fixed, size_t fixed_if_split, size_t budget);

// Segments [first, first + count) of chunk c.
struct ChunkRange {
  int64_t first, count;
};
ChunkRange chunk_range(const ChunkPlan& p, int64_t c);

// Buffers of one forward / backward call, as byte offsets into the scratch (each kScratchAlign-aligned).
//   forward:  h [Gc,T,f] (compute type): silu(x·W̄g) ⊙ (x·W̄u), written by the fused gate/up GEMM
//   backward: h, da, db [Gc,T,f] (compute type) from the fused recompute + dh GEMM;
//             de_partial [tiles, Gc, E] float32: ⟨G_s, Wᵢ⟩ per weight-gradient output tile, summed in a
//             fixed order afterwards (deterministic `de`, no atomics);
//             dw_acc [3, E, d·f] float32, for 16-bit types split into ≥ 2 chunks: dW accumulated across
//             chunks in float32 (rounding a 16-bit running sum once per chunk loses ~√C·u/2 relative,
//             about 1% on bfloat16 dW at 98 chunks). It is parameter-sized state, like optimizer state,
//             so it is not counted against the budget (which bounds the activations): scratch_bytes is
//             then up to budget + dw_acc_bytes.
struct ForwardLayout {
  ChunkPlan plan;
  size_t h = 0;
};
struct BackwardLayout {
  ChunkPlan plan;
  size_t h = 0, da = 0, db = 0, de_partial = 0, dw_acc = 0;
  bool has_dw_acc = false;
  size_t dw_acc_bytes = 0;  // 0 without the accumulator; the rest of scratch_bytes is within the budget
  int64_t tiles_gate = 0, tiles_down = 0;  // weight-gradient output tiles of one [d,f] / [f,d] matrix
};

ForwardLayout plan_forward(const MoeShape& s, CudaDType t, size_t budget);
BackwardLayout plan_backward(const MoeShape& s, CudaDType t, size_t budget);

// What the unchunked kernel of before needed (a, b in float32 + h), for comparison in tests and docs.
size_t unchunked_forward_scratch_bytes(const MoeShape& s, CudaDType t);
size_t unchunked_backward_scratch_bytes(const MoeShape& s, CudaDType t);

}  // namespace lory
