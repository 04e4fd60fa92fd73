// Device-side pieces shared by the two GEMM kernels of the CUDA merged-expert FFN (moe_cuda.cu: the
// tile kernel; moe_cuda_segment.cu: the segment kernel): element conversions, writing the fused
// epilogues (the job description itself is moe_cuda_job.h), and the launchers.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

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

// Writes output element (gm, gn) of segment s from its slot values.
template <typename T>
__device__ __forceinline__ void apply_epilogue(const SegmentJob<T>& job, long long s, int gm, int gn, const float* v) {
  const long long at = s * job.out_seg + (long long)gm * job.out_ld + gn;
  float out[3];
  const int n = epilogue_values(job.epi, v, out);
  for (int i = 0; i < n; ++i) job.out[i][at] = from_f<T>(out[i]);
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
// kGroupSegments segments. cudaErrorNotSupported when it cannot run the job.
template <typename T>
cudaError_t launch_group_gemm(const SegmentJob<T>& job, long long segments, cudaStream_t stream);

}  // namespace lory
