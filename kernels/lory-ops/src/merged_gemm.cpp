// GotoBLAS-style blocking: B̄ panel (kc×N, merged here) packed once per kc step and reused by every row
// strip; A packed in 6-row strips; micro-kernels chosen at run time (gemm_path.h): AVX-512 R×32
// (micro_avx512.cpp), AVX2/FMA 6×16 (12 accumulators) or portable.
#include "merged_gemm.h"

#include "gemm_path.h"
#include "micro_avx512.h"

#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace lory {
namespace {

constexpr int64_t MR = 6, NR = 16, MC = 192;


// AVX2 helpers (packing, the 6×16 kernel) serve the avx2 path and the avx512 path's packing alike;
// the portable path uses none of them.
bool cpu_has_avx2_fma() { return gemm_path() != GemmPath::kPortable; }
bool use_avx512() { return gemm_path() == GemmPath::kAvx512; }

// Panel depth. Measured at the bench shape: deeper slabs (fewer C read-modify-writes per micro-kernel
// call) beat keeping the staged expert panels within L2 (kc 128 → 512: forward 1.5x faster).
int64_t kc_cap() {
  static const int64_t cap = [] {
    const char* env = std::getenv("LORY_KC_MAX");
    return env != nullptr && *env != '\0' ? std::max<int64_t>(64, std::atoll(env) / 8 * 8) : int64_t(768);
  }();
  return cap;
}

int64_t panel_depth(int64_t K, int64_t N, int64_t terms) {
  int64_t kc = (int64_t(1) << 20) / std::max<int64_t>(1, terms * std::max<int64_t>(N, NR));
  kc = kc / 8 * 8;
  kc = std::max<int64_t>(64, std::min<int64_t>(kc, kc_cap()));
  return std::min(K, kc);
}

struct Buffers {
  std::vector<float> a, b;
};
Buffers& thread_buffers() {
  thread_local Buffers buffers;
  return buffers;
}

// ---- B̄ packing: out[(strip*kc + k)*NR + jj] = B̄(k0+k, j0+jj), zero past N ----

void pack_b_generic(const MergedB& B, int64_t k0, int64_t kc, int64_t N, float* out) {
  for (int64_t j0 = 0; j0 < N; j0 += NR)
    for (int64_t k = 0; k < kc; ++k)
      for (int64_t jj = 0; jj < NR; ++jj) {
        float v = 0.f;
        if (j0 + jj < N) {
          const int64_t off = (k0 + k) * B.rs + (j0 + jj) * B.cs;
          if (!B.coef) v = B.p[off];
          else
            for (int64_t i = 0; i < B.terms; ++i) v += B.coef[i] * B.p[i * B.term_stride + off];
        }
        *out++ = v;
      }
}

__attribute__((target("avx2,fma"))) void pack_b_rowmajor_avx2(const MergedB& B, int64_t k0, int64_t kc,
                                                               int64_t N, float* out) {
  const int64_t terms = B.coef ? B.terms : 1;
  for (int64_t j0 = 0; j0 + NR <= N; j0 += NR, out += kc * NR)
    for (int64_t k = 0; k < kc; ++k) {
      const float* src = B.p + (k0 + k) * B.rs + j0;
      __m256 v0 = _mm256_setzero_ps(), v1 = _mm256_setzero_ps();
      for (int64_t i = 0; i < terms; ++i) {
        const __m256 c = _mm256_set1_ps(B.coef ? B.coef[i] : 1.f);
        v0 = _mm256_fmadd_ps(c, _mm256_loadu_ps(src + i * B.term_stride), v0);
        v1 = _mm256_fmadd_ps(c, _mm256_loadu_ps(src + i * B.term_stride + 8), v1);
      }
      _mm256_storeu_ps(out + k * NR, v0);
      _mm256_storeu_ps(out + k * NR + 8, v1);
    }
  const int64_t done = (N / NR) * NR;
  if (done < N) {
    MergedB tail = B;
    tail.p = B.p + done * B.cs;
    pack_b_generic(tail, k0, kc, N - done, out);
  }
}

// 8×8 block of a single transposed source: rows k..k+7 of columns c..c+7 (column c at src + c·cs, k
// contiguous) → out[(k+q)·NR + q'] for q' < 8, via an in-register transpose (a scalar store per element
// made staging the backward's transposed panels cost more than merging them).
__attribute__((target("avx2,fma"))) inline void transpose8_store(const float* src, int64_t cs, float* out) {
  __m256 r[8];
  for (int c = 0; c < 8; ++c) r[c] = _mm256_loadu_ps(src + c * cs);
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)), s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)), s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  _mm256_storeu_ps(out + 0 * NR, _mm256_permute2f128_ps(s0, s4, 0x20));
  _mm256_storeu_ps(out + 1 * NR, _mm256_permute2f128_ps(s1, s5, 0x20));
  _mm256_storeu_ps(out + 2 * NR, _mm256_permute2f128_ps(s2, s6, 0x20));
  _mm256_storeu_ps(out + 3 * NR, _mm256_permute2f128_ps(s3, s7, 0x20));
  _mm256_storeu_ps(out + 4 * NR, _mm256_permute2f128_ps(s0, s4, 0x31));
  _mm256_storeu_ps(out + 5 * NR, _mm256_permute2f128_ps(s1, s5, 0x31));
  _mm256_storeu_ps(out + 6 * NR, _mm256_permute2f128_ps(s2, s6, 0x31));
  _mm256_storeu_ps(out + 7 * NR, _mm256_permute2f128_ps(s3, s7, 0x31));
}

