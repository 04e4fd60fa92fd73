// Pieces shared by the CUDA units (moe_cuda.cu: the tile kernel; moe_cuda_segment.cu, moe_cuda_group.cu:
// the wide kernels; adamw_cuda.cu): element conversions, writing the fused epilogues (the job description
// itself is moe_cuda_job.h), the launchers, and the host-side launch helpers every entry point uses.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <string>
#include <type_traits>

#include "moe_cuda_group.h"
#include "moe_cuda_job.h"

namespace lory {

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// dW element `at` of one expert from this call's sum v. With the float32 state `acc` (16-bit dW), the sum
// crosses chunks there and is rounded into dw only at the last; without it, it is summed into dw directly.
template <typename T>
__device__ __forceinline__ void store_dw(float v, long long at, T* dw, float* acc, bool first, bool last) {
  if (acc) {
    if (!first) v += acc[at];
    if (last) dw[at] = from_f<T>(v);
    else acc[at] = v;
  } else {
    if (!first) v += to_f(dw[at]);
    dw[at] = from_f<T>(v);
  }
}

// cp.async (sm_80+): 16 bytes global → shared without a register round trip.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::); }

// 8 elements of a 16-byte vector, as float.
template <typename T>
__device__ __forceinline__ void unpack8(const uint4& raw, float* out) {
  const T* v = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int j = 0; j < 8; ++j) out[j] = to_f(v[j]);
}

// Where thread `tid` works on operand B of a phase in the wide kernels (segment, group): one 8-element
// vector of the BK×bnp tile of operand `ib`, along its contiguous axis.
struct BVector {
  int ib, k, n;  // operand, row k and column n of its first element in the tile
  bool active, along_n;
};

template <int BK, typename T>
__device__ __forceinline__ BVector b_vector(const Phase<T>& ph, int bnp, int tid) {
  const int per_operand = BK * bnp / 8;
  BVector v{tid / per_operand, 0, 0, false, true};
  if (v.ib >= ph.n_b) return v;
  v.active = true;
  const int r = tid % per_operand;
  v.along_n = ph.b[v.ib].cs == 1;
  if (v.along_n) v.k = r / (bnp / 8), v.n = (r % (bnp / 8)) * 8;
  else v.n = r / (BK / 8), v.k = (r % (BK / 8)) * 8;
  return v;
}

// Writes output element (gm, gn) of segment s from its slot values.
template <typename T>
__device__ __forceinline__ void apply_epilogue(const SegmentJob<T>& job, long long s, int gm, int gn, const float* v) {
  const long long at = s * job.out_seg + (long long)gm * job.out_ld + gn;
  float out[3], saved[2] = {};
  if (epilogue_reads_saved(job.epi)) saved[0] = to_f(job.in[0][at]), saved[1] = to_f(job.in[1][at]);
  const int n = epilogue_values(job.epi, v, saved, out);
  for (int i = 0; i < n; ++i) job.out[i][at] = from_f<T>(out[i]);
}

// Blocks of 256 threads for a grid-stride loop over n elements (at least 1, at most 8192).
inline unsigned elementwise_blocks(long long n) {
  const long long b = (n + 255) / 256;
  return unsigned(b < 8192 ? (b > 0 ? b : 1) : 8192);
}

// An error left pending on this thread by earlier, unrelated work would be cleared by the
// cudaGetLastError after our launches and reported as ours. So every entry point peeks at it (not
// clearing it) before anything is launched and reports it as what it is; after that, cudaGetLastError
// sees only our launches.
inline std::string pending_error(const char* op) {
  const cudaError_t err = cudaPeekAtLastError();
  if (err == cudaSuccess) return "";
  return std::string(op) + "a CUDA error was pending before this call launched anything (left by earlier work on "
         "this thread; not cleared): " + cudaGetErrorString(err);
}

// Launchers (host). Return the launch error, if any; asynchronous on `stream`.
template <typename T>
cudaError_t launch_tile_gemm(const SegmentJob<T>& job, long long segments, cudaStream_t stream);
// The segment kernel: 16-bit types, E ≤ kSegmentKernelMaxTerms, A with unit column stride. Returns
// cudaErrorNotSupported for a job it cannot run (the caller then uses the tile kernel).
constexpr int kSegmentKernelMaxTerms = kWideKernelMaxTerms;
template <typename T>
cudaError_t launch_segment_gemm(const SegmentJob<T>& job, long long segments, cudaStream_t stream);
// The group kernel (moe_cuda_group.cu): the segment kernel's conditions; one block per group of
// kGroupSegments segments; `wide`: columns_per_slot(3, true) for 3-slot jobs (`group-wide`).
// cudaErrorNotSupported when it cannot run the job.
template <typename T>
cudaError_t launch_group_gemm(const SegmentJob<T>& job, long long segments, bool wide, cudaStream_t stream);

// The `shared` weight-gradient path (moe_cuda_wgrad.cu): cudaErrorNotSupported for a product it does not
// take (wgrad_shared_takes: float32, E > 32, other layouts), which the caller runs on the tile path.
template <typename T>
cudaError_t launch_wgrad_shared(const Phase<T>& prod, long long segments, int M, int N, int E, const T* e,
                                const T* w, T* dw, float* acc, bool first, bool last, float* de_partial,
                                long long tile_offset, cudaStream_t stream);
// `de` by one warp per output (moe_cuda_wgrad.h's order).
template <typename T>
cudaError_t launch_de_reduce_warp(const float* de_partial, long long tiles, long long segments, int E, T* de,
                                  cudaStream_t stream);

}  // namespace lory
