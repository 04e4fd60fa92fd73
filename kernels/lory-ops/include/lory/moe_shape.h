// Shapes of the merged-expert SwiGLU FFN (Lory) and their validation.
// Shared by the CPU kernel, the CUDA kernel and both ORT wrappers, so every entry point
// reports a shape mismatch with the same wording.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lory {

// G segments of T tokens, model width d, expert FFN width f, E experts.
struct MoeShape {
  int64_t G = 0, T = 0, d = 0, f = 0, E = 0;
  int64_t x_elems() const { return G * T * d; }
  int64_t e_elems() const { return G * E; }
  int64_t w_elems() const { return E * d * f; }  // each of W_gate, W_up, W_down
};

// The op's inputs by position: x[G,T,d], e[G,E], W_gate[E,d,f], W_up[E,d,f], W_down[E,f,d],
// and for the gradient op also dy[G,T,d].
extern const char* const kMoeInputNames[7];

// Derives the shape from the inputs' dimensions and checks every input against it.
// Returns "" when consistent, otherwise a message naming the op, the input and all shapes.
std::string infer_moe_shape(const char* op_name, const std::vector<std::vector<int64_t>>& input_dims,
                            MoeShape* out);

}  // namespace lory
