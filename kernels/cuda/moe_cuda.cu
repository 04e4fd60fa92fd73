// CUDA merged-expert SwiGLU FFN. One tile routine serves every GEMM of the layer: 64×64 output tiles,
// K in steps of 32; the B tile is merged from the experts while it is staged into shared memory.
//
// Why merge on the fly rather than "merge per segment into scratch + cuBLAS batched GEMM":
//  * the merged tile is consumed straight from shared memory: no G·3·d·f scratch, no extra HBM write +
//    read of every merged matrix (at the bench shape the merged weights would be 3x the experts' size);
//  * the experts (E·d·f per matrix, 11.5 MB in bf16 at d=512, f=1408, E=8) stay in the 50 MB L2 while
//    all segments (grid.z) merge from them, so the E-fold read is an L2 read, not an HBM read;
//  * no cuBLAS dependency: the build machines have nvcc but no cuBLAS.
// The cost is a simpler GEMM than cuBLAS (no async-copy pipeline); kernels/cuda/check measures it.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <string>
#include <type_traits>

#include "moe_cuda.h"

namespace lory {
namespace {

constexpr int BM = 64, BN = 64, BK = 32, THREADS = 256;
constexpr int kExpertGroup = 8;  // experts whose dW tiles one weight-gradient block keeps in shared memory
constexpr int kMaxGridZ = 65535;

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

// One A·B̄ product: A(m,k) from `a`, B̄(k,n) = Σᵢ coef[s*coef_seg + i]·B_i(k,n), B_i = b shifted by i*term_stride.
template <typename T>
struct Product {
  View<T> a, b;
  long long term_stride;
  const T* coef;  // nullptr: B is one plain matrix
  long long coef_seg;
  int terms, K;
};

template <typename T>
using Staged = typename std::conditional<std::is_same<T, float>::value, float, T>::type;

// Shared-memory strides. CUDA cores: A k-major (float4 reads along m). Tensor cores: both row-major
// with ld a multiple of 8 elements, as WMMA requires.
constexpr int kAsSimtLd = BM + 4, kBsSimtLd = BN + 4, kAsTcLd = BK + 8, kBsTcLd = BN + 8, kCsLd = BN + 4;
constexpr int kAsElems = BM * kAsTcLd > BK * kAsSimtLd ? BM * kAsTcLd : BK * kAsSimtLd;
constexpr int kBsElems = BK * kBsTcLd > BK * kBsSimtLd ? BK * kBsTcLd : BK * kBsSimtLd;

// Cs[BM][kCsLd] = Σ_p A_p·B̄_p for the tile at (m0, n0) of segment s. Ends with a barrier.
template <typename T>
__device__ void compute_tile(const Product<T>* prods, int n_prod, long long s, int m0, int n0, int M, int N,
                             Staged<T>* As, Staged<T>* Bs, float* Cs) {
  constexpr bool kTensorCores = !std::is_same<T, float>::value;
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16, warp = tid / 32;
  float acc[4][4] = {};
  nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> frag_c[2];
  if constexpr (kTensorCores) {
    nvcuda::wmma::fill_fragment(frag_c[0], 0.f);
    nvcuda::wmma::fill_fragment(frag_c[1], 0.f);
  }
  for (int p = 0; p < n_prod; ++p) {
    const Product<T>& pr = prods[p];
    const T* a_base = pr.a.p + s * pr.a.seg;
    const T* b_base = pr.b.p + s * pr.b.seg;
    const T* coef = pr.coef ? pr.coef + s * pr.coef_seg : nullptr;
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
        if (pr.b.cs == 1) n = idx % BN, k = idx / BN;
        else k = idx % BK, n = idx / BK;
        const int gn = n0 + n, gk = k0 + k;
        float v = 0.f;
        if (gn < N && gk < pr.K) {
          const T* src = b_base + gk * pr.b.rs + gn * pr.b.cs;
          if (coef)
            for (int i = 0; i < pr.terms; ++i) v += to_f(coef[i]) * to_f(src[i * pr.term_stride]);
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

template <typename T>
struct TileJob {
  Product<T> prod[2];
  int n_prod, M, N;
};

// Output of a per-segment GEMM: C_s(m,n) = out[s*seg + m*ld + n], written as Out (float or T).
template <typename Out>
struct Sink {
  Out* p;
  long long seg, ld;
  bool accumulate;
};

// grid: (N tiles, M tiles, segments); C_s = Σ_p A_p·B̄_p.
template <typename T, typename Out>
__global__ void __launch_bounds__(THREADS) segment_gemm_kernel(TileJob<T> job, Sink<Out> out, long long s_offset) {
  __shared__ __align__(32) Staged<T> As[kAsElems];
  __shared__ __align__(32) Staged<T> Bs[kBsElems];
  __shared__ __align__(32) float Cs[BM * kCsLd];
  const long long s = s_offset + blockIdx.z;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  compute_tile<T>(job.prod, job.n_prod, s, m0, n0, job.M, job.N, As, Bs, Cs);
  for (int idx = threadIdx.x; idx < BM * BN; idx += THREADS) {
    const int r = idx / BN, c = idx % BN, gm = m0 + r, gn = n0 + c;
    if (gm >= job.M || gn >= job.N) continue;
    Out* dst = out.p + s * out.seg + gm * out.ld + gn;
    float v = Cs[r * kCsLd + c];
    if (out.accumulate) v += to_f(*dst);
    *dst = from_f<Out>(v);
  }
}

// Weight gradients of one [E, M, N] expert tensor. Block = one 64×64 tile × a group of ≤ 8 experts; it
// loops over all segments: G_s tile (K = T), then dWᵢ += e[s,i]·G_s in shared memory and
// de[s,i] += ⟨G_s, Wᵢ⟩ (block reduction, one atomicAdd per segment and expert). dW is written once.
template <typename T>
__global__ void __launch_bounds__(THREADS) weight_grad_kernel(Product<T> prod, int G, int M, int N, int E,
                                                                const T* e, const T* w, T* dw, float* de_acc) {
  __shared__ __align__(32) Staged<T> As[kAsElems];
  __shared__ __align__(32) Staged<T> Bs[kBsElems];
  __shared__ __align__(32) float Cs[BM * kCsLd];
  __shared__ float partial[THREADS / 32][kExpertGroup];
  extern __shared__ float dw_tiles[];  // [group][BM*BN]
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int i0 = blockIdx.z * kExpertGroup, group = min(kExpertGroup, E - i0);
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  for (int idx = tid; idx < group * BM * BN; idx += THREADS) dw_tiles[idx] = 0.f;
  for (int s = 0; s < G; ++s) {
    compute_tile<T>(&prod, 1, s, m0, n0, M, N, As, Bs, Cs);
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
      atomicAdd(de_acc + (long long)s * E + i0 + tid, sum);
    }
    __syncthreads();  // Cs and partial are rewritten by the next segment
  }
  for (int idx = tid; idx < BM * BN; idx += THREADS) {
    const int r = idx / BN, c = idx % BN, gm = m0 + r, gn = n0 + c;
    if (gm >= M || gn >= N) continue;
    for (int i = 0; i < group; ++i)
      dw[(long long)(i0 + i) * M * N + (long long)gm * N + gn] = from_f<T>(dw_tiles[i * BM * BN + idx]);
  }
}

__device__ __forceinline__ float sigmoid(float a) { return 1.f / (1.f + __expf(-a)); }

template <typename T>
__global__ void swiglu_forward_kernel(long long n, const float* a, const float* b, T* h) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    h[i] = from_f<T>(a[i] * sigmoid(a[i]) * b[i]);
}

template <typename T>
__global__ void swiglu_backward_kernel(long long n, const float* a, const float* b, const float* dh, T* h, T* da,
                                       T* db) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const float av = a[i], bv = b[i], g = dh[i], sg = sigmoid(av), silu = av * sg;
    h[i] = from_f<T>(silu * bv);
    da[i] = from_f<T>(g * bv * sg * (1.f + av * (1.f - sg)));
    db[i] = from_f<T>(g * silu);
  }
}

template <typename T>
__global__ void convert_kernel(long long n, const float* in, T* out) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    out[i] = from_f<T>(in[i]);
}

