// Fast CPU kernel of the merged-expert SwiGLU FFN (float32): merges experts inside the GEMM packing,
// segment by segment, so scratch is bounded by activations, never by G merged weight copies.
#pragma once
#include <cstddef>
#include <functional>

#include "lory/moe_shape.h"

namespace lory {

// Runs body(i) for every i in [0, n), in any order, possibly concurrently. The ORT wrapper maps it to
// KernelContext_ParallelFor (the session's intra-op pool); tests and benchmarks use std::thread.
using ParallelFor = std::function<void(size_t n, const std::function<void(size_t)>& body)>;

ParallelFor serial_for();
ParallelFor thread_for(int threads);  // spawns `threads` workers per call

struct MoeCpuOptions {
  // Upper bound for the caller-provided scratch; segments are processed in chunks to respect it.
  size_t scratch_budget_bytes = size_t(256) << 20;
};

// The pre-activations a = x·W̄g and b = x·W̄u of every token, [2, G, T, f] (all a, then all b): what a
// training forward saves so that its backward need not recompute them (two of the backward's five
// GEMMs; docs/kernels.md measures the trade).
inline size_t moe_saved_floats(const MoeShape& s) { return size_t(2 * s.G * s.T * s.f); }

// Scratch sizes in floats for the given shape (at least one segment's worth, whatever the budget).
// A forward that saves a and b writes them to `saved` and needs scratch for h only.
size_t moe_forward_scratch_floats(const MoeShape& s, const MoeCpuOptions& opt = {}, bool saving = false);
size_t moe_backward_scratch_floats(const MoeShape& s, const MoeCpuOptions& opt = {});

// y = W̄d(silu(x·W̄g) ⊙ x·W̄u) per segment; also writes a, b to `saved` unless it is null.
void moe_forward(const MoeShape& s, const float* x, const float* e, const float* w_gate, const float* w_up,
                 const float* w_down, float* y, float* saved, float* scratch, const ParallelFor& parallel,
                 const MoeCpuOptions& opt = {});

// Gradients of ⟨y, dy⟩. Reads a, b from `saved` (the forward's) or, when it is null, recomputes them.
void moe_backward(const MoeShape& s, const float* x, const float* e, const float* w_gate, const float* w_up,
                  const float* w_down, const float* dy, const float* saved, float* dx, float* de, float* dw_gate,
                  float* dw_up, float* dw_down, float* scratch, const ParallelFor& parallel,
                  const MoeCpuOptions& opt = {});

}  // namespace lory
