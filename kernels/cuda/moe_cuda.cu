// CUDA merged-expert SwiGLU FFN: the GPU backend of the orchestration (moe_cuda_orchestrate.h: segment
// chunks under a scratch budget, docs/kernels.md), the tile GEMM kernel (the default), the
// weight-gradient kernel and the deterministic `de` reduction.
//
// Tile kernel: 64×64 output tiles, K in steps of 32; the B tile is merged from the experts while it is
// staged into shared memory, so merged weights never reach global memory. float32 runs on CUDA cores
// (exact fp32 FMA); float16/bfloat16 on tensor cores (WMMA 16×16×16, fp32 accumulation). The faster
// segment kernel (moe_cuda_segment.cu) and the group kernel (moe_cuda_group.cu) are selected by
// MoeCudaOptions::kernel.
//
// Memory: per chunk of Gc segments the forward keeps only h [Gc,T,f] (SwiGLU runs in the epilogue of
// the fused gate/up GEMM); the backward keeps h, da, db (the recompute of a, b and dh = dy·W̄dᵀ share
// one kernel whose epilogue applies the SwiGLU backward), plus `de` partials per weight-gradient tile.
// The training pair writes a, b from the forward's epilogue to its `saved` output, and its backward's
// first kernel computes only dh and reads a, b back in the epilogue.
// Determinism: no float atomics; every sum has a fixed order (see weight_grad_kernel, de_reduce_kernel).
#include <mma.h>

#include <string>

#include "moe_cuda.h"
#include "moe_cuda_common.cuh"
#include "moe_cuda_orchestrate.h"

