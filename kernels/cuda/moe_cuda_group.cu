// The group kernel of the CUDA merged-expert FFN (MoeCudaOptions::kernel = group; never run on a GPU,
// not the default until measured, docs/kernels.md). Issue 25: every segment of the `segment` kernel
// re-reads every expert tile. Here one block serves a group of kGroupSegments consecutive segments
// (moe_cuda_group.h; the last group may be partial) × kGroupRows rows of each × one column tile:
//  * each thread reads its 16-byte vector of every expert tile once per K step and merges it into the
//    B tiles of all the group's segments (Σᵢ e[s,i]·Wᵢ per segment, float, rounded to T), so the
//    expert reads per multiply-add drop by the group size against one segment per block;
//  * 8 warps, 2 per segment, 32 rows × up to 64 columns each (WMMA 16×16×16, float32 accumulation);
//  * A arrives through a two-stage cp.async double buffer, as in the segment kernel;
//  * blockIdx.x walks groups fastest, so resident blocks share an expert column panel in L2.
// float16/bfloat16 only; other jobs (wide_kernel_takes) return cudaErrorNotSupported and run on `tile`.
#include <mma.h>

#include "moe_cuda_common.cuh"

namespace lory {
namespace {

constexpr int THREADS = 256, WARPS = THREADS / 32, BK = 32;
constexpr int SG = kGroupSegments, ROWS = kGroupRows;
constexpr int WARPS_PER_SEGMENT = WARPS / SG, WARP_ROWS = ROWS / WARPS_PER_SEGMENT, FM = WARP_ROWS / 16;
static_assert(WARPS % SG == 0 && ROWS % (16 * WARPS_PER_SEGMENT) == 0, "warps tile the group's rows");
constexpr int kAsLd = BK + 8;  // 80-byte rows: 16-byte aligned for cp.async, 32-byte WMMA offsets
constexpr int kPrefetch = 4;   // experts whose next-step vectors are held in registers across the MMAs
constexpr int kAsSeg = ROWS * kAsLd;  // one segment's A tile in a stage
constexpr int kAsStage = SG * kAsSeg;

// Layout for NF accumulator fragments per row block (staged width NF·16 = all slots' columns):
// NF = 4 (`group`: ≤ 64 columns), NF = 6 (`group-wide`: 3 slots × 32 columns, moe_cuda_group.h).
template <int NF>
struct GroupLayout {
  static constexpr int kBsLd = NF * 16 + 8;  // 144- or 208-byte rows
  static constexpr int kCsLd = NF * 16 + 4;
  static constexpr int kBsSeg = BK * kBsLd, kBsStage = SG * kBsSeg;  // one segment's / all segments' B tile
  template <typename T>
  static constexpr size_t smem_bytes() {
    const size_t pipeline = (2 * kAsStage + 2 * kBsStage) * sizeof(T),
                 epilogue = size_t(SG) * ROWS * kCsLd * sizeof(float);
    return pipeline > epilogue ? pipeline : epilogue;
  }
};

// grid: (groups, column tiles, row blocks of ROWS).
template <typename T, int NF>
__global__ void __launch_bounds__(THREADS) group_gemm_kernel(SegmentJob<T> job, VectorFlags flags, long long segments) {
  using L = GroupLayout<NF>;
  constexpr int kBsLd = L::kBsLd, kCsLd = L::kCsLd, kBsSeg = L::kBsSeg, kBsStage = L::kBsStage;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  __shared__ float coef[SG][2][kWideKernelMaxTerms];
  T* As = reinterpret_cast<T*>(smem_raw);
  T* Bs = As + 2 * kAsStage;
  float* Cs = reinterpret_cast<float*>(smem_raw);
  const SegmentGroup grp = segment_group(blockIdx.x, segments, SG);
  const int bnp = columns_per_slot(job.slots, NF == 6);
  const int n0 = blockIdx.y * bnp, m0 = blockIdx.z * ROWS;
  const int tid = threadIdx.x, warp = tid / 32;
  const int wq = warp / WARPS_PER_SEGMENT, wrow = (warp % WARPS_PER_SEGMENT) * WARP_ROWS;  // segment, first row
  const bool warp_live = wq < grp.count;  // warps of an absent segment (last group) stage and sync only
  const int n_frag = job.slots * bnp / 16;

  nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> acc[FM][NF];
#pragma unroll
  for (int i = 0; i < FM; ++i)
#pragma unroll
    for (int j = 0; j < NF; ++j) nvcuda::wmma::fill_fragment(acc[i][j], 0.f);

  for (int p = 0; p < job.n_ph; ++p) {
    const Phase<T>& ph = job.ph[p];
    __syncthreads();  // the previous phase's last MMAs are done with both buffers and with coef
    for (int idx = tid; idx < SG * 2 * kWideKernelMaxTerms; idx += THREADS) {
      const int q = idx / (2 * kWideKernelMaxTerms), ib = idx / kWideKernelMaxTerms % 2, i = idx % kWideKernelMaxTerms;
      float c = 0.f;
      if (q < grp.count && ib < ph.n_b && i < ph.b[ib].terms) {
        const long long s = grp.first + q;
        c = ph.b[ib].coef ? to_f(ph.b[ib].coef[s * ph.b[ib].coef_seg + i]) : 1.f;
      }
      coef[q][ib][i] = c;
    }
    unsigned slot_mask = 0;
    for (int ib = 0; ib < ph.n_b; ++ib) slot_mask |= 1u << ph.b[ib].slot;
    const BVector bv = b_vector<BK>(ph, bnp, tid);
    const MergedOperand<T>& bo = ph.b[bv.active ? bv.ib : 0];
    const bool b_fast = bv.active && flags.b[p][bv.ib];
    const int terms = bv.active ? bo.terms : 0;
    const int col = bv.active ? bo.slot * bnp + bv.n : 0;  // column in the staged tile
    __syncthreads();  // coef visible

    auto stage_a = [&](int k0, int buf) {
      T* dst = As + buf * kAsStage;
      for (int idx = tid; idx < SG * ROWS * BK / 8; idx += THREADS) {
        const int q = idx / (ROWS * BK / 8), r = idx % (ROWS * BK / 8);
        if (q >= grp.count) continue;  // no warp reads an absent segment's rows
        const int m = r / (BK / 8), kq = (r % (BK / 8)) * 8, gm = m0 + m, gk = k0 + kq;
        const T* a_base = ph.a.p + (grp.first + q) * ph.a.seg;
        T* d = dst + q * kAsSeg + m * kAsLd + kq;
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
    // Expert tiles are shared by the group: b_base does not depend on the segment (the merged
    // operands' seg stride is 0; a per-segment plain operand (coef == nullptr) never reaches a wide kernel
    // in this orchestration, and is handled per segment below anyway).
    auto b_addr = [&](int k0, int i) {
      return bo.w + i * bo.term_stride + (long long)(k0 + bv.k) * bo.rs + (long long)(n0 + bv.n) * bo.cs;
    };
    auto b_in = [&](int k0) {
      return bv.along_n ? k0 + bv.k < ph.K && n0 + bv.n + 8 <= job.N : n0 + bv.n < job.N && k0 + bv.k + 8 <= ph.K;
    };
    const bool shared_experts = bo.seg == 0;
    uint4 pre[kPrefetch];
    auto prefetch_b = [&](int k0) {
      if (!b_fast || !shared_experts || !b_in(k0)) return;
#pragma unroll
      for (int i = 0; i < kPrefetch; ++i)
        if (i < terms) pre[i] = *reinterpret_cast<const uint4*>(b_addr(k0, i));
    };
    // Merged vectors of the step at k0 for every segment of the group into buffer buf: each expert
    // vector is read once and added into all of them.
    auto finish_b = [&](int k0, int buf, bool prefetched) {
      if (!bv.active) return;
      float v[SG][8] = {};
      if (b_fast && shared_experts && b_in(k0)) {
        auto add = [&](const uint4& raw, int i) {
          float w[8];
          unpack8<T>(raw, w);
#pragma unroll
          for (int q = 0; q < SG; ++q) {
            const float c = coef[q][bv.ib][i];
#pragma unroll
            for (int j = 0; j < 8; ++j) v[q][j] += c * w[j];
          }
        };
#pragma unroll
        for (int i = 0; i < kPrefetch; ++i)
          if (i < terms) add(prefetched ? pre[i] : *reinterpret_cast<const uint4*>(b_addr(k0, i)), i);
        for (int i = kPrefetch; i < terms; ++i) add(*reinterpret_cast<const uint4*>(b_addr(k0, i)), i);
      } else {  // edges, unaligned or per-segment operands: element by element, zero outside B
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          const int gk = k0 + bv.k + (bv.along_n ? 0 : j), gn = n0 + bv.n + (bv.along_n ? j : 0);
          if (gk >= ph.K || gn >= job.N) continue;
#pragma unroll
          for (int q = 0; q < SG; ++q) {
            if (q >= grp.count) continue;
            const T* src = bo.w + (grp.first + q) * bo.seg + (long long)gk * bo.rs + (long long)gn * bo.cs;
            for (int i = 0; i < terms; ++i) v[q][j] += coef[q][bv.ib][i] * to_f(src[i * bo.term_stride]);
          }
        }
      }
#pragma unroll
      for (int q = 0; q < SG; ++q) {
        if (q >= grp.count) continue;
        T* dst = Bs + buf * kBsStage + q * kBsSeg;
        if (bv.along_n) {
          alignas(16) T packed[8];
#pragma unroll
          for (int j = 0; j < 8; ++j) packed[j] = from_f<T>(v[q][j]);
          *reinterpret_cast<uint4*>(dst + bv.k * kBsLd + col) = *reinterpret_cast<const uint4*>(packed);
        } else {
#pragma unroll
          for (int j = 0; j < 8; ++j) dst[(bv.k + j) * kBsLd + col] = from_f<T>(v[q][j]);
        }
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
      if (warp_live) {
        const T* as = As + buf * kAsStage + wq * kAsSeg;
        const T* bs = Bs + buf * kBsStage + wq * kBsSeg;
#pragma unroll
        for (int kk = 0; kk < BK; kk += 16) {
          nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 16, T, nvcuda::wmma::row_major> fa[FM];
#pragma unroll
          for (int i = 0; i < FM; ++i)
            nvcuda::wmma::load_matrix_sync(fa[i], as + (wrow + i * 16) * kAsLd + kk, kAsLd);
#pragma unroll
          for (int j = 0; j < NF; ++j) {
            if (j >= n_frag || !(slot_mask >> (j * 16 / bnp) & 1u)) continue;
            nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, 16, T, nvcuda::wmma::row_major> fb;
            nvcuda::wmma::load_matrix_sync(fb, bs + kk * kBsLd + j * 16, kBsLd);
#pragma unroll
            for (int i = 0; i < FM; ++i) nvcuda::wmma::mma_sync(acc[i][j], fa[i], fb, acc[i][j]);
          }
        }
      }
      if (more) finish_b((kt + 1) * BK, buf ^ 1, true);
    }
  }
  cp_async_wait_all();
  __syncthreads();  // Cs aliases the pipeline buffers
  if (warp_live)
#pragma unroll
    for (int i = 0; i < FM; ++i)
#pragma unroll
      for (int j = 0; j < NF; ++j)
        if (j < n_frag)
          nvcuda::wmma::store_matrix_sync(Cs + (wq * ROWS + wrow + i * 16) * kCsLd + j * 16, acc[i][j], kCsLd,
                                          nvcuda::wmma::mem_row_major);
  __syncthreads();
  for (int idx = tid; idx < SG * ROWS * bnp; idx += THREADS) {
    const int q = idx / (ROWS * bnp), r = idx / bnp % ROWS, c = idx % bnp, gm = m0 + r, gn = n0 + c;
    if (q >= grp.count || gm >= job.M || gn >= job.N) continue;
    float v[3] = {};
    for (int t = 0; t < job.slots; ++t) v[t] = Cs[(q * ROWS + r) * kCsLd + t * bnp + c];
    apply_epilogue(job, grp.first + q, gm, gn, v);
  }
}

}  // namespace

template <typename T, int NF>
static cudaError_t launch_group_layout(const SegmentJob<T>& job, const VectorFlags& flags, long long segments,
                                       long long groups, int bnp, cudaStream_t stream) {
  constexpr size_t smem = GroupLayout<NF>::template smem_bytes<T>();
  const cudaError_t err =
      cudaFuncSetAttribute(group_gemm_kernel<T, NF>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
  if (err != cudaSuccess) return err;
  const dim3 grid(unsigned(groups), unsigned((job.N + bnp - 1) / bnp), unsigned((job.M + ROWS - 1) / ROWS));
  group_gemm_kernel<T, NF><<<grid, THREADS, smem, stream>>>(job, flags, segments);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_group_gemm(const SegmentJob<T>& job, long long segments, bool wide, cudaStream_t stream) {
  if constexpr (std::is_same<T, float>::value) {
    return cudaErrorNotSupported;
  } else {
    if (segments <= 0 || job.M <= 0 || job.N <= 0) return cudaSuccess;  // empty output: no empty grid
    const long long groups = segment_group_count(segments, SG);
    VectorFlags flags;
    if (!wide_kernel_takes(job, true, groups, &flags)) return cudaErrorNotSupported;
    const int bnp = columns_per_slot(job.slots, wide);
    // Only 3-slot jobs get wider columns; the others keep the 4-fragment layout (same columns either way).
    if (job.slots * bnp > 64) return launch_group_layout<T, 6>(job, flags, segments, groups, bnp, stream);
    return launch_group_layout<T, 4>(job, flags, segments, groups, bnp, stream);
  }
}
template cudaError_t launch_group_gemm<float>(const SegmentJob<float>&, long long, bool, cudaStream_t);
template cudaError_t launch_group_gemm<__half>(const SegmentJob<__half>&, long long, bool, cudaStream_t);
template cudaError_t launch_group_gemm<__nv_bfloat16>(const SegmentJob<__nv_bfloat16>&, long long, bool, cudaStream_t);

}  // namespace lory
