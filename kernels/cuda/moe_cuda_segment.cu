// The segment kernel of the CUDA merged-expert FFN (MoeCudaOptions::kernel = segment; not the default
// until measured, docs/kernels.md). Differences from the tile kernel (moe_cuda.cu):
//  * one block spans a whole segment's rows (128 or 256), so each merged B tile (Σᵢ e[s,i]·Wᵢ over a
//    32-deep K step) is built once per segment instead of once per 64-row tile: at T = 256 that is 4x
//    fewer merges and 4x fewer expert reads;
//  * expert tiles are read as 16-byte vectors (8 elements) and the first 8 experts of the next K step
//    are loaded into registers before the current step's MMAs, so their latency overlaps tensor work;
//  * A arrives through a two-stage cp.async (sm_80+) double buffer;
//  * blockIdx.x walks segments fastest: blocks resident together work on the same column panel of the
//    experts, so that panel (E·K·64 elements) is read from HBM once and from L2 by every segment.
// float16/bfloat16 only (WMMA 16×16×16, float32 accumulation); other jobs return cudaErrorNotSupported
// and the caller runs them on the tile kernel.
#include <mma.h>

#include <cstdint>

#include "moe_cuda_common.cuh"
#include "moe_cuda_plan.h"

namespace lory {
namespace {

constexpr int THREADS = 256, WARPS = THREADS / 32, BK = 32, BN_ALL = 64;
constexpr int kAsLd = BK + 8;      // 80-byte rows: 16-byte aligned for cp.async, 32-byte WMMA offsets
constexpr int kBsLd = BN_ALL + 8;  // 144-byte rows
constexpr int kCsLd = BN_ALL + 4;
constexpr int kPrefetch = 8;  // experts whose next-step vectors are held in registers across the MMAs

// Rows per block = FM·16 per warp × 8 warps (FM = 1: 128, FM = 2: 256).
template <typename T, int FM>
struct SegmentKernel {
  static constexpr int BM = FM * 16 * WARPS;
  static constexpr int kAsStage = BM * kAsLd, kBsStage = BK * kBsLd;
  static constexpr size_t kPipelineBytes = (2 * kAsStage + 2 * kBsStage) * sizeof(T);
  static constexpr size_t kEpilogueBytes = size_t(BM) * kCsLd * sizeof(float);
  static constexpr size_t kSmemBytes = kPipelineBytes > kEpilogueBytes ? kPipelineBytes : kEpilogueBytes;
};

template <typename T, int FM>
__global__ void __launch_bounds__(THREADS) segment_gemm_kernel(SegmentJob<T> job, VectorFlags flags) {
  using K = SegmentKernel<T, FM>;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  __shared__ float coef[2][kSegmentKernelMaxTerms];
  T* As = reinterpret_cast<T*>(smem_raw);
  T* Bs = As + 2 * K::kAsStage;
  float* Cs = reinterpret_cast<float*>(smem_raw);
  const long long s = blockIdx.x;
  const int bnp = columns_per_slot(job.slots, false);  // output columns per slot
  const int n0 = blockIdx.y * bnp, m0 = blockIdx.z * K::BM;
  const int tid = threadIdx.x, warp = tid / 32;
  const int n_frag = job.slots * bnp / 16;

  nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> acc[FM][4];
#pragma unroll
  for (int i = 0; i < FM; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) nvcuda::wmma::fill_fragment(acc[i][j], 0.f);

  for (int p = 0; p < job.n_ph; ++p) {
    const Phase<T>& ph = job.ph[p];
    __syncthreads();  // the previous phase's last MMAs are done with both buffers and with coef
    for (int idx = tid; idx < 2 * kSegmentKernelMaxTerms; idx += THREADS) {
      const int ib = idx / kSegmentKernelMaxTerms, i = idx % kSegmentKernelMaxTerms;
      float c = 0.f;
      if (ib < ph.n_b && i < ph.b[ib].terms)
        c = ph.b[ib].coef ? to_f(ph.b[ib].coef[s * ph.b[ib].coef_seg + i]) : 1.f;
      coef[ib][i] = c;
    }
    unsigned slot_mask = 0;
    for (int ib = 0; ib < ph.n_b; ++ib) slot_mask |= 1u << ph.b[ib].slot;
    const T* a_base = ph.a.p + s * ph.a.seg;
    const BVector bv = b_vector<BK>(ph, bnp, tid);
    const MergedOperand<T>& bo = ph.b[bv.active ? bv.ib : 0];
    const bool b_fast = bv.active && flags.b[p][bv.ib];
    const int terms = bv.active ? bo.terms : 0;
    const T* b_base = bo.w + s * bo.seg;
    const int col = bv.active ? bo.slot * bnp + bv.n : 0;  // column in the staged tile
    __syncthreads();  // coef visible

    auto stage_a = [&](int k0, int buf) {
      T* dst = As + buf * K::kAsStage;
      for (int idx = tid; idx < K::BM * BK / 8; idx += THREADS) {
        const int m = idx / (BK / 8), kq = (idx % (BK / 8)) * 8, gm = m0 + m, gk = k0 + kq;
        T* d = dst + m * kAsLd + kq;
        if (flags.a[p] && gm < job.M && gk + 8 <= ph.K) {
          cp_async16(d, a_base + (long long)gm * ph.a.rs + gk);
        } else {
#pragma unroll
          for (int j = 0; j < 8; ++j)
            d[j] = gm < job.M && gk + j < ph.K ? a_base[(long long)gm * ph.a.rs + gk + j] : from_f<T>(0.f);
        }
      }
      cp_async_commit();
    };
    // Address of element (k, n) of expert i's tile, and whether the whole vector lies inside B.
    auto b_addr = [&](int k0, int i) {
      return b_base + i * bo.term_stride + (long long)(k0 + bv.k) * bo.rs + (long long)(n0 + bv.n) * bo.cs;
    };
    auto b_in = [&](int k0) {
      return bv.along_n ? k0 + bv.k < ph.K && n0 + bv.n + 8 <= job.N : n0 + bv.n < job.N && k0 + bv.k + 8 <= ph.K;
    };
    uint4 pre[kPrefetch];
    auto prefetch_b = [&](int k0) {
      if (!b_fast || !b_in(k0)) return;
#pragma unroll
      for (int i = 0; i < kPrefetch; ++i)
        if (i < terms) pre[i] = *reinterpret_cast<const uint4*>(b_addr(k0, i));
    };
    // Merged vector of the step at k0 (from `pre` for the first experts when prefetched) into buffer buf.
    auto finish_b = [&](int k0, int buf, bool prefetched) {
      if (!bv.active) return;
      float v[8] = {};
      if (b_fast && b_in(k0)) {
#pragma unroll
        for (int i = 0; i < kPrefetch; ++i)
          if (i < terms) {
            float w[8];
            unpack8<T>(prefetched ? pre[i] : *reinterpret_cast<const uint4*>(b_addr(k0, i)), w);
#pragma unroll
            for (int j = 0; j < 8; ++j) v[j] += coef[bv.ib][i] * w[j];
          }
        for (int i = kPrefetch; i < terms; ++i) {
          float w[8];
          unpack8<T>(*reinterpret_cast<const uint4*>(b_addr(k0, i)), w);
#pragma unroll
          for (int j = 0; j < 8; ++j) v[j] += coef[bv.ib][i] * w[j];
        }
      } else {  // edges and unaligned operands: element by element, zero outside B
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          const int gk = k0 + bv.k + (bv.along_n ? 0 : j), gn = n0 + bv.n + (bv.along_n ? j : 0);
          if (gk >= ph.K || gn >= job.N) continue;
          const T* src = b_base + (long long)gk * bo.rs + (long long)gn * bo.cs;
          for (int i = 0; i < terms; ++i) v[j] += coef[bv.ib][i] * to_f(src[i * bo.term_stride]);
        }
      }
      T* dst = Bs + buf * K::kBsStage;
      if (bv.along_n) {
        alignas(16) T packed[8];
#pragma unroll
        for (int j = 0; j < 8; ++j) packed[j] = from_f<T>(v[j]);
        *reinterpret_cast<uint4*>(dst + bv.k * kBsLd + col) = *reinterpret_cast<const uint4*>(packed);
      } else {
#pragma unroll
        for (int j = 0; j < 8; ++j) dst[(bv.k + j) * kBsLd + col] = from_f<T>(v[j]);
      }
    };

    const int nk = (ph.K + BK - 1) / BK;
    stage_a(0, 0);
    finish_b(0, 0, false);
    for (int kt = 0; kt < nk; ++kt) {
      const int buf = kt & 1;
      cp_async_wait_all();
      __syncthreads();  // step kt staged by everyone; everyone is done with step kt-1's buffers
      const bool more = kt + 1 < nk;
      if (more) {
        stage_a((kt + 1) * BK, buf ^ 1);
        prefetch_b((kt + 1) * BK);
      }
      const T* as = As + buf * K::kAsStage;
      const T* bs = Bs + buf * K::kBsStage;
#pragma unroll
      for (int kk = 0; kk < BK; kk += 16) {
        nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 16, T, nvcuda::wmma::row_major> fa[FM];
#pragma unroll
        for (int i = 0; i < FM; ++i)
          nvcuda::wmma::load_matrix_sync(fa[i], as + (warp * FM * 16 + i * 16) * kAsLd + kk, kAsLd);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          if (j >= n_frag || !(slot_mask >> (j * 16 / bnp) & 1u)) continue;
          nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, 16, T, nvcuda::wmma::row_major> fb;
          nvcuda::wmma::load_matrix_sync(fb, bs + kk * kBsLd + j * 16, kBsLd);
#pragma unroll
          for (int i = 0; i < FM; ++i) nvcuda::wmma::mma_sync(acc[i][j], fa[i], fb, acc[i][j]);
        }
      }
      if (more) finish_b((kt + 1) * BK, buf ^ 1, true);
    }
  }
  cp_async_wait_all();
  __syncthreads();  // Cs aliases the pipeline buffers
#pragma unroll
  for (int i = 0; i < FM; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
      if (j < n_frag)
        nvcuda::wmma::store_matrix_sync(Cs + (warp * FM * 16 + i * 16) * kCsLd + j * 16, acc[i][j], kCsLd,
                                        nvcuda::wmma::mem_row_major);
  __syncthreads();
  for (int idx = tid; idx < K::BM * bnp; idx += THREADS) {
    const int r = idx / bnp, c = idx % bnp, gm = m0 + r, gn = n0 + c;
    if (gm >= job.M || gn >= job.N) continue;
    float v[3] = {};
    for (int q = 0; q < job.slots; ++q) v[q] = Cs[r * kCsLd + q * bnp + c];
    apply_epilogue(job, s, gm, gn, v);
  }
}

template <typename T, int FM>
cudaError_t launch_fm(const SegmentJob<T>& job, const VectorFlags& flags, long long segments, cudaStream_t stream) {
  using K = SegmentKernel<T, FM>;
  const cudaError_t err = cudaFuncSetAttribute(segment_gemm_kernel<T, FM>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, int(K::kSmemBytes));
  if (err != cudaSuccess) return err;
  const int bnp = columns_per_slot(job.slots, false);
  const dim3 grid(unsigned(segments), unsigned((job.N + bnp - 1) / bnp), unsigned((job.M + K::BM - 1) / K::BM));
  segment_gemm_kernel<T, FM><<<grid, THREADS, K::kSmemBytes, stream>>>(job, flags);
  return cudaGetLastError();
}

}  // namespace

template <typename T>
cudaError_t launch_segment_gemm(const SegmentJob<T>& job, long long segments, cudaStream_t stream) {
  if constexpr (std::is_same<T, float>::value) {
    return cudaErrorNotSupported;
  } else {
    if (segments <= 0 || job.M <= 0 || job.N <= 0) return cudaSuccess;  // empty output: no empty grid
    VectorFlags flags;
    if (!wide_kernel_takes(job, true, segments, &flags)) return cudaErrorNotSupported;
    return job.M <= 128 ? launch_fm<T, 1>(job, flags, segments, stream) : launch_fm<T, 2>(job, flags, segments, stream);
  }
}
template cudaError_t launch_segment_gemm<float>(const SegmentJob<float>&, long long, cudaStream_t);
template cudaError_t launch_segment_gemm<__half>(const SegmentJob<__half>&, long long, cudaStream_t);
template cudaError_t launch_segment_gemm<__nv_bfloat16>(const SegmentJob<__nv_bfloat16>&, long long, cudaStream_t);

}  // namespace lory