// Transposed source (rs == 1): read each output column contiguously along k, merge 8 k at a time.
__attribute__((target("avx2,fma"))) void pack_b_transposed_avx2(const MergedB& B, int64_t k0, int64_t kc,
                                                                 int64_t N, float* out) {
  const int64_t terms = B.coef ? B.terms : 1;
  if (!B.coef) {  // a single unweighted matrix (the staged panels): 8×8 transposes
    const int64_t k8 = kc / 8 * 8;
    for (int64_t j0 = 0; j0 < N; j0 += NR, out += kc * NR)
      for (int64_t jj = 0; jj < NR; jj += 8) {
        if (j0 + jj + 8 > N) {  // a partial group of 8 columns: element by element, zero past N
          for (int64_t q = 0; q < 8; ++q)
            for (int64_t k = 0; k < kc; ++k)
              out[k * NR + jj + q] = j0 + jj + q < N ? B.p[(j0 + jj + q) * B.cs + k0 + k] : 0.f;
          continue;
        }
        const float* src = B.p + (j0 + jj) * B.cs + k0;
        for (int64_t k = 0; k < k8; k += 8) transpose8_store(src + k, B.cs, out + k * NR + jj);
        for (int64_t k = k8; k < kc; ++k)
          for (int64_t q = 0; q < 8; ++q) out[k * NR + jj + q] = src[q * B.cs + k];
      }
    return;
  }
  alignas(32) float tmp[8];
  for (int64_t j0 = 0; j0 < N; j0 += NR, out += kc * NR)
    for (int64_t jj = 0; jj < NR; ++jj) {
      if (j0 + jj >= N) {
        for (int64_t k = 0; k < kc; ++k) out[k * NR + jj] = 0.f;
        continue;
      }
      const float* src = B.p + (j0 + jj) * B.cs + k0;
      int64_t k = 0;
      for (; k + 8 <= kc; k += 8) {
        __m256 v = _mm256_setzero_ps();
        for (int64_t i = 0; i < terms; ++i)
          v = _mm256_fmadd_ps(_mm256_set1_ps(B.coef ? B.coef[i] : 1.f),
                              _mm256_loadu_ps(src + i * B.term_stride + k), v);
        _mm256_store_ps(tmp, v);
        for (int q = 0; q < 8; ++q) out[(k + q) * NR + jj] = tmp[q];
      }
      for (; k < kc; ++k) {
        float v = 0.f;
        for (int64_t i = 0; i < terms; ++i) v += (B.coef ? B.coef[i] : 1.f) * src[i * B.term_stride + k];
        out[k * NR + jj] = v;
      }
    }
}

void pack_b(const MergedB& B, int64_t k0, int64_t kc, int64_t N, float* out) {
  if (cpu_has_avx2_fma() && B.cs == 1) return pack_b_rowmajor_avx2(B, k0, kc, N, out);
  if (cpu_has_avx2_fma() && B.rs == 1) return pack_b_transposed_avx2(B, k0, kc, N, out);
  pack_b_generic(B, k0, kc, N, out);
}

