// Device-side pieces shared by the two GEMM kernels of the CUDA merged-expert FFN (moe_cuda.cu: the
// tile kernel; moe_cuda_segment.cu: the segment kernel): element conversions, the description of one
// per-segment GEMM job (phases of A·B̄ products with merged B operands) and the fused epilogues.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <type_traits>

namespace lory {

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

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
//   store:       out0 = v0                                   (y, dx)
//   swiglu:      out0 = h = silu(v0)·v1                     (forward gate/up: v0 = x·W̄g, v1 = x·W̄u)
//   swiglu_grad: v0 = a, v1 = b, v2 = dh → out0 = h, out1 = da, out2 = db
enum class Epilogue { store, swiglu, swiglu_grad };

// One per-segment GEMM job over `segments` segments: C_s[M,N] per slot, then the epilogue. Pointers
// are already offset to the first segment of the chunk.
template <typename T>
struct SegmentJob {
  Phase<T> ph[2];
  int n_ph, slots, M, N;
  Epilogue epi;
  T* out[3];
  long long out_seg, out_ld;
};

__device__ __forceinline__ float sigmoid(float a) { return 1.f / (1.f + __expf(-a)); }

// Writes output element (gm, gn) of segment s from its slot values.
template <typename T>
__device__ __forceinline__ void apply_epilogue(const SegmentJob<T>& job, long long s, int gm, int gn, const float* v) {
  const long long at = s * job.out_seg + (long long)gm * job.out_ld + gn;
  switch (job.epi) {
    case Epilogue::store: job.out[0][at] = from_f<T>(v[0]); break;
    case Epilogue::swiglu: job.out[0][at] = from_f<T>(v[0] * sigmoid(v[0]) * v[1]); break;
    case Epilogue::swiglu_grad: {
      const float a = v[0], b = v[1], dh = v[2], sg = sigmoid(a), silu = a * sg;
      job.out[0][at] = from_f<T>(silu * b);
      job.out[1][at] = from_f<T>(dh * b * sg * (1.f + a * (1.f - sg)));
      job.out[2][at] = from_f<T>(dh * silu);
      break;
    }
  }
}

// Launchers (host). Return the launch error, if any; asynchronous on `stream`.
template <typename T>
cudaError_t launch_tile_gemm(const SegmentJob<T>& job, long long segments, cudaStream_t stream);
// The segment kernel: 16-bit types, E ≤ kSegmentKernelMaxTerms, A with unit column stride. Returns
// cudaErrorNotSupported for a job it cannot run (the caller then uses the tile kernel).
constexpr int kSegmentKernelMaxTerms = 64;
template <typename T>
cudaError_t launch_segment_gemm(const SegmentJob<T>& job, long long segments, cudaStream_t stream);

}  // namespace lory