unsigned elementwise_blocks(long long n) {
  const long long b = (n + 255) / 256;
  return unsigned(b < 8192 ? (b > 0 ? b : 1) : 8192);
}

// Carves the caller's scratch into 256-byte aligned pieces.
struct Carver {
  char* p;
  size_t used = 0;
  template <typename U>
  U* take(long long n) {
    U* out = reinterpret_cast<U*>(p ? p + used : nullptr);
    used += (size_t(n) * sizeof(U) + 255) / 256 * 256;
    return out;
  }
};

template <typename T, typename Out>
void launch_segment_gemm(const TileJob<T>& job, const Sink<Out>& out, long long G, cudaStream_t stream) {
  for (long long s0 = 0; s0 < G; s0 += kMaxGridZ) {
    const dim3 grid((job.N + BN - 1) / BN, (job.M + BM - 1) / BM, unsigned(G - s0 < kMaxGridZ ? G - s0 : kMaxGridZ));
    segment_gemm_kernel<T, Out><<<grid, THREADS, 0, stream>>>(job, out, s0);
  }
}

// Product with B̄ = Σᵢ e[s,i]·W_i, W_i(k,n) = w[i*stride + k*rs + n*cs].
template <typename T>
Product<T> merged(View<T> a, const T* w, long long stride, long long rs, long long cs, const T* e, int E, int K) {
  return Product<T>{a, View<T>{w, 0, rs, cs}, stride, e, E, E, K};
}

