// Backward, per chunk of segments:
//   pass A (column blocks of f): dh = dy·W̄dᵀ, and a = x·W̄g, b = x·W̄u unless the forward saved them;
//     then h, da, db.
//   pass B (column blocks of d): dx = da·W̄gᵀ + db·W̄uᵀ.
//   pass C (tiles of each weight matrix): operands packed once per chunk into micro-kernel strips; the
//     tiles of G_s (xᵀ·da, xᵀ·db, hᵀ·dy, K = T) of every segment of the chunk are computed into a
//     contiguous buffer and fanned out to all experts at once:
//     dWᵢ += Σ_s e[s,i]·G_s, de[s,i] += ⟨G_s, Wᵢ⟩, so each dWᵢ tile is read and written once per chunk
//     (the expert weights are E× the merged ones and do not fit in cache: streaming them once per group
//     of segments made this pass memory-bound).
#include <vector>

#include "expert_scatter.h"
#include "lory/moe_cpu.h"
#include "merged_gemm.h"
#include "moe_tasks.h"
#include "segment_gemm.h"
#include "swiglu_pointwise.h"

namespace lory {
namespace {

// 48×64 floats per G_s tile: the tiles of a 32-segment chunk (384 KiB) stay in L2 while every expert reads them.
constexpr int64_t kTileRows = 48, kTileCols = 64;
static_assert(kTileRows % kStripRows == 0 && kTileCols % kStripCols == 0, "tiles start on strip boundaries");

// One weight-gradient matrix: G_s(m,n) = Σ_t A_s(m,t)·B_s(t,n), with expert weights/grads of shape [E,M,N].
// A_s is packed in 6-row strips (a + s*a_seg), B_s in 16-column strips (b + s*b_seg), both T deep.
struct WeightGradJob {
  int64_t M, N;
  const float* a;
  int64_t a_seg;
  const float* b;
  int64_t b_seg;
  const float* w;
  float* dw;
};

}  // namespace

// Floats per segment: h, da, db row-major, plus pass C's operands packed in micro-kernel strips
// (xᵀ and hᵀ in 6-row strips; dy, da, db in 16-column strips).
static int64_t backward_floats_per_segment(const MoeShape& s) {
  auto up = [](int64_t v, int64_t m) { return (v + m - 1) / m * m; };
  return s.T * (3 * s.f + up(s.d, kStripRows) + up(s.f, kStripRows) + up(s.d, kStripCols) + 2 * up(s.f, kStripCols));
}

size_t moe_backward_scratch_floats(const MoeShape& s, const MoeCpuOptions& opt) {
  const int64_t per_segment = backward_floats_per_segment(s);
  return size_t(segments_per_chunk(s, per_segment, opt.scratch_budget_bytes) * per_segment);
}

void moe_backward(const MoeShape& s, const float* x, const float* e, const float* w_gate, const float* w_up,
                  const float* w_down, const float* dy, const float* saved, float* dx, float* de, float* dw_gate,
                  float* dw_up, float* dw_down, float* scratch, const ParallelFor& parallel,
                  const MoeCpuOptions& opt) {
  const int64_t T = s.T, d = s.d, f = s.f, E = s.E;
  const int64_t chunk = segments_per_chunk(s, backward_floats_per_segment(s), opt.scratch_budget_bytes);
  auto up = [](int64_t v, int64_t m) { return (v + m - 1) / m * m; };
  // Per-segment sizes of the packed operands of pass C.
  const int64_t xp_seg = T * up(d, kStripRows), hp_seg = T * up(f, kStripRows);
  const int64_t dyp_seg = T * up(d, kStripCols), dp_seg = T * up(f, kStripCols);
  for (int64_t g0 = 0; g0 < s.G; g0 += chunk) {
    const int64_t n = std::min(chunk, s.G - g0);
    float* h = scratch;            // [n, T, f]
    float* da = h + n * T * f;     // ∂L/∂a
    float* db = da + n * T * f;    // ∂L/∂b
    float* xp = db + n * T * f;    // x_sᵀ in 6-row strips
    float* hp = xp + n * xp_seg;   // h_sᵀ in 6-row strips
    float* dyp = hp + n * hp_seg;  // dy_s in 16-column strips
    float* dap = dyp + n * dyp_seg;
    float* dbp = dap + n * dp_seg;

    const float* xg = x + g0 * T * d;
    const float* dyg = dy + g0 * T * d;
    const float* eg = e + g0 * E;
    // a and b: this chunk's rows of the saved activations, or recomputed into h and db (then (a, b, dh)
    // become (h, da, db) in place).
    const float* a = saved ? saved + g0 * T * f : h;
    const float* b = saved ? saved + (s.G + g0) * T * f : db;
    for_column_blocks_and_segments(parallel, f, n, [&](int64_t j0, int64_t nb, int64_t s0, int64_t s1) {
      // dh → da; dh(t,j) = Σ_c dy(t,c)·W̄d(j,c): B̄(k=c, n=j) read transposed from W_down[i, j, c].
      const SegmentGemm gemms[3] = {
          {dyg, T * d, d, MergedB{w_down + j0 * d, f * d, 1, d, eg, E}, E, da + j0, T * f, f, false},
          {xg, T * d, d, MergedB{w_gate + j0, d * f, f, 1, eg, E}, E, h + j0, T * f, f, false},
          {xg, T * d, d, MergedB{w_up + j0, d * f, f, 1, eg, E}, E, db + j0, T * f, f, false},
      };
      run_segment_gemms(gemms, saved ? 1 : 3, T, nb, d, s0, s1, [&](int64_t sg) {
        for (int64_t r = sg * T; r < (sg + 1) * T; ++r) {
          const int64_t o = r * f + j0;
          swiglu_backward(nb, a + o, b + o, da + o, h + o, da + o, db + o);
        }
      });
    });

    for_column_blocks_and_segments(parallel, d, n, [&](int64_t j0, int64_t nb, int64_t s0, int64_t s1) {
      // dx(t,c) = Σ_j da(t,j)·W̄g(c,j) + db(t,j)·W̄u(c,j): B̄ read transposed from W[i, c, j].
      float* dxg = dx + g0 * T * d + j0;
      const SegmentGemm gemms[2] = {
          {da, T * f, f, MergedB{w_gate + j0 * f, d * f, 1, f, eg, E}, E, dxg, T * d, d, false},
          {db, T * f, f, MergedB{w_up + j0 * f, d * f, 1, f, eg, E}, E, dxg, T * d, d, true},
      };
      run_segment_gemms(gemms, 2, T, nb, f, s0, s1);
    });

    // Pass C's operands, packed once per chunk: read in place they would be streamed with strides of
    // d or f floats (power-of-two multiples that thrash L1 sets), tile after tile.
    parallel(size_t(n * 5), [&](size_t task) {
      const int64_t si = int64_t(task) / 5, which = int64_t(task) % 5;
      const int64_t g = g0 + si;
      switch (which) {
        case 0: pack_strips(x + g * T * d, T, d, d, kStripRows, xp + si * xp_seg); break;
        case 1: pack_strips(h + si * T * f, T, f, f, kStripRows, hp + si * hp_seg); break;
        case 2: pack_strips(dy + g * T * d, T, d, d, kStripCols, dyp + si * dyp_seg); break;
        case 3: pack_strips(da + si * T * f, T, f, f, kStripCols, dap + si * dp_seg); break;
        default: pack_strips(db + si * T * f, T, f, f, kStripCols, dbp + si * dp_seg); break;
      }
    });
    const WeightGradJob jobs[3] = {
        {d, f, xp, xp_seg, dap, dp_seg, w_gate, dw_gate},  // G_gate = xᵀ·da
        {d, f, xp, xp_seg, dbp, dp_seg, w_up, dw_up},      // G_up = xᵀ·db
        {f, d, hp, hp_seg, dyp, dyp_seg, w_down, dw_down}, // G_down = hᵀ·dy
    };
    int64_t first_task[4] = {0, 0, 0, 0};
    for (int j = 0; j < 3; ++j)
      first_task[j + 1] = first_task[j] + ((jobs[j].M + kTileRows - 1) / kTileRows) *
                                              ((jobs[j].N + kTileCols - 1) / kTileCols);
    // Per task, reduced below. Kept by the calling thread across calls (no page faults per call); the
    // workers reach it through this pointer, not by name (a thread_local name is per thread).
    thread_local std::vector<double> de_partial_storage;
    de_partial_storage.assign(size_t(first_task[3] * n * E), 0.0);
    double* const de_partial = de_partial_storage.data();
    parallel(size_t(first_task[3]), [&](size_t task) {
      int j = 0;
      while (int64_t(task) >= first_task[j + 1]) ++j;
      const WeightGradJob& job = jobs[j];
      const int64_t local = int64_t(task) - first_task[j];
      const int64_t col_tiles = (job.N + kTileCols - 1) / kTileCols;
      const int64_t r0 = (local / col_tiles) * kTileRows, c0 = (local % col_tiles) * kTileCols;
      const int64_t rows = std::min(kTileRows, job.M - r0), cols = std::min(kTileCols, job.N - c0);
      thread_local std::vector<float> tiles;  // G_s tiles of the chunk's segments, row-interleaved
      tiles.resize(size_t(n * rows * cols));
      for (int64_t si = 0; si < n; ++si)
        strips_gemm(rows, cols, T, job.a + si * job.a_seg + r0 * T, job.b + si * job.b_seg + c0 * T,
                    tiles.data() + si * cols, n * cols);
      // The very first chunk overwrites the (uninitialised) outputs.
      const int64_t at = r0 * job.N + c0;
      fan_out_tile(rows, cols, tiles.data(), n, e + g0 * E, E, job.w + at, job.dw + at, job.M * job.N, job.N,
                   g0 == 0, de_partial + size_t(task) * n * E);
    });
    for (int64_t si = 0; si < n; ++si)
      for (int64_t i = 0; i < E; ++i) {
        double sum = 0;
        for (int64_t t = 0; t < first_task[3]; ++t) sum += de_partial[size_t(t * n * E + si * E + i)];
        de[(g0 + si) * E + i] = float(sum);
      }
  }
}

}  // namespace lory
