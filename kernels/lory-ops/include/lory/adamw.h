// Fused AdamW update for one parameter tensor (float32): one pass reads p, g, m, v and writes p', m', v'
// (7 floats of traffic per element), where the same update as separate ONNX elementwise ops makes
// about 15 passes. Matches src/graph/optim/adamw.ts (PyTorch's order):
//   g ← g·grad_scale                                   (global-norm clipping's factor; 1 without)
//   m' = β₁·m + (1−β₁)·g;   v' = β₂·v + (1−β₂)·g²
//   p' = p·decay − step_size · m' / (√v' / bc2_sqrt + ε)
// with decay = 1 − lr·wd, step_size = lr/(1−β₁ᵗ), bc2_sqrt = √(1−β₂ᵗ).
#pragma once
#include <cstdint>

#include "lory/moe_cpu.h"

namespace lory {

// The op's `hyper` input, in this order.
struct AdamWHyper {
  float decay, step_size, bc2_sqrt, grad_scale, beta1, beta2, eps;
};
constexpr int kAdamWHyperCount = 7;

// Outputs may not alias inputs. Splits n into chunks run through `parallel`.
void adamw_update(int64_t n, const float* p, const float* g, const float* m, const float* v, const AdamWHyper& h,
                  float* p_out, float* m_out, float* v_out, const ParallelFor& parallel);

// Float64 reference: the formula above element by element.
void adamw_update_reference(int64_t n, const float* p, const float* g, const float* m, const float* v,
                            const AdamWHyper& h, double* p_out, double* m_out, double* v_out);

}  // namespace lory