// ---- A packing: out[(strip*kc + k)*MR + r] = A(m0+r, k0+k), zero past M ----
void pack_a(const StridedA& A, int64_t m0, int64_t mc, int64_t k0, int64_t kc, float* out) {
  for (int64_t r0 = 0; r0 < mc; r0 += MR)
    for (int64_t k = 0; k < kc; ++k)
      for (int64_t r = 0; r < MR; ++r)
        *out++ = (r0 + r < mc) ? A.p[(m0 + r0 + r) * A.rs + (k0 + k) * A.cs] : 0.f;
}

// ---- micro-kernels: c[MR×NR] (ldc) = or += a_strip·b_strip over kc ----

// A(r,k) = a[r*a_rs + k*a_ks]: a packed strip (a_rs=1, a_ks=MR) or row-major A read in place
// (a_rs=lda, a_ks=1), which saves repacking A for every column block.
__attribute__((target("avx2,fma"))) void micro_avx2(int64_t kc, const float* a, int64_t a_rs, int64_t a_ks,
                                                     const float* b, int64_t b_ks, float* c, int64_t ldc,
                                                     bool accumulate) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(),
         c11 = _mm256_setzero_ps(), c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(),
         c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps(), c40 = _mm256_setzero_ps(),
         c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  const float *a0 = a, *a1 = a + a_rs, *a2 = a + 2 * a_rs, *a3 = a + 3 * a_rs, *a4 = a + 4 * a_rs,
              *a5 = a + 5 * a_rs;
  for (int64_t k = 0; k < kc; ++k, b += b_ks) {
    const int64_t o = k * a_ks;
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
    __m256 av = _mm256_broadcast_ss(a0 + o);
    c00 = _mm256_fmadd_ps(av, b0, c00);
    c01 = _mm256_fmadd_ps(av, b1, c01);
    av = _mm256_broadcast_ss(a1 + o);
    c10 = _mm256_fmadd_ps(av, b0, c10);
    c11 = _mm256_fmadd_ps(av, b1, c11);
    av = _mm256_broadcast_ss(a2 + o);
    c20 = _mm256_fmadd_ps(av, b0, c20);
    c21 = _mm256_fmadd_ps(av, b1, c21);
    av = _mm256_broadcast_ss(a3 + o);
    c30 = _mm256_fmadd_ps(av, b0, c30);
    c31 = _mm256_fmadd_ps(av, b1, c31);
    av = _mm256_broadcast_ss(a4 + o);
    c40 = _mm256_fmadd_ps(av, b0, c40);
    c41 = _mm256_fmadd_ps(av, b1, c41);
    av = _mm256_broadcast_ss(a5 + o);
    c50 = _mm256_fmadd_ps(av, b0, c50);
    c51 = _mm256_fmadd_ps(av, b1, c51);
  }
  const __m256 rows[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  for (int64_t r = 0; r < MR; ++r) {
    float* cr = c + r * ldc;
    __m256 v0 = rows[r][0], v1 = rows[r][1];
    if (accumulate) {
      v0 = _mm256_add_ps(v0, _mm256_loadu_ps(cr));
      v1 = _mm256_add_ps(v1, _mm256_loadu_ps(cr + 8));
    }
    _mm256_storeu_ps(cr, v0);
    _mm256_storeu_ps(cr + 8, v1);
  }
}