template <typename T>
Product<T> plain(View<T> a, View<T> b, int K) {
  return Product<T>{a, b, 0, nullptr, 0, 1, K};
}

template <typename T>
std::string forward_impl(const MoeShape& sh, const T* x, const T* e, const T* wg, const T* wu, const T* wd, T* y,
                         void* scratch, cudaStream_t stream) {
  const long long G = sh.G, Tn = sh.T, d = sh.d, f = sh.f;
  const int E = int(sh.E);
  Carver c{static_cast<char*>(scratch)};
  float* a = c.take<float>(G * Tn * f);
  float* b = c.take<float>(G * Tn * f);
  T* h = c.take<T>(G * Tn * f);
  const View<T> xs{x, Tn * d, d, 1};
  TileJob<T> job{};
  job.M = int(Tn), job.N = int(f), job.n_prod = 1;
  job.prod[0] = merged(xs, wg, d * f, f, 1, e, E, int(d));
  launch_segment_gemm(job, Sink<float>{a, Tn * f, f, false}, G, stream);
  job.prod[0] = merged(xs, wu, d * f, f, 1, e, E, int(d));
  launch_segment_gemm(job, Sink<float>{b, Tn * f, f, false}, G, stream);
  swiglu_forward_kernel<T><<<elementwise_blocks(G * Tn * f), 256, 0, stream>>>(G * Tn * f, a, b, h);
  job.N = int(d);
  job.prod[0] = merged(View<T>{h, Tn * f, f, 1}, wd, f * d, d, 1, e, E, int(f));
  launch_segment_gemm(job, Sink<T>{y, Tn * d, d, false}, G, stream);
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? "" : std::string("LoryMoEFFN (CUDA): ") + cudaGetErrorString(err);
}

template <typename T>
cudaError_t launch_weight_grad(const Product<T>& prod, const MoeShape& sh, int M, int N, const T* e, const T* w, T* dw,
                               float* de_acc, cudaStream_t stream) {
  const int groups = int((sh.E + kExpertGroup - 1) / kExpertGroup);
  const int group = int(sh.E < kExpertGroup ? sh.E : kExpertGroup);
  const size_t smem = size_t(group) * BM * BN * sizeof(float);
  // 128 KiB dynamic + ~37 KiB static: needs the opt-in (sm_90: 227 KiB per block). Checked, so a device with
  // less shared memory reports this call rather than a bare launch failure.
  const cudaError_t err = cudaFuncSetAttribute(weight_grad_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               int(kExpertGroup * BM * BN * sizeof(float)));
  if (err != cudaSuccess) return err;
  const dim3 grid((N + BN - 1) / BN, (M + BM - 1) / BM, groups);
  weight_grad_kernel<T><<<grid, THREADS, smem, stream>>>(prod, int(sh.G), M, N, int(sh.E), e, w, dw, de_acc);
  return cudaGetLastError();
}

