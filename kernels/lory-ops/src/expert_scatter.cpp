#include "expert_scatter.h"

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "gemm_path.h"

namespace lory {
namespace {

// Segments per pass of the AVX2 and portable fan-out (its accumulators live in registers).
constexpr int64_t kMaxFanOutSegments = 8;

bool cpu_has_avx2_fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

// G_s(r, j) = tiles[s·seg_stride + r·row_stride + j].
__attribute__((target("avx2,fma"))) void fan_out_avx2(int64_t rows, int64_t cols, const float* tiles,
                                                       int64_t seg_stride, int64_t row_stride, int64_t segments,
                                                       const float* coef, const float* w, float* dw, int64_t ldw,
                                                       bool first, double* dots) {
  const int64_t tile = seg_stride;
  __m256 c[kMaxFanOutSegments];
  for (int64_t s = 0; s < segments; ++s) c[s] = _mm256_set1_ps(coef[s]);
  for (int64_t r = 0; r < rows; ++r) {
    __m256 dot[kMaxFanOutSegments];  // one row per segment in float (≤ a few hundred terms), rows in double
    for (int64_t s = 0; s < segments; ++s) dot[s] = _mm256_setzero_ps();
    const float* wr = w + r * ldw;
    float* dr = dw + r * ldw;
    const float* gr = tiles + r * row_stride;
    int64_t j = 0;
    for (; j + 8 <= cols; j += 8) {
      const __m256 wv = _mm256_loadu_ps(wr + j);
      __m256 acc = first ? _mm256_setzero_ps() : _mm256_loadu_ps(dr + j);
      for (int64_t s = 0; s < segments; ++s) {
        const __m256 g = _mm256_loadu_ps(gr + s * tile + j);
        acc = _mm256_fmadd_ps(c[s], g, acc);
        dot[s] = _mm256_fmadd_ps(g, wv, dot[s]);
      }
      _mm256_storeu_ps(dr + j, acc);
    }
    for (int64_t s = 0; s < segments; ++s) {
      alignas(32) float lanes[8];
      _mm256_store_ps(lanes, dot[s]);
      double row = 0;
      for (float v : lanes) row += v;
      for (int64_t jj = j; jj < cols; ++jj) row += double(gr[s * tile + jj]) * wr[jj];
      dots[s] += row;
    }
    for (int64_t jj = j; jj < cols; ++jj) {
      float acc = first ? 0.f : dr[jj];
      for (int64_t s = 0; s < segments; ++s) acc += coef[s] * gr[s * tile + jj];
      dr[jj] = acc;
    }
  }
}

#define LORY_AVX512 __attribute__((target("avx512f")))

LORY_AVX512 inline __mmask16 column_mask(int64_t cols, int64_t v) {
  const int64_t left = cols - v * 16;
  return left >= 16 ? __mmask16(0xFFFF) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1);
}

// dWᵢ tiles: per row, blocks of 4 experts × 4 column vectors (16 accumulators); each segment adds one
// row of G_s (4 loads) times 4 coefficients (broadcast) = 16 FMAs. Missing experts get coefficient 0 and
// missing columns or experts mask 0, so the hot loop has no branches and its accumulators stay in
// registers (with branches on the block's fill, GCC kept them on the stack).
LORY_AVX512 void fan_out_weights_avx512(int64_t rows, int64_t cols, const float* tiles, int64_t segments,
                                        const float* coef, int64_t E, float* dw, int64_t expert_stride, int64_t ldw,
                                        bool first) {
  const int64_t vecs = (cols + 15) / 16, blocks = (E + 3) / 4;
  thread_local std::vector<float> padded_storage;  // [block][segment][4] coefficients, 0 past E
  padded_storage.assign(size_t(blocks * segments * 4), 0.f);
  // Through a plain pointer: each use of a thread_local name in a shared library is a call, which made
  // GCC spill every accumulator around it.
  float* const padded = padded_storage.data();
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t s = 0; s < segments; ++s)
      for (int64_t i = 0; i < 4 && b * 4 + i < E; ++i) padded[(b * segments + s) * 4 + i] = coef[s * E + b * 4 + i];
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t v0 = 0; v0 < vecs; v0 += 4) {
      __mmask16 m[4];
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v) m[v] = column_mask(cols, v0 + v);
      for (int64_t b = 0; b < blocks; ++b) {
        const int64_t ni = std::min<int64_t>(4, E - b * 4);
        float* out[4];
        __mmask16 keep[4][4];  // which accumulator lanes exist (and, unless first, start from dW)
#pragma GCC unroll 4
        for (int i = 0; i < 4; ++i) {
          out[i] = dw + (b * 4 + std::min<int64_t>(i, ni - 1)) * expert_stride + r * ldw + v0 * 16;
#pragma GCC unroll 4
          for (int v = 0; v < 4; ++v) keep[i][v] = i < ni ? m[v] : __mmask16(0);
        }
        __m512 acc[4][4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; ++i)
#pragma GCC unroll 4
          for (int v = 0; v < 4; ++v) acc[i][v] = _mm512_setzero_ps();
        // Not even a zero-mask load on a first write: it still translates the address (a TLB miss per
        // expert row, the dW tiles are megabytes apart), which cost more than the FMAs.
        if (!first)
#pragma GCC unroll 4
          for (int i = 0; i < 4; ++i)
#pragma GCC unroll 4
            for (int v = 0; v < 4; ++v) acc[i][v] = _mm512_maskz_loadu_ps(keep[i][v], out[i] + v * 16);
        const float* g = tiles + r * segments * cols + v0 * 16;
        const float* c = padded + b * segments * 4;
        for (int64_t s = 0; s < segments; ++s, g += cols, c += 4) {
          __m512 gv[4];
#pragma GCC unroll 4
          for (int v = 0; v < 4; ++v) gv[v] = _mm512_maskz_loadu_ps(m[v], g + v * 16);
#pragma GCC unroll 4
          for (int i = 0; i < 4; ++i) {
            const __m512 cv = _mm512_set1_ps(c[i]);
#pragma GCC unroll 4
            for (int v = 0; v < 4; ++v) acc[i][v] = _mm512_fmadd_ps(cv, gv[v], acc[i][v]);
          }
        }
#pragma GCC unroll 4
        for (int i = 0; i < 4; ++i)
#pragma GCC unroll 4
          for (int v = 0; v < 4; ++v) {
            float* at = out[i] + v * 16;
            // Whole aligned lines of a first write bypass the cache: dW is read again only by the
            // optimizer, and an ordinary store would first read the line from memory.
            if (first && keep[i][v] == 0xFFFF && (reinterpret_cast<uintptr_t>(at) & 63) == 0)
              _mm512_stream_ps(at, acc[i][v]);
            else
              _mm512_mask_storeu_ps(at, keep[i][v], acc[i][v]);
          }
      }
    }
  if (first) _mm_sfence();  // streamed stores are weakly ordered: complete them before the tile is done
}

