// The `shared` weight-gradient path of the CUDA merged-expert FFN (MoeCudaOptions::wgrad = shared;
// LORY_CUDA_MOE_WGRAD; never run on a GPU, not the default until measured, docs/kernels.md). Issue 25:
// the tile path recomputes G_s per group of 8 experts and re-reads every W tile per segment with 2-byte
// loads. Here one block owns a 64×64 tile of dWᵢ for all E ≤ 32 experts, in passes of
// wgrad_pass_rows(E) rows (moe_cuda_wgrad.h):
//  * the pass's W tiles of every expert are read once (16-byte vectors where aligned) into shared
//    memory, beside float32 dW accumulators for every expert;
//  * per segment, in order: G_s (rows × 64, K = T, WMMA with float32 accumulation; A and B staged as
//    16-byte vectors) once, then every thread fans its elements out to dWᵢ += e[s,i]·G_s and to its
//    share of ⟨G_s, Wᵢ⟩, reduced in a fixed order (warp shuffles, warps in order) into
//    de_partial[tile, s, i]: the first pass stores, later passes add (same block, in order);
//  * dW is written per pass as in the tile path (float32 state across chunks, `first`/`last`).
// de_reduce_warp_kernel: one warp per `de` output in moe_cuda_wgrad.h's order. No atomics anywhere.
#include <mma.h>

#include "moe_cuda_common.cuh"
#include "moe_cuda_wgrad.h"