template <typename T>
std::string backward_impl(const MoeShape& sh, const T* x, const T* e, const T* wg, const T* wu, const T* wd,
                          const T* dy, T* dx, T* de, T* dwg, T* dwu, T* dwd, void* scratch, cudaStream_t stream) {
  const long long G = sh.G, Tn = sh.T, d = sh.d, f = sh.f, n_act = G * Tn * f;
  const int E = int(sh.E);
  Carver c{static_cast<char*>(scratch)};
  float* a = c.take<float>(n_act);
  float* b = c.take<float>(n_act);
  float* dh = c.take<float>(n_act);
  T* h = c.take<T>(n_act);
  T* da = c.take<T>(n_act);
  T* db = c.take<T>(n_act);
  float* de_acc = c.take<float>(G * E);
  const View<T> xs{x, Tn * d, d, 1}, dys{dy, Tn * d, d, 1};

  TileJob<T> job{};
  job.M = int(Tn), job.N = int(f), job.n_prod = 1;
  job.prod[0] = merged(xs, wg, d * f, f, 1, e, E, int(d));  // recompute a = x·W̄g
  launch_segment_gemm(job, Sink<float>{a, Tn * f, f, false}, G, stream);
  job.prod[0] = merged(xs, wu, d * f, f, 1, e, E, int(d));  // recompute b = x·W̄u
  launch_segment_gemm(job, Sink<float>{b, Tn * f, f, false}, G, stream);
  job.prod[0] = merged(dys, wd, f * d, 1, d, e, E, int(d));  // dh(t,j) = Σ_c dy(t,c)·W̄d(j,c)
  launch_segment_gemm(job, Sink<float>{dh, Tn * f, f, false}, G, stream);
  swiglu_backward_kernel<T><<<elementwise_blocks(n_act), 256, 0, stream>>>(n_act, a, b, dh, h, da, db);

  job.N = int(d), job.n_prod = 2;  // dx(t,c) = Σ_j da(t,j)·W̄g(c,j) + db(t,j)·W̄u(c,j)
  job.prod[0] = merged(View<T>{da, Tn * f, f, 1}, wg, d * f, 1, f, e, E, int(f));
  job.prod[1] = merged(View<T>{db, Tn * f, f, 1}, wu, d * f, 1, f, e, E, int(f));
  launch_segment_gemm(job, Sink<T>{dx, Tn * d, d, false}, G, stream);

  const std::string op = "LoryMoEFFNGrad (CUDA): ";
  if (cudaError_t err = cudaGetLastError(); err != cudaSuccess) return op + cudaGetErrorString(err);
  if (cudaError_t err = cudaMemsetAsync(de_acc, 0, size_t(G * E) * sizeof(float), stream); err != cudaSuccess)
    return op + "cudaMemsetAsync: " + cudaGetErrorString(err);
  // G_gate,s = x_sᵀ·da_s, G_up,s = x_sᵀ·db_s  ([d,f]);  G_down,s = h_sᵀ·dy_s  ([f,d]); K = T.
  cudaError_t werr = launch_weight_grad(plain(View<T>{x, Tn * d, 1, d}, View<T>{da, Tn * f, f, 1}, int(Tn)), sh,
                                        int(d), int(f), e, wg, dwg, de_acc, stream);
  if (werr == cudaSuccess)
    werr = launch_weight_grad(plain(View<T>{x, Tn * d, 1, d}, View<T>{db, Tn * f, f, 1}, int(Tn)), sh, int(d), int(f),
                              e, wu, dwu, de_acc, stream);
  if (werr == cudaSuccess)
    werr = launch_weight_grad(plain(View<T>{h, Tn * f, 1, f}, View<T>{dy, Tn * d, d, 1}, int(Tn)), sh, int(f), int(d),
                              e, wd, dwd, de_acc, stream);
  if (werr != cudaSuccess) return op + "weight-gradient kernel: " + cudaGetErrorString(werr);
  convert_kernel<T><<<elementwise_blocks(G * E), 256, 0, stream>>>(G * E, de_acc, de);
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? "" : std::string("LoryMoEFFNGrad (CUDA): ") + cudaGetErrorString(err);
}