// The same for fewer than MR rows (R = 1…5), A read in place: a segment of T = 128 rows ends in a strip
// of 2, which the 6-row kernel would compute 3x over (and needed A packed).
template <int R>
__attribute__((target("avx2,fma"))) void micro_rows_avx2(int64_t kc, const float* a, int64_t a_rs, int64_t a_ks,
                                                          const float* b, int64_t b_ks, float* c, int64_t ldc,
                                                          bool accumulate) {
  __m256 c0[R], c1[R];
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k, b += b_ks) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
    for (int r = 0; r < R; ++r) {
      const __m256 av = _mm256_broadcast_ss(a + r * a_rs + k * a_ks);
      c0[r] = _mm256_fmadd_ps(av, b0, c0[r]);
      c1[r] = _mm256_fmadd_ps(av, b1, c1[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    float* cr = c + r * ldc;
    __m256 v0 = c0[r], v1 = c1[r];
    if (accumulate) {
      v0 = _mm256_add_ps(v0, _mm256_loadu_ps(cr));
      v1 = _mm256_add_ps(v1, _mm256_loadu_ps(cr + 8));
    }
    _mm256_storeu_ps(cr, v0);
    _mm256_storeu_ps(cr + 8, v1);
  }
}

// C[rows < MR, NR] from A in place; false when this CPU has no AVX2 (the caller packs A instead).
bool micro_short_rows(int64_t rows, int64_t kc, const float* a, int64_t a_rs, int64_t a_ks, const float* b,
                      int64_t b_ks, float* c, int64_t ldc, bool accumulate) {
  if (!cpu_has_avx2_fma()) return false;
  switch (rows) {
    case 1: micro_rows_avx2<1>(kc, a, a_rs, a_ks, b, b_ks, c, ldc, accumulate); return true;
    case 2: micro_rows_avx2<2>(kc, a, a_rs, a_ks, b, b_ks, c, ldc, accumulate); return true;
    case 3: micro_rows_avx2<3>(kc, a, a_rs, a_ks, b, b_ks, c, ldc, accumulate); return true;
    case 4: micro_rows_avx2<4>(kc, a, a_rs, a_ks, b, b_ks, c, ldc, accumulate); return true;
    case 5: micro_rows_avx2<5>(kc, a, a_rs, a_ks, b, b_ks, c, ldc, accumulate); return true;
    default: return false;
  }
}

void micro_portable(int64_t kc, const float* a, int64_t a_rs, int64_t a_ks, const float* b, int64_t b_ks, float* c,
                    int64_t ldc, bool accumulate) {
  float acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k, b += b_ks)
    for (int64_t r = 0; r < MR; ++r)
      for (int64_t j = 0; j < NR; ++j) acc[r][j] += a[r * a_rs + k * a_ks] * b[j];
  for (int64_t r = 0; r < MR; ++r)
    for (int64_t j = 0; j < NR; ++j) c[r * ldc + j] = accumulate ? c[r * ldc + j] + acc[r][j] : acc[r][j];
}

// Full tiles go straight to C; edge tiles through a local tile so nothing past M or N is touched.
void micro_tile(int64_t kc, const float* a, int64_t a_rs, int64_t a_ks, const float* b, int64_t b_ks, float* c,
                int64_t ldc, int64_t rows, int64_t cols, bool accumulate) {
  const bool avx2 = cpu_has_avx2_fma();
  if (rows == MR && cols == NR) {
    avx2 ? micro_avx2(kc, a, a_rs, a_ks, b, b_ks, c, ldc, accumulate)
         : micro_portable(kc, a, a_rs, a_ks, b, b_ks, c, ldc, accumulate);
    return;
  }
  alignas(32) float tile[MR * NR];
  avx2 ? micro_avx2(kc, a, a_rs, a_ks, b, b_ks, tile, NR, false)
       : micro_portable(kc, a, a_rs, a_ks, b, b_ks, tile, NR, false);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j)
      c[r * ldc + j] = accumulate ? c[r * ldc + j] + tile[r * NR + j] : tile[r * NR + j];
}

float* align32(float* p) {
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(p) + 31) & ~uintptr_t(31));
}

}  // namespace

int64_t panel_depth_for(int64_t K, int64_t N, int64_t hot_terms) { return panel_depth(K, N, hot_terms); }

void pack_merged_panel(const MergedB& B, int64_t k0, int64_t kc, int64_t N, float* out) { pack_b(B, k0, kc, N, out); }

// The AVX-512 path: tiles of avx512_tile_rows() rows × 32 columns straight from row-major A; strided A
// (transposed operands) packed in 6-row strips as on the other paths.
static void gemm_on_panels_avx512(int64_t M, int64_t kc, const StridedA& A, const float* panel,
                                  const PanelOutput* outs, int count) {
  auto block = [&](const float* a, int64_t a_rs, int64_t a_ks, int64_t r0, int64_t rows) {
    const float* b = panel;
    for (int o = 0; o < count; ++o) {
      const PanelOutput& out = outs[o];
      panel_rows_avx512(rows, out.n, kc, a, a_rs, a_ks, b, out.c + r0 * out.ldc, out.ldc, out.accumulate);
      b += kc * ((out.n + NR - 1) / NR * NR);
    }
  };
  if (A.cs == 1) {
    const int64_t mr = avx512_tile_rows();
    for (int64_t r0 = 0; r0 < M; r0 += mr) {
      const int64_t rows = std::min(mr, M - r0);
      // The next block's rows come from memory (A is an activation, not cache resident): ask early.
      for (int64_t r = r0 + mr; r < std::min(M, r0 + 2 * mr); ++r)
        for (int64_t k = 0; k < kc; k += 16) __builtin_prefetch(A.p + r * A.rs + k);
      block(A.p + r0 * A.rs, A.rs, 1, r0, rows);
    }
    return;
  }
  Buffers& buf = thread_buffers();
  if (buf.a.size() < size_t(MC * kc + 8)) buf.a.resize(MC * kc + 8);
  float* ap = align32(buf.a.data());
  for (int64_t m0 = 0; m0 < M; m0 += MC) {
    const int64_t mc = std::min(MC, M - m0);
    pack_a(A, m0, mc, 0, kc, ap);
    for (int64_t r0 = 0; r0 < mc; r0 += MR) block(ap + r0 * kc, 1, MR, m0 + r0, std::min(MR, mc - r0));
  }
}