namespace lory {
namespace {

constexpr int THREADS = 256, WARPS = THREADS / 32, BK = 32, BN = kWgradTile;
constexpr int kLd = kWgradTile + 8;  // As [k][m] and Bs [k][n]: 144-byte rows, 16-byte aligned vectors
constexpr int kCsLd = BN + 4;
constexpr int kMaxExperts = kWgradSharedSlots / kWgradMinRows;
constexpr int kMaxPerThread = kWgradTile * BN / THREADS;  // G_s elements per thread at 64-row passes
constexpr int kMaxFragsPerWarp = kWgradTile / 16 * (BN / 16) / WARPS;
constexpr size_t kMaxDynamicSmem = size_t(kWgradSharedSlots) * BN * (sizeof(float) + 2);

// dst[0..8) = src[0..valid), zeros after; one 16-byte load when `vec` and all 8 are valid.
template <typename T>
__device__ __forceinline__ void load8(T* dst, const T* src, int valid, bool vec) {
  if (vec && valid == 8) {
    *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
    return;
  }
#pragma unroll
  for (int q = 0; q < 8; ++q) dst[q] = q < valid ? src[q] : from_f<T>(0.f);
}

__device__ __forceinline__ int clamp8(int n) { return n <= 0 ? 0 : n < 8 ? n : 8; }

// G_s of the pass (rows × 64 of the tile, K = prod.K) into Cs. Ends with a barrier.
template <typename T>
__device__ void pass_product(const Phase<T>& prod, bool vec, int s, RowRange rr, int rows, int n0, int N, T* As,
                             T* Bs, float* Cs) {
  using namespace nvcuda;
  const int tid = threadIdx.x, warp = tid / 32, frags = rows / 16 * (BN / 16);
  const View<T>& a = prod.a;
  const MergedOperand<T>& b = prod.b[0];
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[kMaxFragsPerWarp];
#pragma unroll
  for (int j = 0; j < kMaxFragsPerWarp; ++j) wmma::fill_fragment(acc[j], 0.f);
  for (int k0 = 0; k0 < prod.K; k0 += BK) {
    for (int idx = tid; idx < BK * rows / 8; idx += THREADS) {  // A(m, k) = a[s·seg + m + k·cs]: vectors along m
      const int k = idx / (rows / 8), m = idx % (rows / 8) * 8;
      const bool in = k0 + k < prod.K;
      load8(As + k * kLd + m, a.p + s * a.seg + rr.first + m + (in ? (long long)(k0 + k) * a.cs : 0),
            in ? clamp8(rr.count - m) : 0, vec);
    }
    for (int idx = tid; idx < BK * BN / 8; idx += THREADS) {  // B(k, n) = b[s·seg + k·rs + n]: vectors along n
      const int k = idx / (BN / 8), n = idx % (BN / 8) * 8;
      const bool in = k0 + k < prod.K;
      load8(Bs + k * kLd + n, b.w + s * b.seg + n0 + n + (in ? (long long)(k0 + k) * b.rs : 0),
            in ? clamp8(N - n0 - n) : 0, vec);
    }
    __syncthreads();
#pragma unroll
    for (int j = 0; j < kMaxFragsPerWarp; ++j) {
      const int f = warp + j * WARPS;
      if (f >= frags) break;
      const int rb = f / (BN / 16), cb = f % (BN / 16);
#pragma unroll
      for (int kk = 0; kk < BK; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::col_major> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb;
        wmma::load_matrix_sync(fa, As + kk * kLd + rb * 16, kLd);
        wmma::load_matrix_sync(fb, Bs + kk * kLd + cb * 16, kLd);
        wmma::mma_sync(acc[j], fa, fb, acc[j]);
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int j = 0; j < kMaxFragsPerWarp; ++j) {
    const int f = warp + j * WARPS;
    if (f >= frags) break;
    wmma::store_matrix_sync(Cs + (f / (BN / 16)) * 16 * kCsLd + (f % (BN / 16)) * 16, acc[j], kCsLd,
                            wmma::mem_row_major);
  }
  __syncthreads();
}

// grid: (N tiles, M tiles). Dynamic shared memory: float dW [E][rows·64], then W [E][rows·64] in T.
template <typename T>
__global__ void __launch_bounds__(THREADS) wgrad_shared_kernel(Phase<T> prod, bool vec, bool w_vec, int segments,
                                                                 int M, int N, int E, const T* e, const T* w, T* dw,
                                                                 float* acc, bool first, bool last, float* de_partial,
                                                                 long long tile_offset) {
  __shared__ __align__(32) T As[BK * kLd];
  __shared__ __align__(32) T Bs[BK * kLd];
  __shared__ __align__(32) float Cs[kWgradTile * kCsLd];
  __shared__ float partial[WARPS][kMaxExperts];
  __shared__ float coef[kMaxExperts];
  extern __shared__ __align__(16) unsigned char wgrad_smem[];
  const int rows = wgrad_pass_rows(E), per_expert = rows * BN, per_thread = per_expert / THREADS;
  float* dws = reinterpret_cast<float*>(wgrad_smem);
  T* ws = reinterpret_cast<T*>(dws + E * per_expert);
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int m0 = blockIdx.y * kWgradTile, n0 = blockIdx.x * BN;
  const long long tile = tile_offset + (long long)blockIdx.y * gridDim.x + blockIdx.x;
  for (int p = 0; p * rows < kWgradTile; ++p) {
    const RowRange rr = wgrad_pass(m0, M, rows, p);
    if (rr.count == 0) break;  // the same for the whole block
    for (int idx = tid; idx < E * per_expert / 8; idx += THREADS) {  // every expert's W tile, once per pass
      const int i = idx / (per_expert / 8), r = idx % (per_expert / 8) / (BN / 8), c = idx % (BN / 8) * 8;
      const bool in = r < rr.count;
      load8(ws + i * per_expert + r * BN + c, w + (long long)i * M * N + (in ? (long long)(rr.first + r) * N : 0) + n0 + c,
            in ? clamp8(N - n0 - c) : 0, w_vec);
    }
    for (int idx = tid; idx < E * per_expert; idx += THREADS) dws[idx] = 0.f;
    for (int s = 0; s < segments; ++s) {
      if (tid < E) coef[tid] = to_f(e[(long long)s * E + tid]);
      pass_product(prod, vec, s, rr, rows, n0, N, As, Bs, Cs);  // its barriers also publish coef, ws, dws
      float g[kMaxPerThread];
#pragma unroll
      for (int l = 0; l < kMaxPerThread; ++l) {
        const int idx = tid + l * THREADS;
        g[l] = l < per_thread ? Cs[(idx / BN) * kCsLd + idx % BN] : 0.f;
      }
      for (int i = 0; i < E; ++i) {  // rows past M and columns past N hold G = 0 and W = 0
        const float c = coef[i];
        float* dwi = dws + i * per_expert;
        const T* wi = ws + i * per_expert;
        float dot = 0.f;
#pragma unroll
        for (int l = 0; l < kMaxPerThread; ++l)
          if (l < per_thread) {
            const int idx = tid + l * THREADS;
            dwi[idx] += c * g[l];
            dot += g[l] * to_f(wi[idx]);
          }
        for (int off = 16; off > 0; off /= 2) dot += __shfl_down_sync(0xffffffffu, dot, off);
        if (lane == 0) partial[warp][i] = dot;
      }
      __syncthreads();
      if (tid < E) {
        float sum = 0.f;
        for (int wi = 0; wi < WARPS; ++wi) sum += partial[wi][tid];
        const long long at = (tile * segments + s) * E + tid;
        de_partial[at] = p == 0 ? sum : de_partial[at] + sum;
      }
      __syncthreads();  // Cs, coef and partial are rewritten by the next segment
    }
    for (int idx = tid; idx < per_expert; idx += THREADS) {
      const int r = idx / BN, c = idx % BN, gn = n0 + c;
      if (r >= rr.count || gn >= N) continue;
      for (int i = 0; i < E; ++i) {
        const long long at = (long long)i * M * N + (long long)(rr.first + r) * N + gn;
        store_dw(dws[i * per_expert + idx], at, dw, acc, first, last);
      }
    }
    __syncthreads();  // the next pass reloads ws and dws
  }
}

template <typename T>
__global__ void de_reduce_warp_kernel(const float* de_partial, long long tiles, long long n, T* de) {
  const int lane = threadIdx.x % kDeLanes;
  const long long warps = (long long)gridDim.x * (blockDim.x / kDeLanes);
  for (long long j = (blockIdx.x * (long long)blockDim.x + threadIdx.x) / kDeLanes; j < n; j += warps) {
    float v = de_lane_sum(de_partial, tiles, n, j, lane);
    for (int off = kDeLanes / 2; off > 0; off /= 2) v += __shfl_down_sync(0xffffffffu, v, off);
    if (lane == 0) de[j] = from_f<T>(v);
  }
}

}  // namespace

template <typename T>
static cudaError_t launch_wgrad_kernel(const Phase<T>& prod, bool vec, long long segments, int M, int N, int E,
                                       const T* e, const T* w, T* dw, float* acc, bool first, bool last,
                                       float* de_partial, long long tile_offset, cudaStream_t stream) {
  if (segments <= 0 || M <= 0 || N <= 0) return cudaSuccess;  // nothing to compute; no empty grid
  const bool w_vec = aligned16(w) && N % 8 == 0;
  const size_t smem = size_t(E) * wgrad_pass_rows(E) * BN * (sizeof(float) + sizeof(T));
  // Up to 192 KiB dynamic + ~27 KiB static: the opt-in (sm_90: 227 KiB per block), checked like the tile path's.
  const cudaError_t err =
      cudaFuncSetAttribute(wgrad_shared_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kMaxDynamicSmem));
  if (err != cudaSuccess) return err;
  const dim3 grid((N + BN - 1) / BN, (M + kWgradTile - 1) / kWgradTile);
  wgrad_shared_kernel<T><<<grid, THREADS, smem, stream>>>(prod, vec, w_vec, int(segments), M, N, E, e, w, dw, acc,
                                                          first, last, de_partial, tile_offset);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_wgrad_shared(const Phase<T>& prod, long long segments, int M, int N, int E, const T* e,
                                const T* w, T* dw, float* acc, bool first, bool last, float* de_partial,
                                long long tile_offset, cudaStream_t stream) {
  bool vec = false;
  if (!wgrad_shared_takes(prod, sizeof(T) == 2, E, &vec) || segments > 0x7fffffffLL) return cudaErrorNotSupported;
  if constexpr (std::is_same<T, float>::value) {
    return cudaErrorNotSupported;  // no WMMA for float32 (wgrad_shared_takes says so already)
  } else {
    return launch_wgrad_kernel(prod, vec, segments, M, N, E, e, w, dw, acc, first, last, de_partial, tile_offset,
                               stream);
  }
}

template <typename T>
cudaError_t launch_de_reduce_warp(const float* de_partial, long long tiles, long long segments, int E, T* de,
                                  cudaStream_t stream) {
  const long long n = segments * E;
  if (n <= 0) return cudaSuccess;
  de_reduce_warp_kernel<T><<<elementwise_blocks(n * kDeLanes), 256, 0, stream>>>(de_partial, tiles, n, de);
  return cudaGetLastError();
}

#define LORY_WGRAD_INSTANTIATE(T)                                                                                  \
  template cudaError_t launch_wgrad_shared<T>(const Phase<T>&, long long, int, int, int, const T*, const T*, T*,   \
                                              float*, bool, bool, float*, long long, cudaStream_t);                \
  template cudaError_t launch_de_reduce_warp<T>(const float*, long long, long long, int, T*, cudaStream_t);
LORY_WGRAD_INSTANTIATE(float)
LORY_WGRAD_INSTANTIATE(__half)
LORY_WGRAD_INSTANTIATE(__nv_bfloat16)

}  // namespace lory