size_t element_size(CudaDType t) { return t == CudaDType::f32 ? 4 : 2; }

}  // namespace

const char* dtype_name(CudaDType t) {
  return t == CudaDType::f32 ? "float32" : t == CudaDType::f16 ? "float16" : "bfloat16";
}

size_t moe_cuda_forward_scratch_bytes(const MoeShape& s, CudaDType t) {
  const long long n = s.G * s.T * s.f;
  return (size_t(n) * 4 + 255) / 256 * 256 * 2 + (size_t(n) * element_size(t) + 255) / 256 * 256;
}

size_t moe_cuda_backward_scratch_bytes(const MoeShape& s, CudaDType t) {
  const long long n = s.G * s.T * s.f;
  return (size_t(n) * 4 + 255) / 256 * 256 * 3 + (size_t(n) * element_size(t) + 255) / 256 * 256 * 3 +
         (size_t(s.G * s.E) * 4 + 255) / 256 * 256;
}

#define LORY_DISPATCH(t, F, ...)                                                              \
  switch (t) {                                                                                \
    case CudaDType::f32: return F<float>(__VA_ARGS__);                                        \
    case CudaDType::f16: return F<__half>(__VA_ARGS__);                                       \
    default: return F<__nv_bfloat16>(__VA_ARGS__);                                            \
  }

template <typename T>
static std::string forward_typed(const MoeShape& s, const void* x, const void* e, const void* wg, const void* wu,
                                 const void* wd, void* y, void* scratch, void* stream) {
  return forward_impl<T>(s, static_cast<const T*>(x), static_cast<const T*>(e), static_cast<const T*>(wg),
                         static_cast<const T*>(wu), static_cast<const T*>(wd), static_cast<T*>(y), scratch,
                         static_cast<cudaStream_t>(stream));
}

template <typename T>
static std::string backward_typed(const MoeShape& s, const void* x, const void* e, const void* wg, const void* wu,
                                  const void* wd, const void* dy, void* dx, void* de, void* dwg, void* dwu, void* dwd,
                                  void* scratch, void* stream) {
  return backward_impl<T>(s, static_cast<const T*>(x), static_cast<const T*>(e), static_cast<const T*>(wg),
                          static_cast<const T*>(wu), static_cast<const T*>(wd), static_cast<const T*>(dy),
                          static_cast<T*>(dx), static_cast<T*>(de), static_cast<T*>(dwg), static_cast<T*>(dwu),
                          static_cast<T*>(dwd), scratch, static_cast<cudaStream_t>(stream));
}

std::string moe_cuda_forward(const MoeShape& s, CudaDType t, const void* x, const void* e, const void* w_gate,
                             const void* w_up, const void* w_down, void* y, void* scratch, void* stream) {
  LORY_DISPATCH(t, forward_typed, s, x, e, w_gate, w_up, w_down, y, scratch, stream)
}

std::string moe_cuda_backward(const MoeShape& s, CudaDType t, const void* x, const void* e, const void* w_gate,
                              const void* w_up, const void* w_down, const void* dy, void* dx, void* de,
                              void* dw_gate, void* dw_up, void* dw_down, void* scratch, void* stream) {
  LORY_DISPATCH(t, backward_typed, s, x, e, w_gate, w_up, w_down, dy, dx, de, dw_gate, dw_up, dw_down, scratch,
                stream)
}

}  // namespace lory
