// Slow, obviously-correct float64 reference of the merged-expert SwiGLU FFN (naive loops).
// Inputs are float (what the ops receive); every intermediate and output is double.
#pragma once
#include "lory/moe_shape.h"

namespace lory {

// y[G,T,d] = per segment g: (silu(x·W̄g) ⊙ (x·W̄u))·W̄d with W̄ = Σᵢ e[g,i]·Wᵢ.
void moe_forward_reference(const MoeShape& s, const float* x, const float* e, const float* w_gate,
                           const float* w_up, const float* w_down, double* y);

// Gradients of ⟨y, dy⟩ w.r.t. x, e, W_gate, W_up, W_down.
void moe_backward_reference(const MoeShape& s, const float* x, const float* e, const float* w_gate,
                            const float* w_up, const float* w_down, const float* dy, double* dx, double* de,
                            double* dw_gate, double* dw_up, double* dw_down);

// What the training forward saves: a = x·W̄g, then b = x·W̄u, [2, G, T, f] (all a, then all b).
void moe_saved_reference(const MoeShape& s, const float* x, const float* e, const float* w_gate, const float* w_up,
                         double* ab);

// Same forward with double inputs: the finite-difference test perturbs inputs below float precision.
void moe_forward_reference_f64(const MoeShape& s, const double* x, const double* e, const double* w_gate,
                               const double* w_up, const double* w_down, double* y);

}  // namespace lory
