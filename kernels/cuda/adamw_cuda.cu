// The fused AdamW update on the GPU (adamw_cuda.h). Elementwise and bound by memory traffic
// (28 bytes per parameter): a grid-stride loop over float4 vectors where every pointer is 16-byte
// aligned (ORT's allocations are), with streaming loads and stores (each byte is touched once), and
// the remainder (or everything, when unaligned) element by element.
#include <cuda_runtime.h>

#include "adamw_cuda.h"
#include "moe_cuda_common.cuh"

namespace lory {
namespace {

struct Hyper {
  float decay, step, bc2, scale, b1, c1, b2, c2, eps;
};

__device__ __forceinline__ Hyper load_hyper(const float* h) {
  // 1 − β as the CPU kernel computes it: in float32.
  return Hyper{h[0], h[1], h[2], h[3], h[4], __fsub_rn(1.f, h[4]), h[5], __fsub_rn(1.f, h[5]), h[6]};
}

// One element, operation for operation as adamw.cpp's LORY_ADAMW_BODY. The _rn intrinsics keep nvcc
// from contracting a multiply and an add into an FMA (which rounds once instead of twice).
__device__ __forceinline__ void adamw_one(const Hyper& h, float p, float g, float m, float v, float* po, float* mo,
                                          float* vo) {
  const float gi = __fmul_rn(g, h.scale);
  const float mi = __fadd_rn(__fmul_rn(m, h.b1), __fmul_rn(gi, h.c1));
  const float vi = __fadd_rn(__fmul_rn(v, h.b2), __fmul_rn(__fmul_rn(gi, gi), h.c2));
  const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), h.bc2), h.eps);
  *po = __fsub_rn(__fmul_rn(p, h.decay), __fmul_rn(h.step, __fdiv_rn(mi, denom)));
  *mo = mi;
  *vo = vi;
}

template <bool kVec4>
__global__ void adamw_kernel(long long n, const float* __restrict__ p, const float* __restrict__ g,
                             const float* __restrict__ m, const float* __restrict__ v, const float* __restrict__ hyper,
                             float* __restrict__ p_out, float* __restrict__ m_out, float* __restrict__ v_out) {
  const Hyper h = load_hyper(hyper);
  const long long first = blockIdx.x * (long long)blockDim.x + threadIdx.x, stride = (long long)gridDim.x * blockDim.x;
  long long done = 0;
  if (kVec4) {
    const long long n4 = n / 4;
    for (long long i = first; i < n4; i += stride) {
      const float4 p4 = __ldcs(reinterpret_cast<const float4*>(p) + i), g4 = __ldcs(reinterpret_cast<const float4*>(g) + i),
                   m4 = __ldcs(reinterpret_cast<const float4*>(m) + i), v4 = __ldcs(reinterpret_cast<const float4*>(v) + i);
      float4 po, mo, vo;
      adamw_one(h, p4.x, g4.x, m4.x, v4.x, &po.x, &mo.x, &vo.x);
      adamw_one(h, p4.y, g4.y, m4.y, v4.y, &po.y, &mo.y, &vo.y);
      adamw_one(h, p4.z, g4.z, m4.z, v4.z, &po.z, &mo.z, &vo.z);
      adamw_one(h, p4.w, g4.w, m4.w, v4.w, &po.w, &mo.w, &vo.w);
      __stcs(reinterpret_cast<float4*>(p_out) + i, po);
      __stcs(reinterpret_cast<float4*>(m_out) + i, mo);
      __stcs(reinterpret_cast<float4*>(v_out) + i, vo);
    }
    done = n4 * 4;
  }
  for (long long i = done + first; i < n; i += stride) adamw_one(h, p[i], g[i], m[i], v[i], p_out + i, m_out + i, v_out + i);
}

}  // namespace

std::string cuda_adamw_update(long long n, const float* p, const float* g, const float* m, const float* v,
                              const float* hyper, float* p_out, float* m_out, float* v_out, void* stream) {
  const char* op = "AdamWUpdate (CUDA): ";
  if (std::string err = pending_error(op); !err.empty()) return err;
  if (n <= 0) return "";  // nothing to update; no empty grid
  const bool vec4 = aligned16(p) && aligned16(g) && aligned16(m) && aligned16(v) && aligned16(p_out) &&
                    aligned16(m_out) && aligned16(v_out);
  const unsigned blocks = elementwise_blocks(vec4 ? (n + 3) / 4 : n);
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (vec4) adamw_kernel<true><<<blocks, 256, 0, s>>>(n, p, g, m, v, hyper, p_out, m_out, v_out);
  else adamw_kernel<false><<<blocks, 256, 0, s>>>(n, p, g, m, v, hyper, p_out, m_out, v_out);
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? "" : std::string(op) + cudaGetErrorString(err);
}

}  // namespace lory
