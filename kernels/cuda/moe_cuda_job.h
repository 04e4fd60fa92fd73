// What one pass of the CUDA merged-expert FFN asks of a GEMM kernel: phases of A·B̄ products with
// merged B operands into up to three accumulators, then a fused epilogue. Plain structs, compiled by
// nvcc and by the host compiler alike, so the orchestration (moe_cuda_orchestrate.h) is testable on
// the host against an emulated backend (moe_cuda_orchestrate_test.cpp).
#pragma once
#include <cmath>

#ifdef __CUDACC__
#define LORY_HOST_DEVICE __host__ __device__
#else
#define LORY_HOST_DEVICE
#endif

namespace lory {

// Element (r, c) of segment s: p[s*seg + r*rs + c*cs].
template <typename T>
struct View {
  const T* p;
  long long seg, rs, cs;
};

// B̄(k,n) = Σᵢ coef[s*coef_seg + i]·w[s*seg + i*term_stride + k*rs + n*cs]; coef == nullptr: one plain
// matrix per segment (seg ≠ 0 only then). `slot`: which accumulator (output column group) A·B̄ adds into.
template <typename T>
struct MergedOperand {
  const T* w;
  long long term_stride, rs, cs, seg;
  const T* coef;
  long long coef_seg;
  int terms, slot;
};

// Products sharing one A operand: Σ_b A·B̄_b into accumulator slot b.slot.
template <typename T>
struct Phase {
  View<T> a;
  int K, n_b;
  MergedOperand<T> b[2];
};

// What a job does with its accumulators (slot values v0, v1, v2 of one output element):
//   store:             out0 = v0                             (y, dx)
//   swiglu:            out0 = h = silu(v0)·v1               (forward gate/up: v0 = x·W̄g, v1 = x·W̄u)
//   swiglu_save:       as swiglu, and out1 = a = v0, out2 = b = v1   (the training forward saves a, b)
//   swiglu_grad:       v0 = a, v1 = b, v2 = dh → out0 = h, out1 = da, out2 = db
//   swiglu_grad_saved: as swiglu_grad with a = in0, b = in1 (the forward's saved values) and dh = v0
enum class Epilogue { store, swiglu, swiglu_save, swiglu_grad, swiglu_grad_saved };

// One per-segment GEMM job over `segments` segments: C_s[M,N] per slot, then the epilogue. Pointers
// are already offset to the first segment of the chunk. `in` (swiglu_grad_saved only) is read at the
// positions `out` is written to: element (m, n) of segment s at s*out_seg + m*out_ld + n.
template <typename T>
struct SegmentJob {
  Phase<T> ph[2];
  int n_ph, slots, M, N;
  Epilogue epi;
  T* out[3];
  const T* in[2];
  long long out_seg, out_ld;
};

// Whether the epilogue reads the job's `in` tensors (the caller converts them to float for it).
LORY_HOST_DEVICE inline bool epilogue_reads_saved(Epilogue epi) { return epi == Epilogue::swiglu_grad_saved; }

LORY_HOST_DEVICE inline float lory_sigmoid(float a) {
#ifdef __CUDA_ARCH__
  return 1.f / (1.f + __expf(-a));
#else
  return 1.f / (1.f + std::exp(-a));
#endif
}

// h, da, db from a, b and dh.
LORY_HOST_DEVICE inline void swiglu_backward_values(float a, float b, float dh, float* out) {
  const float sg = lory_sigmoid(a), silu = a * sg;
  out[0] = silu * b;
  out[1] = dh * b * sg * (1.f + a * (1.f - sg));
  out[2] = dh * silu;
}

// The epilogue's values (before rounding to the output type); returns how many outputs it writes.
// `saved` holds (a, b) from the job's `in` tensors when epilogue_reads_saved(epi), else it is unused.
LORY_HOST_DEVICE inline int epilogue_values(Epilogue epi, const float* v, const float* saved, float* out) {
  switch (epi) {
    case Epilogue::store: out[0] = v[0]; return 1;
    case Epilogue::swiglu: out[0] = v[0] * lory_sigmoid(v[0]) * v[1]; return 1;
    case Epilogue::swiglu_save:
      out[0] = v[0] * lory_sigmoid(v[0]) * v[1];
      out[1] = v[0];
      out[2] = v[1];
      return 3;
    case Epilogue::swiglu_grad: swiglu_backward_values(v[0], v[1], v[2], out); return 3;
    default: swiglu_backward_values(saved[0], saved[1], v[0], out); return 3;
  }
}

}  // namespace lory