namespace lory {
namespace {

constexpr int BM = 64, BN = 64, BK = 32, THREADS = 256;
static_assert(BM == kWeightGradTile && BN == kWeightGradTile, "the planner sizes de partials by this tile");
constexpr int kExpertGroup = 8;  // experts whose dW tiles one weight-gradient block keeps in shared memory
constexpr int kMaxGridZ = 65535;
constexpr int kTileValues = BM * BN / THREADS;  // output elements per thread in the epilogue

template <typename T>
using Staged = typename std::conditional<std::is_same<T, float>::value, float, T>::type;

// Shared-memory strides. CUDA cores: A k-major (float4 reads along m). Tensor cores: both row-major
// with ld a multiple of 8 elements, as WMMA requires.
constexpr int kAsSimtLd = BM + 4, kBsSimtLd = BN + 4, kAsTcLd = BK + 8, kBsTcLd = BN + 8, kCsLd = BN + 4;
constexpr int kAsElems = BM * kAsTcLd > BK * kAsSimtLd ? BM * kAsTcLd : BK * kAsSimtLd;
constexpr int kBsElems = BK * kBsTcLd > BK * kBsSimtLd ? BK * kBsTcLd : BK * kBsSimtLd;

// Cs[BM][kCsLd] = Σ over the job's operands with b.slot == slot of A·B̄, for the tile at (m0, n0) of
// segment s. Ends with a barrier.
template <typename T>
__device__ void compute_tile(const Phase<T>* phases, int n_ph, int slot, long long s, int m0, int n0, int M, int N,
                             Staged<T>* As, Staged<T>* Bs, float* Cs) {
  constexpr bool kTensorCores = !std::is_same<T, float>::value;
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16, warp = tid / 32;
  float acc[4][4] = {};
  nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> frag_c[2];
  if constexpr (kTensorCores) {
    nvcuda::wmma::fill_fragment(frag_c[0], 0.f);
    nvcuda::wmma::fill_fragment(frag_c[1], 0.f);
  }
  for (int ph = 0; ph < n_ph; ++ph)
    for (int ib = 0; ib < phases[ph].n_b; ++ib) {
      const Phase<T>& pr = phases[ph];
      const MergedOperand<T>& bo = pr.b[ib];
      if (bo.slot != slot) continue;
      const T* a_base = pr.a.p + s * pr.a.seg;
      const T* coef = bo.coef ? bo.coef + s * bo.coef_seg : nullptr;
      for (int k0 = 0; k0 < pr.K; k0 += BK) {
#pragma unroll
        for (int l = 0; l < BM * BK / THREADS; ++l) {
          const int idx = tid + l * THREADS;
          int m, k;  // consecutive threads walk the operand's contiguous axis (coalesced loads)
          if (pr.a.cs == 1) k = idx % BK, m = idx / BK;
          else m = idx % BM, k = idx / BM;
          const int gm = m0 + m, gk = k0 + k;
          const bool in = gm < M && gk < pr.K;
          if constexpr (kTensorCores)
            As[m * kAsTcLd + k] = in ? a_base[gm * pr.a.rs + gk * pr.a.cs] : from_f<T>(0.f);
          else
            As[k * kAsSimtLd + m] = in ? a_base[gm * pr.a.rs + gk * pr.a.cs] : 0.f;
        }
#pragma unroll
        for (int l = 0; l < BK * BN / THREADS; ++l) {
          const int idx = tid + l * THREADS;
          int n, k;
          if (bo.cs == 1) n = idx % BN, k = idx / BN;
          else k = idx % BK, n = idx / BK;
          const int gn = n0 + n, gk = k0 + k;
          float v = 0.f;
          if (gn < N && gk < pr.K) {
            const T* src = bo.w + s * bo.seg + gk * bo.rs + gn * bo.cs;
            if (coef)
              for (int i = 0; i < bo.terms; ++i) v += to_f(coef[i]) * to_f(src[i * bo.term_stride]);
            else
              v = to_f(*src);
          }
          if constexpr (kTensorCores) Bs[k * kBsTcLd + n] = from_f<T>(v);
          else Bs[k * kBsSimtLd + n] = v;
        }
        __syncthreads();
        if constexpr (kTensorCores) {
          const int wm = warp / 2, wn = warp % 2;  // warp owns rows wm*16.., cols wn*32.. (two 16×16 fragments)
#pragma unroll
          for (int kk = 0; kk < BK; kk += 16) {
            nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 16, T, nvcuda::wmma::row_major> fa;
            nvcuda::wmma::load_matrix_sync(fa, As + wm * 16 * kAsTcLd + kk, kAsTcLd);
#pragma unroll
            for (int j = 0; j < 2; ++j) {
              nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, 16, T, nvcuda::wmma::row_major> fb;
              nvcuda::wmma::load_matrix_sync(fb, Bs + kk * kBsTcLd + wn * 32 + j * 16, kBsTcLd);
              nvcuda::wmma::mma_sync(frag_c[j], fa, fb, frag_c[j]);
            }
          }
        } else {
#pragma unroll 8
          for (int k = 0; k < BK; ++k) {
            const float4 a4 = *reinterpret_cast<const float4*>(As + k * kAsSimtLd + ty * 4);
            const float4 b4 = *reinterpret_cast<const float4*>(Bs + k * kBsSimtLd + tx * 4);
            const float av[4] = {a4.x, a4.y, a4.z, a4.w}, bv[4] = {b4.x, b4.y, b4.z, b4.w};
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
              for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
          }
        }
        __syncthreads();
      }
    }
  if constexpr (kTensorCores) {
    const int wm = warp / 2, wn = warp % 2;
    for (int j = 0; j < 2; ++j)
      nvcuda::wmma::store_matrix_sync(Cs + wm * 16 * kCsLd + wn * 32 + j * 16, frag_c[j], kCsLd,
                                      nvcuda::wmma::mem_row_major);
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) Cs[(ty * 4 + i) * kCsLd + tx * 4 + j] = acc[i][j];
  }
  __syncthreads();
}

// float32 with 3 slots parks the first two slots' tiles in (dynamic) shared memory instead of registers:
// held in registers they made ptxas spill (132 B stores, 364 B loads at its 128-register target; issue 25).
template <typename T, int SLOTS>
constexpr bool kParkShared = std::is_same<T, float>::value && SLOTS == 3;
template <typename T, int SLOTS>
constexpr size_t park_bytes() {
  return kParkShared<T, SLOTS> ? size_t(SLOTS - 1) * BM * BN * sizeof(float) : 0;
}

// grid: (N tiles, M tiles, segments). Each slot's tile is computed in turn and parked (registers, or shared
// memory per kParkShared), so the epilogue (e.g. SwiGLU of gate and up) sees all slots of an element
// without a float32 buffer in global memory. A thread parks and reads back only its own elements.
template <typename T, int SLOTS>
__global__ void __launch_bounds__(THREADS) tile_gemm_kernel(SegmentJob<T> job, long long s_offset) {
  constexpr bool kPark = kParkShared<T, SLOTS>;
  constexpr int kRegSlots = kPark ? 1 : SLOTS;
  __shared__ __align__(32) Staged<T> As[kAsElems];
  __shared__ __align__(32) Staged<T> Bs[kBsElems];
  __shared__ __align__(32) float Cs[BM * kCsLd];
  extern __shared__ float park[];  // [SLOTS - 1][BM * BN] when kPark
  const long long s = s_offset + blockIdx.z;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  float vals[kRegSlots][kTileValues];
#pragma unroll
  for (int q = 0; q < SLOTS; ++q) {
    compute_tile<T>(job.ph, job.n_ph, q, s, m0, n0, job.M, job.N, As, Bs, Cs);
#pragma unroll
    for (int l = 0; l < kTileValues; ++l) {
      const int idx = threadIdx.x + l * THREADS;
      const float v = Cs[(idx / BN) * kCsLd + idx % BN];
      if (kPark && q + 1 < SLOTS) park[q * BM * BN + idx] = v;
      else vals[kPark ? 0 : q][l] = v;
    }
    // The next compute_tile may store Cs before any barrier of its own (a slot with no operand, or K = 0).
    if (q + 1 < SLOTS) __syncthreads();
  }
#pragma unroll
  for (int l = 0; l < kTileValues; ++l) {
    const int idx = threadIdx.x + l * THREADS, gm = m0 + idx / BN, gn = n0 + idx % BN;
    if (gm >= job.M || gn >= job.N) continue;
    float v[3] = {};
#pragma unroll
    for (int q = 0; q < SLOTS; ++q) v[q] = kPark && q + 1 < SLOTS ? park[q * BM * BN + idx] : vals[kPark ? 0 : q][l];
    apply_epilogue(job, s, gm, gn, v);
  }
}

// Weight gradients of one [E, M, N] expert tensor over the segments of one chunk. Block = one 64×64
// tile × a group of ≤ 8 experts; it loops over the chunk's segments in order: G_s tile (K = T), then
// dWᵢ += e[s,i]·G_s in shared memory, and ⟨G_s, Wᵢ⟩ of this tile (a fixed-order block reduction) into
// de_partial[tile, s, i]. dW is written once per chunk: `acc` (float32, across chunks) when given,
// otherwise straight into dw, adding the previous chunks' sum unless `first`. No atomics anywhere.
template <typename T>
__global__ void __launch_bounds__(THREADS) weight_grad_kernel(Phase<T> prod, int segments, int M, int N, int E,
                                                                const T* e, const T* w, T* dw, float* acc,
                                                                bool first, bool last, float* de_partial,
                                                                long long tile_offset) {
  __shared__ __align__(32) Staged<T> As[kAsElems];
  __shared__ __align__(32) Staged<T> Bs[kBsElems];
  __shared__ __align__(32) float Cs[BM * kCsLd];
  __shared__ float partial[THREADS / 32][kExpertGroup];
  extern __shared__ float dw_tiles[];  // [group][BM*BN]
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int i0 = blockIdx.z * kExpertGroup, group = min(kExpertGroup, E - i0);
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const long long tile = tile_offset + (long long)blockIdx.y * gridDim.x + blockIdx.x;
  for (int idx = tid; idx < group * BM * BN; idx += THREADS) dw_tiles[idx] = 0.f;
  for (int s = 0; s < segments; ++s) {
    compute_tile<T>(&prod, 1, 0, s, m0, n0, M, N, As, Bs, Cs);
    float coef[kExpertGroup], dot[kExpertGroup];
#pragma unroll
    for (int i = 0; i < kExpertGroup; ++i) {
      coef[i] = i < group ? to_f(e[(long long)s * E + i0 + i]) : 0.f;
      dot[i] = 0.f;
    }
    for (int idx = tid; idx < BM * BN; idx += THREADS) {
      const int r = idx / BN, c = idx % BN, gm = m0 + r, gn = n0 + c;
      if (gm >= M || gn >= N) continue;
      const float g = Cs[r * kCsLd + c];
#pragma unroll
      for (int i = 0; i < kExpertGroup; ++i)
        if (i < group) {
          dw_tiles[i * BM * BN + idx] += coef[i] * g;
          dot[i] += g * to_f(w[(long long)(i0 + i) * M * N + (long long)gm * N + gn]);
        }
    }
#pragma unroll
    for (int i = 0; i < kExpertGroup; ++i) {
      float v = dot[i];
      for (int off = 16; off > 0; off /= 2) v += __shfl_down_sync(0xffffffffu, v, off);
      if (lane == 0) partial[warp][i] = v;
    }
    __syncthreads();
    if (tid < group) {
      float sum = 0.f;
      for (int wi = 0; wi < THREADS / 32; ++wi) sum += partial[wi][tid];
      de_partial[(tile * segments + s) * E + i0 + tid] = sum;
    }
    __syncthreads();  // Cs and partial are rewritten by the next segment
  }
  for (int idx = tid; idx < BM * BN; idx += THREADS) {
    const int r = idx / BN, c = idx % BN, gm = m0 + r, gn = n0 + c;
    if (gm >= M || gn >= N) continue;
    for (int i = 0; i < group; ++i) {
      const long long at = (long long)(i0 + i) * M * N + (long long)gm * N + gn;
      store_dw(dw_tiles[i * BM * BN + idx], at, dw, acc, first, last);
    }
  }
}

// de[s,i] = Σ over every weight-gradient tile of the three matrices, in tile order.
template <typename T>
__global__ void de_reduce_kernel(const float* de_partial, long long tiles, long long segments, int E, T* de) {
  const long long n = segments * E;
  for (long long j = blockIdx.x * (long long)blockDim.x + threadIdx.x; j < n; j += (long long)gridDim.x * blockDim.x) {
    float sum = 0.f;
    for (long long t = 0; t < tiles; ++t) sum += de_partial[t * n + j];
    de[j] = from_f<T>(sum);
  }
}

// Uniform values in [-scale, scale) from a hash of (seed, index): the check program's dense baseline
// runs on these (tensor cores run measurably faster on zeros than on random data).
template <typename T>
__global__ void fill_uniform_kernel(long long n, unsigned long long seed, float scale, T* p) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    unsigned long long z = seed + (unsigned long long)i * 0x9E3779B97F4A7C15ull;  // splitmix64
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    p[i] = from_f<T>(scale * (float(z >> 40) * 0x1p-23f - 1.f));  // 24 bits → [-1, 1)
  }
}