// Operands first … first+3 of a block of 4 (`count` of them real): their bases `stride` apart, and a
// full load mask for the real ones, an empty one for the rest (which point at the last real one).
LORY_AVX512 inline void block_of_four(const float* base, int64_t stride, int64_t first, int64_t count,
                                      const float* ptr[4], __mmask16 on[4]) {
  for (int j = 0; j < 4; ++j) {
    ptr[j] = base + (first + std::min<int64_t>(j, count - 1)) * stride;
    on[j] = j < count ? __mmask16(0xFFFF) : __mmask16(0);
  }
}

// ⟨G_s, Wᵢ⟩: per block of 4 experts and 8 rows, every block of 4 segments accumulates 4×4 products in
// registers (8 loads per 16 FMAs) while the 8 rows of Wᵢ stay in L1 for all the segment blocks (with the
// segment blocks outside, each re-read Wᵢ's rows: a TLB miss per row, the rows being f floats apart).
// Partial sums are kept per lane in float across the tile (≤ rows·⌈cols/16⌉ terms per lane), then
// summed in double. Missing segments and experts load through a zero mask (no branches in the hot loop).
LORY_AVX512 void fan_out_dots_avx512(int64_t rows, int64_t cols, const float* tiles, int64_t segments, int64_t E,
                                     const float* w, int64_t expert_stride, int64_t ldw, double* dots) {
  constexpr int64_t kRowBlock = 8;
  const int64_t vecs = (cols + 15) / 16, segment_blocks = (segments + 3) / 4;
  thread_local std::vector<float> lane_storage;  // [segment][4 experts][16 lanes]
  lane_storage.resize(size_t(segment_blocks * 4 * 4 * 16));
  float* const lanes = lane_storage.data();  // through a plain pointer (see fan_out_weights_avx512)
  for (int64_t i0 = 0; i0 < E; i0 += 4) {
    const int64_t ni = std::min<int64_t>(4, E - i0);
    const float* wp[4];
    __mmask16 w_on[4];
    block_of_four(w, expert_stride, i0, ni, wp, w_on);
    std::fill(lanes, lanes + segment_blocks * 4 * 4 * 16, 0.f);
    for (int64_t r0 = 0; r0 < rows; r0 += kRowBlock) {
      const int64_t r1 = std::min(rows, r0 + kRowBlock);
      for (int64_t s0 = 0; s0 < segments; s0 += 4) {
        const int64_t ns = std::min<int64_t>(4, segments - s0);
        const float* gp[4];
        __mmask16 g_on[4];
        block_of_four(tiles, cols, s0, ns, gp, g_on);
        __m512 acc[4][4];
#pragma GCC unroll 4
        for (int k = 0; k < 4; ++k)
#pragma GCC unroll 4
          for (int i = 0; i < 4; ++i) acc[k][i] = _mm512_setzero_ps();
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t v = 0; v < vecs; ++v) {
            const __mmask16 m = column_mask(cols, v);
            const int64_t g_at = r * segments * cols + v * 16, w_at = r * ldw + v * 16;
            __m512 gv[4], wv[4];
#pragma GCC unroll 4
            for (int k = 0; k < 4; ++k) gv[k] = _mm512_maskz_loadu_ps(g_on[k] & m, gp[k] + g_at);
#pragma GCC unroll 4
            for (int i = 0; i < 4; ++i) wv[i] = _mm512_maskz_loadu_ps(w_on[i] & m, wp[i] + w_at);
#pragma GCC unroll 4
            for (int k = 0; k < 4; ++k)
#pragma GCC unroll 4
              for (int i = 0; i < 4; ++i) acc[k][i] = _mm512_fmadd_ps(gv[k], wv[i], acc[k][i]);
          }
        float* lane = lanes + (s0 / 4) * 4 * 4 * 16;
#pragma GCC unroll 4
        for (int k = 0; k < 4; ++k)
#pragma GCC unroll 4
          for (int i = 0; i < 4; ++i) {
            float* at = lane + (k * 4 + i) * 16;
            _mm512_storeu_ps(at, _mm512_add_ps(_mm512_loadu_ps(at), acc[k][i]));
          }
      }
    }
    for (int64_t s = 0; s < segments; ++s)
      for (int64_t i = 0; i < ni; ++i) {
        const float* at = lanes + ((s / 4) * 16 + (s % 4) * 4 + i) * 16;
        double sum = 0;
        for (int q = 0; q < 16; ++q) sum += at[q];
        dots[s * E + i0 + i] += sum;
      }
  }
}

