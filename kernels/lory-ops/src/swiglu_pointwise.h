// Element-wise SwiGLU pieces on rows of length n, vectorised (AVX2) with a scalar fallback.
#pragma once
#include <cstdint>

namespace lory {

// h = silu(a) ⊙ b (h may alias a)
void swiglu_forward(int64_t n, const float* a, const float* b, float* h);

// From a, b and dh = ∂L/∂h: h, da = dh ⊙ b ⊙ silu'(a), db = dh ⊙ silu(a).
// Outputs may alias inputs element for element (h=a, da=dh, db=b): the kernel updates in place.
void swiglu_backward(int64_t n, const float* a, const float* b, const float* dh, float* h, float* da, float* db);

}  // namespace lory