// Pointwise SwiGLU for the check program's dense baseline (a, b, dh in the compute type).
template <typename T>
__global__ void swiglu_forward_kernel(long long n, const T* a, const T* b, T* h) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const float av = to_f(a[i]);
    h[i] = from_f<T>(av * lory_sigmoid(av) * to_f(b[i]));
  }
}

template <typename T>
__global__ void swiglu_backward_kernel(long long n, const T* a, const T* b, const T* dh, T* h, T* da, T* db) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const float av = to_f(a[i]), bv = to_f(b[i]), g = to_f(dh[i]), sg = lory_sigmoid(av), silu = av * sg;
    h[i] = from_f<T>(silu * bv);
    da[i] = from_f<T>(g * bv * sg * (1.f + av * (1.f - sg)));
    db[i] = from_f<T>(g * silu);
  }
}

template <typename T> constexpr CudaDType dtype_of();
template <> constexpr CudaDType dtype_of<float>() { return CudaDType::f32; }
template <> constexpr CudaDType dtype_of<__half>() { return CudaDType::f16; }
template <> constexpr CudaDType dtype_of<__nv_bfloat16>() { return CudaDType::bf16; }

template <typename T>
cudaError_t launch_weight_grad(const Phase<T>& prod, long long segments, int M, int N, int E, const T* e, const T* w,
                               T* dw, float* acc, bool first, bool last, float* de_partial, long long tile_offset,
                               cudaStream_t stream) {
  if (segments <= 0 || M <= 0 || N <= 0 || E <= 0) return cudaSuccess;  // nothing to compute; no empty grid
  const int groups = (E + kExpertGroup - 1) / kExpertGroup;
  const int group = E < kExpertGroup ? E : kExpertGroup;
  const size_t smem = size_t(group) * BM * BN * sizeof(float);
  // 128 KiB dynamic + ~37 KiB static: needs the opt-in (sm_90: 227 KiB per block). Checked, so a device with
  // less shared memory reports this call rather than a bare launch failure.
  const cudaError_t err = cudaFuncSetAttribute(weight_grad_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               int(kExpertGroup * BM * BN * sizeof(float)));
  if (err != cudaSuccess) return err;
  const dim3 grid((N + BN - 1) / BN, (M + BM - 1) / BM, groups);
  weight_grad_kernel<T><<<grid, THREADS, smem, stream>>>(prod, int(segments), M, N, E, e, w, dw, acc, first, last,
                                                         de_partial, tile_offset);
  return cudaGetLastError();
}