void gemm_on_panels(int64_t M, int64_t kc, const StridedA& A, const float* panel, const PanelOutput* outs,
                    int count) {
  if (use_avx512()) return gemm_on_panels_avx512(M, kc, A, panel, outs, count);
  // Runs every 16-column strip of every output against one row strip of A (at `a`, strides a_rs, a_ks).
  auto strip_row = [&](const float* a, int64_t a_rs, int64_t a_ks, int64_t r0, int64_t rows) {
    const float* b = panel;
    for (int o = 0; o < count; ++o) {
      const PanelOutput& out = outs[o];
      for (int64_t j0 = 0; j0 < out.n; j0 += NR, b += kc * NR)
        micro_tile(kc, a, a_rs, a_ks, b, NR, out.c + r0 * out.ldc + j0, out.ldc, rows, std::min(NR, out.n - j0),
                   out.accumulate);
    }
  };
  if (A.cs == 1) {  // row-major A: full strips straight from A, a short last strip via packing
    const int64_t full = M / MR * MR;
    for (int64_t r0 = 0; r0 < full; r0 += MR) {
      // The rows of the next strip come from memory (A is an activation, not cache resident): ask early.
      if (r0 + 2 * MR <= M)
        for (int64_t r = r0 + MR; r < r0 + 2 * MR; ++r)
          for (int64_t k = 0; k < kc; k += 16) __builtin_prefetch(A.p + r * A.rs + k);
      strip_row(A.p + r0 * A.rs, A.rs, 1, r0, MR);
    }
    if (full == M) return;
    const int64_t rows = M - full;
    if (cpu_has_avx2_fma()) {  // the short last strip straight from A; a short last column via a local tile
      const float* b = panel;
      for (int o = 0; o < count; ++o) {
        const PanelOutput& out = outs[o];
        for (int64_t j0 = 0; j0 < out.n; j0 += NR, b += kc * NR) {
          float* c = out.c + full * out.ldc + j0;
          const int64_t cols = std::min(NR, out.n - j0);
          if (cols == NR) {
            micro_short_rows(rows, kc, A.p + full * A.rs, A.rs, 1, b, NR, c, out.ldc, out.accumulate);
            continue;
          }
          alignas(32) float tile[MR * NR];
          micro_short_rows(rows, kc, A.p + full * A.rs, A.rs, 1, b, NR, tile, NR, false);
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t j = 0; j < cols; ++j)
              c[r * out.ldc + j] = out.accumulate ? c[r * out.ldc + j] + tile[r * NR + j] : tile[r * NR + j];
        }
      }
      return;
    }
    Buffers& buf = thread_buffers();
    if (buf.a.size() < size_t(MR * kc + 8)) buf.a.resize(MR * kc + 8);
    float* ap = align32(buf.a.data());
    pack_a(A, full, rows, 0, kc, ap);
    strip_row(ap, 1, MR, full, rows);
    return;
  }
  Buffers& buf = thread_buffers();
  if (buf.a.size() < size_t(MC * kc + 8)) buf.a.resize(MC * kc + 8);
  float* ap = align32(buf.a.data());
  for (int64_t m0 = 0; m0 < M; m0 += MC) {
    const int64_t mc = std::min(MC, M - m0);
    pack_a(A, m0, mc, 0, kc, ap);
    for (int64_t r0 = 0; r0 < mc; r0 += MR) strip_row(ap + r0 * kc, 1, MR, m0 + r0, std::min(MR, mc - r0));
  }
}

void gemm_on_panel(int64_t M, int64_t N, int64_t kc, const StridedA& A, const float* panel, float* C, int64_t ldc,
                   bool accumulate) {
  const PanelOutput out{C, ldc, N, accumulate};
  gemm_on_panels(M, kc, A, panel, &out, 1);
}

