// Scratch planning of the CUDA merged-expert FFN: see moe_cuda_plan.h.
#include "moe_cuda_plan.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace lory {

const char* dtype_name(CudaDType t) {
  return t == CudaDType::f32 ? "float32" : t == CudaDType::f16 ? "float16" : "bfloat16";
}

size_t element_size(CudaDType t) { return t == CudaDType::f32 ? 4 : 2; }

const char* kernel_name(CudaKernel k) {
  return k == CudaKernel::tile      ? "tile"
         : k == CudaKernel::segment ? "segment"
         : k == CudaKernel::group   ? "group"
                                    : "group-wide";
}

bool parse_kernel_name(const char* s, CudaKernel* out) {
  if (!s) return false;
  if (std::strcmp(s, "tile") == 0) return *out = CudaKernel::tile, true;
  if (std::strcmp(s, "segment") == 0) return *out = CudaKernel::segment, true;
  if (std::strcmp(s, "group") == 0) return *out = CudaKernel::group, true;
  if (std::strcmp(s, "group-wide") == 0) return *out = CudaKernel::group_wide, true;
  return false;
}

const char* wgrad_name(CudaWgrad w) { return w == CudaWgrad::tile ? "tile" : "shared"; }

bool parse_wgrad_name(const char* s, CudaWgrad* out) {
  if (!s) return false;
  if (std::strcmp(s, "tile") == 0) return *out = CudaWgrad::tile, true;
  if (std::strcmp(s, "shared") == 0) return *out = CudaWgrad::shared, true;
  return false;
}

namespace {

size_t align_up(size_t n) { return (n + kScratchAlign - 1) / kScratchAlign * kScratchAlign; }
int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Offsets of buffers sized per_segment_bytes[i] * Gc, each aligned; returns the total.
struct Packer {
  size_t used = 0;
  size_t take(size_t bytes) {
    const size_t at = used;
    used += align_up(bytes);
    return at;
  }
};

}  // namespace

ChunkPlan plan_chunks(int64_t segments, size_t per_segment, size_t fixed, size_t fixed_if_split, size_t budget) {
  ChunkPlan p;
  p.segments = segments;
  if (segments <= 0) return p;
  per_segment = std::max<size_t>(per_segment, 1);
  size_t whole = 0;  // all segments at once; SIZE_MAX when that does not even fit in size_t
  if (__builtin_mul_overflow(per_segment, size_t(segments), &whole) || __builtin_add_overflow(whole, fixed, &whole))
    whole = SIZE_MAX;
  if (whole <= budget) {
    p.segments_per_chunk = segments, p.chunks = 1, p.scratch_bytes = whole;
    return p;
  }
  const size_t fixed_split = fixed + fixed_if_split;
  const size_t room = budget > fixed_split ? budget - fixed_split : 0;
  int64_t gc = int64_t(std::min<size_t>(room / per_segment, size_t(segments - 1)));  // G did not fit: ≥ 2 chunks
  if (gc >= 1) {
    p.segments_per_chunk = gc;
    p.chunks = (segments + gc - 1) / gc;
    p.scratch_bytes = fixed_split + per_segment * size_t(gc);
    return p;
  }
  // Not even one segment fits: the smallest scratch that works, one segment per chunk or all at once
  // (the latter needs no state carried across chunks, which can be the larger part).
  p.over_budget = true;
  const size_t one_per_chunk = fixed_split + per_segment;
  if (segments == 1 || whole <= one_per_chunk) {
    p.segments_per_chunk = segments, p.chunks = 1, p.scratch_bytes = whole;
  } else {
    p.segments_per_chunk = 1, p.chunks = segments, p.scratch_bytes = one_per_chunk;
  }
  return p;
}

ChunkRange chunk_range(const ChunkPlan& p, int64_t c) {
  const int64_t first = c * p.segments_per_chunk;
  return {first, std::max<int64_t>(0, std::min(p.segments_per_chunk, p.segments - first))};
}

// Alignment: every buffer is rounded up to kScratchAlign once, so the plan's per-segment bytes are the
// unaligned sizes and the alignment slack goes into `fixed`.
ForwardLayout plan_forward(const MoeShape& s, CudaDType t, size_t budget) {
  ForwardLayout l;
  const size_t per_segment = size_t(s.T * s.f) * element_size(t);
  l.plan = plan_chunks(s.G, per_segment, kScratchAlign, 0, budget);
  Packer pk;
  l.h = pk.take(per_segment * size_t(l.plan.segments_per_chunk));
  l.plan.scratch_bytes = std::max(l.plan.scratch_bytes, pk.used);
  return l;
}

BackwardLayout plan_backward(const MoeShape& s, CudaDType t, size_t budget) {
  BackwardLayout l;
  l.tiles_gate = ceil_div(s.d, kWeightGradTile) * ceil_div(s.f, kWeightGradTile);
  l.tiles_down = l.tiles_gate;  // [f,d] has as many 64×64 tiles as [d,f]
  const int64_t tiles = 2 * l.tiles_gate + l.tiles_down;
  const size_t act = size_t(s.T * s.f) * element_size(t);
  const size_t de_part = size_t(tiles * s.E) * sizeof(float);
  const size_t per_segment = 3 * act + de_part;
  const size_t fixed = 4 * kScratchAlign;
  // The float32 dW state is parameter-sized and not part of the activation budget (moe_cuda_plan.h).
  l.plan = plan_chunks(s.G, per_segment, fixed, 0, budget);
  const size_t gc = size_t(l.plan.segments_per_chunk);
  Packer pk;
  l.h = pk.take(act * gc);
  l.da = pk.take(act * gc);
  l.db = pk.take(act * gc);
  l.de_partial = pk.take(de_part * gc);
  l.plan.scratch_bytes = std::max(l.plan.scratch_bytes, pk.used);  // the activations: within the budget
  l.has_dw_acc = t != CudaDType::f32 && l.plan.chunks > 1;
  if (l.has_dw_acc) {
    l.dw_acc = pk.take(3 * size_t(s.E * s.d * s.f) * sizeof(float));
    l.dw_acc_bytes = pk.used - l.dw_acc;
    l.plan.scratch_bytes += l.dw_acc_bytes;
  }
  return l;
}

size_t unchunked_forward_scratch_bytes(const MoeShape& s, CudaDType t) {
  const size_t n = size_t(s.G * s.T * s.f);
  return 2 * align_up(n * 4) + align_up(n * element_size(t));
}

size_t unchunked_backward_scratch_bytes(const MoeShape& s, CudaDType t) {
  const size_t n = size_t(s.G * s.T * s.f);
  return 3 * align_up(n * 4) + 3 * align_up(n * element_size(t)) + align_up(size_t(s.G * s.E) * 4);
}

}  // namespace lory