// The GPU backend of the orchestration (moe_cuda_orchestrate.h): kernels queued on one stream.
template <typename T>
struct CudaBackend {
  cudaStream_t stream;
  CudaKernel kernel;
  CudaWgrad wgrad;

  static std::string text(cudaError_t err) { return err == cudaSuccess ? "" : cudaGetErrorString(err); }

  std::string gemm(const SegmentJob<T>& job, long long segments) {
    if (kernel != CudaKernel::tile) {
      const cudaError_t err = kernel == CudaKernel::segment
                                  ? launch_segment_gemm(job, segments, stream)
                                  : launch_group_gemm(job, segments, kernel == CudaKernel::group_wide, stream);
      if (err != cudaErrorNotSupported) return text(err);  // NotSupported: nothing launched; use the tile kernel
    }
    return text(launch_tile_gemm(job, segments, stream));
  }

  std::string weight_grad(const Phase<T>& prod, long long segments, int M, int N, int E, const T* e, const T* w,
                          T* dw, float* acc, bool first, bool last, float* de_partial, long long tile_offset) {
    cudaError_t err = cudaErrorNotSupported;
    if (wgrad == CudaWgrad::shared)  // NotSupported: nothing launched; use the tile path
      err = launch_wgrad_shared(prod, segments, M, N, E, e, w, dw, acc, first, last, de_partial, tile_offset, stream);
    if (err == cudaErrorNotSupported)
      err = launch_weight_grad(prod, segments, M, N, E, e, w, dw, acc, first, last, de_partial, tile_offset, stream);
    return err == cudaSuccess ? "" : std::string("weight-gradient kernel: ") + cudaGetErrorString(err);
  }