// One expert, up to kMaxFanOutSegments segments: the AVX2 and portable paths.
void fan_out_to_expert(int64_t rows, int64_t cols, const float* tiles, int64_t seg_stride, int64_t row_stride,
                       int64_t segments, const float* coef, const float* w, float* dw, int64_t ldw, bool first,
                       double* dots) {
  if (gemm_path() != GemmPath::kPortable && cpu_has_avx2_fma())
    return fan_out_avx2(rows, cols, tiles, seg_stride, row_stride, segments, coef, w, dw, ldw, first, dots);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) {
      float acc = first ? 0.f : dw[r * ldw + j];
      for (int64_t s = 0; s < segments; ++s) {
        const float g = tiles[s * seg_stride + r * row_stride + j];
        acc += coef[s] * g;
        dots[s] += double(g) * w[r * ldw + j];
      }
      dw[r * ldw + j] = acc;
    }
}

}  // namespace

void fan_out_tile(int64_t rows, int64_t cols, const float* tiles, int64_t segments, const float* coef, int64_t E,
                  const float* w, float* dw, int64_t expert_stride, int64_t ldw, bool first, double* dots) {
  if (gemm_path() == GemmPath::kAvx512) {
    fan_out_weights_avx512(rows, cols, tiles, segments, coef, E, dw, expert_stride, ldw, first);
    fan_out_dots_avx512(rows, cols, tiles, segments, E, w, expert_stride, ldw, dots);
    return;
  }
  // One expert at a time, up to kMaxFanOutSegments segments per pass over its tile.
  for (int64_t s0 = 0; s0 < segments; s0 += kMaxFanOutSegments) {
    const int64_t ns = std::min(kMaxFanOutSegments, segments - s0);
    for (int64_t i = 0; i < E; ++i) {
      float c[kMaxFanOutSegments];
      double d[kMaxFanOutSegments] = {};
      for (int64_t k = 0; k < ns; ++k) c[k] = coef[(s0 + k) * E + i];
      fan_out_to_expert(rows, cols, tiles + s0 * cols, cols, segments * cols, ns, c, w + i * expert_stride, dw + i * expert_stride, ldw,
                        first && s0 == 0, d);
      for (int64_t k = 0; k < ns; ++k) dots[(s0 + k) * E + i] += d[k];
    }
  }
}

void fan_out_tile_reference(int64_t rows, int64_t cols, const float* tiles, int64_t segments, const float* coef,
                            int64_t E, const float* w, float* dw, int64_t expert_stride, int64_t ldw, bool first,
                            double* dots) {
  for (int64_t i = 0; i < E; ++i)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < cols; ++j) {
        const int64_t at = i * expert_stride + r * ldw + j;
        double acc = first ? 0.0 : dw[at];
        for (int64_t s = 0; s < segments; ++s) {
          const double g = tiles[(r * segments + s) * cols + j];
          acc += double(coef[s * E + i]) * g;
          dots[s * E + i] += g * w[at];
        }
        dw[at] = float(acc);
      }
}

}  // namespace lory
