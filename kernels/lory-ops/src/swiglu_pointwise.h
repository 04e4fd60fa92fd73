// Element-wise SwiGLU pieces on rows of length n, vectorised (AVX2) with a scalar fallback.
#pragma once
#include <cstdint>

namespace lory {

// h = silu(a) ⊙ b
void swiglu_forward(int64_t n, const float* a, const float* b, float* h);

// From a, b and dh = ∂L/∂h: h, da = dh ⊙ b ⊙ silu'(a), db = dh ⊙ silu(a).
void swiglu_backward(int64_t n, const float* a, const float* b, const float* dh, float* h, float* da, float* db);

}  // namespace lory