  std::string de_reduce(const float* de_partial, long long tiles, long long segments, int E, T* de) {
    if (segments * E <= 0) return "";
    if (wgrad == CudaWgrad::shared) return text(launch_de_reduce_warp(de_partial, tiles, segments, E, de, stream));
    de_reduce_kernel<T><<<elementwise_blocks(segments * E), 256, 0, stream>>>(de_partial, tiles, segments, E, de);
    return text(cudaGetLastError());
  }

  std::string zero(T* p, long long n) {  // all-zero bits are +0 in float32, float16 and bfloat16
    return text(cudaMemsetAsync(p, 0, size_t(n) * sizeof(T), stream));
  }
};

}  // namespace

size_t moe_cuda_forward_scratch_bytes(const MoeShape& s, CudaDType t, const MoeCudaOptions& opt) {
  return plan_forward(s, t, opt.scratch_budget_bytes).plan.scratch_bytes;
}

size_t moe_cuda_backward_scratch_bytes(const MoeShape& s, CudaDType t, const MoeCudaOptions& opt) {
  return plan_backward(s, t, opt.scratch_budget_bytes).plan.scratch_bytes;
}

template <typename T, int SLOTS>
static cudaError_t launch_tile_slots(const SegmentJob<T>& job, long long segments, cudaStream_t stream) {
  constexpr size_t park = park_bytes<T, SLOTS>();
  if (park > 0)  // 36 KiB static + 32 KiB parked: past the 48 KiB a block gets without the opt-in
    if (const cudaError_t err =
            cudaFuncSetAttribute(tile_gemm_kernel<T, SLOTS>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(park));
        err != cudaSuccess)
      return err;
  for (long long s0 = 0; s0 < segments; s0 += kMaxGridZ) {  // grid.z holds at most 65535 segments
    const dim3 grid((job.N + BN - 1) / BN, (job.M + BM - 1) / BM,
                    unsigned(segments - s0 < kMaxGridZ ? segments - s0 : kMaxGridZ));
    tile_gemm_kernel<T, SLOTS><<<grid, THREADS, park, stream>>>(job, s0);
    if (const cudaError_t err = cudaGetLastError(); err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

template <typename T>
cudaError_t launch_tile_gemm(const SegmentJob<T>& job, long long segments, cudaStream_t stream) {
  if (segments <= 0 || job.M <= 0 || job.N <= 0) return cudaSuccess;  // empty output: no empty grid
  switch (job.slots) {
    case 1: return launch_tile_slots<T, 1>(job, segments, stream);
    case 2: return launch_tile_slots<T, 2>(job, segments, stream);
    default: return launch_tile_slots<T, 3>(job, segments, stream);
  }
}
template cudaError_t launch_tile_gemm<float>(const SegmentJob<float>&, long long, cudaStream_t);
template cudaError_t launch_tile_gemm<__half>(const SegmentJob<__half>&, long long, cudaStream_t);
template cudaError_t launch_tile_gemm<__nv_bfloat16>(const SegmentJob<__nv_bfloat16>&, long long, cudaStream_t);

#define LORY_DISPATCH(t, F, ...)                                                              \
  switch (t) {                                                                                \
    case CudaDType::f32: return F<float>(__VA_ARGS__);                                        \
    case CudaDType::f16: return F<__half>(__VA_ARGS__);                                       \
    default: return F<__nv_bfloat16>(__VA_ARGS__);                                            \
  }

template <typename T>
static std::string forward_typed(const MoeShape& s, const void* x, const void* e, const void* wg, const void* wu,
                                 const void* wd, void* y, void* saved, void* scratch, void* stream,
                                 const MoeCudaOptions& opt) {
  if (std::string err = pending_error(saved ? "LoryMoEFFNTrain (CUDA): " : "LoryMoEFFN (CUDA): "); !err.empty())
    return err;
  CudaBackend<T> be{static_cast<cudaStream_t>(stream), opt.kernel, opt.wgrad};
  return orchestrate_forward<T>(be, dtype_of<T>(), s, static_cast<const T*>(x), static_cast<const T*>(e),
                                static_cast<const T*>(wg), static_cast<const T*>(wu), static_cast<const T*>(wd),
                                static_cast<T*>(y), static_cast<T*>(saved), scratch, opt);
}

template <typename T>
static std::string backward_typed(const MoeShape& s, const void* x, const void* e, const void* wg, const void* wu,
                                  const void* wd, const void* dy, const void* saved, void* dx, void* de, void* dwg,
                                  void* dwu, void* dwd, void* scratch, void* stream, const MoeCudaOptions& opt) {
  if (std::string err = pending_error(saved ? "LoryMoEFFNTrainGrad (CUDA): " : "LoryMoEFFNGrad (CUDA): ");
      !err.empty())
    return err;
  CudaBackend<T> be{static_cast<cudaStream_t>(stream), opt.kernel, opt.wgrad};
  return orchestrate_backward<T>(be, dtype_of<T>(), s, static_cast<const T*>(x), static_cast<const T*>(e),
                                 static_cast<const T*>(wg), static_cast<const T*>(wu), static_cast<const T*>(wd),
                                 static_cast<const T*>(dy), static_cast<const T*>(saved), static_cast<T*>(dx),
                                 static_cast<T*>(de), static_cast<T*>(dwg), static_cast<T*>(dwu), static_cast<T*>(dwd),
                                 scratch, opt);
}

template <typename T>
static std::string fill_uniform_typed(long long n, unsigned long long seed, float scale, void* p, void* stream) {
  if (std::string err = pending_error(""); !err.empty()) return err;
  if (n <= 0) return "";
  fill_uniform_kernel<T><<<elementwise_blocks(n), 256, 0, static_cast<cudaStream_t>(stream)>>>(n, seed, scale,
                                                                                              static_cast<T*>(p));
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? "" : cudaGetErrorString(err);
}

template <typename T>
static std::string swiglu_forward_typed(long long n, const void* a, const void* b, void* h, void* stream) {
  if (std::string err = pending_error(""); !err.empty()) return err;
  if (n <= 0) return "";
  swiglu_forward_kernel<T><<<elementwise_blocks(n), 256, 0, static_cast<cudaStream_t>(stream)>>>(
      n, static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(h));
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? "" : cudaGetErrorString(err);
}

template <typename T>
static std::string swiglu_backward_typed(long long n, const void* a, const void* b, const void* dh, void* h, void* da,
                                         void* db, void* stream) {
  if (std::string err = pending_error(""); !err.empty()) return err;
  if (n <= 0) return "";
  swiglu_backward_kernel<T><<<elementwise_blocks(n), 256, 0, static_cast<cudaStream_t>(stream)>>>(
      n, static_cast<const T*>(a), static_cast<const T*>(b), static_cast<const T*>(dh), static_cast<T*>(h),
      static_cast<T*>(da), static_cast<T*>(db));
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? "" : cudaGetErrorString(err);
}

std::string moe_cuda_forward(const MoeShape& s, CudaDType t, const void* x, const void* e, const void* w_gate,
                             const void* w_up, const void* w_down, void* y, void* saved, void* scratch, void* stream,
                             const MoeCudaOptions& opt) {
  LORY_DISPATCH(t, forward_typed, s, x, e, w_gate, w_up, w_down, y, saved, scratch, stream, opt)
}

std::string moe_cuda_backward(const MoeShape& s, CudaDType t, const void* x, const void* e, const void* w_gate,
                              const void* w_up, const void* w_down, const void* dy, const void* saved, void* dx,
                              void* de, void* dw_gate, void* dw_up, void* dw_down, void* scratch, void* stream,
                              const MoeCudaOptions& opt) {
  LORY_DISPATCH(t, backward_typed, s, x, e, w_gate, w_up, w_down, dy, saved, dx, de, dw_gate, dw_up, dw_down,
                scratch, stream, opt)
}

std::string cuda_fill_uniform(CudaDType t, long long n, unsigned long long seed, float scale, void* p, void* stream) {
  LORY_DISPATCH(t, fill_uniform_typed, n, seed, scale, p, stream)
}

std::string cuda_swiglu_forward(CudaDType t, long long n, const void* a, const void* b, void* h, void* stream) {
  LORY_DISPATCH(t, swiglu_forward_typed, n, a, b, h, stream)
}

std::string cuda_swiglu_backward(CudaDType t, long long n, const void* a, const void* b, const void* dh, void* h,
                                 void* da, void* db, void* stream) {
  LORY_DISPATCH(t, swiglu_backward_typed, n, a, b, dh, h, da, db, stream)
}

}  // namespace lory