__attribute__((target("avx2,fma"))) static void merge_staged_avx2(const float* staged, int64_t terms,
                                                                   int64_t panel_floats, const float* coef,
                                                                   float* panel) {
  for (int64_t v = 0; v + 16 <= panel_floats; v += 16) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (int64_t i = 0; i < terms; ++i) {
      const __m256 c = _mm256_set1_ps(coef[i]);
      a0 = _mm256_fmadd_ps(c, _mm256_load_ps(staged + i * staged_stride(panel_floats) + v), a0);
      a1 = _mm256_fmadd_ps(c, _mm256_load_ps(staged + i * staged_stride(panel_floats) + v + 8), a1);
    }
    _mm256_store_ps(panel + v, a0);
    _mm256_store_ps(panel + v + 8, a1);
  }
}

void merge_staged_panels(const float* staged, int64_t terms, int64_t panel_floats, const float* coef, float* panel) {
  if (use_avx512()) return merge_staged_avx512(staged, terms, panel_floats, coef, panel);
  if (cpu_has_avx2_fma()) return merge_staged_avx2(staged, terms, panel_floats, coef, panel);  // whole NR strips
  for (int64_t v = 0; v < panel_floats; ++v) {
    float acc = 0.f;
    for (int64_t i = 0; i < terms; ++i) acc += coef[i] * staged[i * staged_stride(panel_floats) + v];
    panel[v] = acc;
  }
}

void merge_staged_panels_multi(const float* staged, int64_t terms, int64_t panel_floats, const float* coef,
                               int64_t coef_stride, int64_t count, float* panels, int64_t panel_stride) {
  if (use_avx512())
    return merge_staged_multi_avx512(staged, terms, panel_floats, coef, coef_stride, count, panels, panel_stride);
  for (int64_t j = 0; j < count; ++j)
    merge_staged_panels(staged, terms, panel_floats, coef + j * coef_stride, panels + j * panel_stride);
}

float* thread_panel_buffer(size_t floats) {
  Buffers& buf = thread_buffers();
  if (buf.b.size() < floats + 8) buf.b.resize(floats + 8);
  return align32(buf.b.data());
}

void pack_strips(const float* X, int64_t K, int64_t N, int64_t ld, int64_t width, float* out) {
  for (int64_t j0 = 0; j0 < N; j0 += width) {
    const int64_t w = std::min(width, N - j0);
    for (int64_t k = 0; k < K; ++k, out += width) {
      std::memcpy(out, X + k * ld + j0, sizeof(float) * w);
      for (int64_t q = w; q < width; ++q) out[q] = 0.f;
    }
  }
}

void strips_gemm(int64_t M, int64_t N, int64_t K, const float* a, const float* b, float* C, int64_t ldc) {
  if (use_avx512()) {  // a 32-column pair of B strips stays in L1 while the 6-row strips of A stream past
    for (int64_t j0 = 0; j0 < N; j0 += 32)
      for (int64_t r0 = 0; r0 < M; r0 += MR)
        panel_rows_avx512(std::min(MR, M - r0), std::min<int64_t>(32, N - j0), K, a + r0 * K, 1, MR, b + j0 * K,
                          C + r0 * ldc + j0, ldc, false);
    return;
  }
  for (int64_t j0 = 0; j0 < N; j0 += NR)
    for (int64_t r0 = 0; r0 < M; r0 += MR)
      micro_tile(K, a + r0 * K, 1, MR, b + j0 * K, NR, C + r0 * ldc + j0, ldc, std::min(MR, M - r0),
                 std::min(NR, N - j0), false);
}

void merged_gemm(int64_t M, int64_t N, int64_t K, const StridedA& A, const MergedB& B, float* C, int64_t ldc,
                 bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate)
      for (int64_t m = 0; m < M; ++m) std::memset(C + m * ldc, 0, sizeof(float) * N);
    return;
  }
  const int64_t n_pad = (N + NR - 1) / NR * NR;
  const int64_t kc_max = panel_depth(K, N, B.coef ? B.terms : 1);
  float* bp = thread_panel_buffer(size_t(kc_max * n_pad));
  for (int64_t k0 = 0; k0 < K; k0 += kc_max) {
    const int64_t kc = std::min(kc_max, K - k0);
    pack_b(B, k0, kc, N, bp);
    gemm_on_panel(M, N, kc, StridedA{A.p + k0 * A.cs, A.rs, A.cs}, bp, C, ldc, accumulate || k0 > 0);
  }
}

}  // namespace lory
