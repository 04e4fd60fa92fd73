// Lory layer benchmark (CPU, float32): fused custom-op kernel vs. the "standard" path that materialises
// merged weights for all G segments, vs. a dense SwiGLU layer of the same d, f. Forward and backward,
// median of repeats, peak scratch bytes, ratios from the same run.
//   moe_layer_bench [--threads N] [--repeats R] [--G 32 --T 128 --d 512 --f 1408 --E 8] [--fused-only]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "lory/moe_cpu.h"
#include "gemm_path.h"
#include "merged_gemm.h"
#include "moe_tasks.h"
#include "segment_gemm.h"
#include "swiglu_pointwise.h"
#ifdef LORY_BENCH_OPENBLAS
#include <cblas.h>
extern "C" void openblas_set_num_threads(int);
#endif

using namespace lory;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  MoeShape s{32, 128, 512, 1408, 8};
  int threads = 2, repeats = 7;
  bool fused_only = false;
  bool gemms = false;
};

double process_cpu_ms() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

// Median over repeats of the CPU time the process spent, divided by the thread count: on a shared,
// busy machine wall time mostly measures the other tenants; CPU time measures the work (run with
// OMP_WAIT_POLICY=PASSIVE so idle OpenBLAS threads do not spin). Set LORY_BENCH_WALL=1 for wall time.
int g_threads = 1;
template <typename F>
double median_ms(int repeats, F&& f) {
  static const bool wall = std::getenv("LORY_BENCH_WALL") != nullptr;
  f();  // warm-up: page faults, thread start, caches
  std::vector<double> t;
  for (int r = 0; r < repeats; ++r) {
    const auto a = Clock::now();
    const double c = process_cpu_ms();
    f();
    t.push_back(wall ? std::chrono::duration<double, std::milli>(Clock::now() - a).count()
                     : (process_cpu_ms() - c) / g_threads);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

std::vector<float> random_vector(size_t n, float scale, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(n);
  for (auto& a : v) a = u(rng);
  return v;
}

// Row-major C[M,N] (+)= op(A)·op(B) through one GEMM engine, all threads.
struct Gemm {
  virtual ~Gemm() = default;
  virtual const char* name() const = 0;
  virtual void run(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                   int64_t ldb, float* C, int64_t ldc, bool accumulate) = 0;
};

struct OwnGemm : Gemm {
  ParallelFor par;
  explicit OwnGemm(ParallelFor p) : par(std::move(p)) {}
  const char* name() const override { return "own micro-kernel"; }
  void run(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
           int64_t ldb, float* C, int64_t ldc, bool accumulate) override {
    const StridedA a = ta ? StridedA{A, 1, lda} : StridedA{A, lda, 1};
    const int64_t nb = kGemmColumnBlock, blocks = (N + nb - 1) / nb;
    par(size_t(blocks), [&](size_t b) {
      const int64_t j0 = int64_t(b) * nb;
      const MergedB bm = tb ? MergedB{B + j0 * ldb, 0, 1, ldb, nullptr, 1} : MergedB{B + j0, 0, ldb, 1, nullptr, 1};
      merged_gemm(M, std::min(nb, N - j0), K, a, bm, C + j0, ldc, accumulate);
    });
  }
};

#ifdef LORY_BENCH_OPENBLAS
struct BlasGemm : Gemm {
  const char* name() const override { return "OpenBLAS"; }
  void run(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
           int64_t ldb, float* C, int64_t ldc, bool accumulate) override {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, 1.f, A, lda,
                B, ldb, accumulate ? 1.f : 0.f, C, ldc);
  }
};
#endif

struct Weights {
  std::vector<float> x, e, wg, wu, wd, dy;
};

// ---- dense SwiGLU over all G·T tokens (one expert), backward recomputes a, b like the fused op ----
struct Dense {
  const MoeShape& s;
  Gemm& gemm;
  std::vector<float> a, b, h, dh, da, db;
  size_t bytes() const { return 3 * a.size() * sizeof(float); }  // a, b, h live together
  Dense(const MoeShape& s_, Gemm& g) : s(s_), gemm(g) {
    const size_t n = size_t(s.G * s.T * s.f);
    a.resize(n), b.resize(n), h.resize(n), dh.resize(n), da.resize(n), db.resize(n);
  }
  void forward(const Weights& w, float* y) {
    const int64_t M = s.G * s.T;
    gemm.run(false, false, M, s.f, s.d, w.x.data(), s.d, w.wg.data(), s.f, a.data(), s.f, false);
    gemm.run(false, false, M, s.f, s.d, w.x.data(), s.d, w.wu.data(), s.f, b.data(), s.f, false);
    swiglu_forward(M * s.f, a.data(), b.data(), h.data());
    gemm.run(false, false, M, s.d, s.f, h.data(), s.f, w.wd.data(), s.d, y, s.d, false);
  }
  void backward(const Weights& w, float* dx, float* dwg, float* dwu, float* dwd) {
    const int64_t M = s.G * s.T;
    gemm.run(false, false, M, s.f, s.d, w.x.data(), s.d, w.wg.data(), s.f, a.data(), s.f, false);
    gemm.run(false, false, M, s.f, s.d, w.x.data(), s.d, w.wu.data(), s.f, b.data(), s.f, false);
    gemm.run(false, true, M, s.f, s.d, w.dy.data(), s.d, w.wd.data(), s.d, dh.data(), s.f, false);
    swiglu_backward(M * s.f, a.data(), b.data(), dh.data(), h.data(), da.data(), db.data());
    gemm.run(false, true, M, s.d, s.f, da.data(), s.f, w.wg.data(), s.f, dx, s.d, false);
    gemm.run(false, true, M, s.d, s.f, db.data(), s.f, w.wu.data(), s.f, dx, s.d, true);
    gemm.run(true, false, s.d, s.f, M, w.x.data(), s.d, da.data(), s.f, dwg, s.f, false);
    gemm.run(true, false, s.d, s.f, M, w.x.data(), s.d, db.data(), s.f, dwu, s.f, false);
    gemm.run(true, false, s.f, s.d, M, h.data(), s.f, w.dy.data(), s.d, dwd, s.d, false);
  }
};

// ---- standard path: what the Einsum + batched MatMul graph does; merged weights for all G at once ----
struct Standard {
  const MoeShape& s;
  Gemm& gemm;
  std::vector<float> mg, mu, md, a, b, h, dh, da, db;  // mg/mu/md: [G,d,f] merged (later reused for G_s)
  Standard(const MoeShape& s_, Gemm& g) : s(s_), gemm(g) {
    const size_t w = size_t(s.G * s.d * s.f), act = size_t(s.G * s.T * s.f);
    mg.resize(w), mu.resize(w), md.resize(w), a.resize(act), b.resize(act), h.resize(act), dh.resize(act),
        da.resize(act), db.resize(act);
  }
  size_t forward_bytes() const { return (3 * mg.size() + 3 * a.size()) * sizeof(float); }
  // merged weights + their gradients + saved a, b, h + dh, da, db
  size_t backward_bytes() const { return (6 * mg.size() + 6 * a.size()) * sizeof(float); }
  void merge(const Weights& w) {  // W̄[G, d·f] = e[G,E]·W[E, d·f]
    const int64_t n = s.d * s.f;
    gemm.run(false, false, s.G, n, s.E, w.e.data(), s.E, w.wg.data(), n, mg.data(), n, false);
    gemm.run(false, false, s.G, n, s.E, w.e.data(), s.E, w.wu.data(), n, mu.data(), n, false);
    gemm.run(false, false, s.G, n, s.E, w.e.data(), s.E, w.wd.data(), n, md.data(), n, false);
  }
  void forward(const Weights& w, float* y) {
    merge(w);
    const int64_t T = s.T, d = s.d, f = s.f;
    for (int64_t g = 0; g < s.G; ++g) {
      gemm.run(false, false, T, f, d, w.x.data() + g * T * d, d, mg.data() + g * d * f, f, a.data() + g * T * f, f, false);
      gemm.run(false, false, T, f, d, w.x.data() + g * T * d, d, mu.data() + g * d * f, f, b.data() + g * T * f, f, false);
    }
    swiglu_forward(s.G * T * f, a.data(), b.data(), h.data());
    for (int64_t g = 0; g < s.G; ++g)
      gemm.run(false, false, T, d, f, h.data() + g * T * f, f, md.data() + g * f * d, d, y + g * T * d, d, false);
  }
  // Uses a, b from forward (saved activations); G_s overwrite the merged weights once dx is done.
  void backward(const Weights& w, float* dx, float* de, float* dwg, float* dwu, float* dwd) {
    const int64_t T = s.T, d = s.d, f = s.f, n = d * f;
    merge(w);
    for (int64_t g = 0; g < s.G; ++g)
      gemm.run(false, true, T, f, d, w.dy.data() + g * T * d, d, md.data() + g * f * d, d, dh.data() + g * T * f, f, false);
    swiglu_backward(s.G * T * f, a.data(), b.data(), dh.data(), h.data(), da.data(), db.data());
    for (int64_t g = 0; g < s.G; ++g) {
      gemm.run(false, true, T, d, f, da.data() + g * T * f, f, mg.data() + g * d * f, f, dx + g * T * d, d, false);
      gemm.run(false, true, T, d, f, db.data() + g * T * f, f, mu.data() + g * d * f, f, dx + g * T * d, d, true);
    }
    for (int64_t g = 0; g < s.G; ++g) {
      gemm.run(true, false, d, f, T, w.x.data() + g * T * d, d, da.data() + g * T * f, f, mg.data() + g * n, f, false);
      gemm.run(true, false, d, f, T, w.x.data() + g * T * d, d, db.data() + g * T * f, f, mu.data() + g * n, f, false);
      gemm.run(true, false, f, d, T, h.data() + g * T * f, f, w.dy.data() + g * T * d, d, md.data() + g * n, d, false);
    }
    // dWᵢ = Σ_s e[s,i]·G_s  and  de[s,i] = Σ ⟨G_s, Wᵢ⟩
    gemm.run(true, false, s.E, n, s.G, w.e.data(), s.E, mg.data(), n, dwg, n, false);
    gemm.run(true, false, s.E, n, s.G, w.e.data(), s.E, mu.data(), n, dwu, n, false);
    gemm.run(true, false, s.E, n, s.G, w.e.data(), s.E, md.data(), n, dwd, n, false);
    gemm.run(false, true, s.G, s.E, n, mg.data(), n, w.wg.data(), n, de, s.E, false);
    gemm.run(false, true, s.G, s.E, n, mu.data(), n, w.wu.data(), n, de, s.E, true);
    gemm.run(false, true, s.G, s.E, n, md.data(), n, w.wd.data(), n, de, s.E, true);
  }
};

// ---- the same layer on a GEMM library: merge Gc segments at a time into scratch (bounded: Gc·3·d·f
// floats), then per-segment GEMMs; backward recomputes a, b like the fused op. The alternative to
// merging inside our own GEMM packing.
struct Chunked {
  const MoeShape& s;
  Gemm& gemm;
  int64_t gc;
  std::vector<float> mg, mu, md, a, b, h, dh, da, db;
  Chunked(const MoeShape& s_, Gemm& g, int64_t chunk) : s(s_), gemm(g), gc(std::min(chunk, s_.G)) {
    const size_t w = size_t(gc * s.d * s.f), act = size_t(gc * s.T * s.f);
    mg.resize(w), mu.resize(w), md.resize(w), a.resize(act), b.resize(act), h.resize(act), dh.resize(act),
        da.resize(act), db.resize(act);
  }
  size_t forward_bytes() const { return (3 * mg.size() + 3 * a.size()) * sizeof(float); }
  size_t backward_bytes() const { return (3 * mg.size() + 6 * a.size()) * sizeof(float); }
  void merge(const Weights& w, int64_t g0, int64_t n) {
    const int64_t k = s.d * s.f;
    gemm.run(false, false, n, k, s.E, w.e.data() + g0 * s.E, s.E, w.wg.data(), k, mg.data(), k, false);
    gemm.run(false, false, n, k, s.E, w.e.data() + g0 * s.E, s.E, w.wu.data(), k, mu.data(), k, false);
    gemm.run(false, false, n, k, s.E, w.e.data() + g0 * s.E, s.E, w.wd.data(), k, md.data(), k, false);
  }
  void gate_up(const Weights& w, int64_t g0, int64_t n) {
    const int64_t T = s.T, d = s.d, f = s.f;
    for (int64_t g = 0; g < n; ++g) {
      gemm.run(false, false, T, f, d, w.x.data() + (g0 + g) * T * d, d, mg.data() + g * d * f, f, a.data() + g * T * f, f, false);
      gemm.run(false, false, T, f, d, w.x.data() + (g0 + g) * T * d, d, mu.data() + g * d * f, f, b.data() + g * T * f, f, false);
    }
  }
  void forward(const Weights& w, float* y) {
    const int64_t T = s.T, d = s.d, f = s.f;
    for (int64_t g0 = 0; g0 < s.G; g0 += gc) {
      const int64_t n = std::min(gc, s.G - g0);
      merge(w, g0, n);
      gate_up(w, g0, n);
      swiglu_forward(n * T * f, a.data(), b.data(), h.data());
      for (int64_t g = 0; g < n; ++g)
        gemm.run(false, false, T, d, f, h.data() + g * T * f, f, md.data() + g * f * d, d, y + (g0 + g) * T * d, d, false);
    }
  }
  void backward(const Weights& w, float* dx, float* de, float* dwg, float* dwu, float* dwd) {
    const int64_t T = s.T, d = s.d, f = s.f, k = d * f;
    for (int64_t g0 = 0; g0 < s.G; g0 += gc) {
      const int64_t n = std::min(gc, s.G - g0);
      merge(w, g0, n);
      gate_up(w, g0, n);
      for (int64_t g = 0; g < n; ++g)
        gemm.run(false, true, T, f, d, w.dy.data() + (g0 + g) * T * d, d, md.data() + g * f * d, d, dh.data() + g * T * f, f, false);
      swiglu_backward(n * T * f, a.data(), b.data(), dh.data(), h.data(), da.data(), db.data());
      for (int64_t g = 0; g < n; ++g) {
        float* dxg = dx + (g0 + g) * T * d;
        gemm.run(false, true, T, d, f, da.data() + g * T * f, f, mg.data() + g * d * f, f, dxg, d, false);
        gemm.run(false, true, T, d, f, db.data() + g * T * f, f, mu.data() + g * d * f, f, dxg, d, true);
        const float* xg = w.x.data() + (g0 + g) * T * d;  // G_s overwrite this chunk's merged weights
        gemm.run(true, false, d, f, T, xg, d, da.data() + g * T * f, f, mg.data() + g * k, f, false);
        gemm.run(true, false, d, f, T, xg, d, db.data() + g * T * f, f, mu.data() + g * k, f, false);
        gemm.run(true, false, f, d, T, h.data() + g * T * f, f, w.dy.data() + (g0 + g) * T * d, d, md.data() + g * k, d, false);
      }
      const float* eg = w.e.data() + g0 * s.E;
      gemm.run(true, false, s.E, k, n, eg, s.E, mg.data(), k, dwg, k, g0 > 0);
      gemm.run(true, false, s.E, k, n, eg, s.E, mu.data(), k, dwu, k, g0 > 0);
      gemm.run(true, false, s.E, k, n, eg, s.E, md.data(), k, dwd, k, g0 > 0);
      float* deg = de + g0 * s.E;
      gemm.run(false, true, n, s.E, k, mg.data(), k, w.wg.data(), k, deg, s.E, false);
      gemm.run(false, true, n, s.E, k, mu.data(), k, w.wu.data(), k, deg, s.E, true);
      gemm.run(false, true, n, s.E, k, md.data(), k, w.wd.data(), k, deg, s.E, true);
    }
  }
};

double max_rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    err = std::max(err, double(std::abs(a[i] - b[i])));
    scale = std::max(scale, double(std::abs(b[i])));
  }
  return err / std::max(scale, 1e-30);
}

// The fused op's GEMMs one at a time, parallelised as the op does (column blocks × segment groups),
// plus one dense GEMM of the same total shape on the same micro-kernels. One JSON line each:
// {"gemm", "batch", "M", "N", "K", "ms"} — batch·2·M·N·K FLOPs (the merge is not counted).
int time_gemms(const MoeShape& s, const Weights& w, const ParallelFor& par, int repeats) {
  const int64_t T = s.T, d = s.d, f = s.f, E = s.E, G = s.G;
  std::vector<float> a(G * T * f), b(G * T * f), out(G * T * std::max(d, f));
  const std::vector<float> h = random_vector(G * T * f, 1.f, 7);
  std::printf("# GEMM path %s\n", gemm_path_name(gemm_path()));
  auto emit = [&](const char* name, int64_t batch, int64_t M, int64_t N, int64_t K, double ms) {
    std::printf("{\"gemm\":\"%s\",\"batch\":%lld,\"M\":%lld,\"N\":%lld,\"K\":%lld,\"ms\":%.3f}\n", name, (long long)batch,
                (long long)M, (long long)N, (long long)K, ms);
  };
  const float* x = w.x.data();
  const float* e = w.e.data();
  emit("x·W̄gate, x·W̄up (merged, shared pass over x)", 2 * G, T, f, d, median_ms(repeats, [&] {
         for_column_blocks_and_segments(par, f, G, [&](int64_t j0, int64_t nb, int64_t s0, int64_t s1) {
           const SegmentGemm g2[2] = {
               {x, T * d, d, MergedB{w.wg.data() + j0, d * f, f, 1, e, E}, E, a.data() + j0, T * f, f, false},
               {x, T * d, d, MergedB{w.wu.data() + j0, d * f, f, 1, e, E}, E, b.data() + j0, T * f, f, false}};
           run_segment_gemms(g2, 2, T, nb, d, s0, s1);
         });
       }));
  emit("h·W̄down (merged)", G, T, d, f, median_ms(repeats, [&] {
         for_column_blocks_and_segments(par, d, G, [&](int64_t j0, int64_t nb, int64_t s0, int64_t s1) {
           const SegmentGemm g1 = {h.data(), T * f, f, MergedB{w.wd.data() + j0, f * d, d, 1, e, E}, E,
                                   out.data() + j0, T * d, d, false};
           run_segment_gemms(&g1, 1, T, nb, f, s0, s1);
         });
       }));
  emit("dy·W̄downᵀ (merged, transposed)", G, T, f, d, median_ms(repeats, [&] {
         for_column_blocks_and_segments(par, f, G, [&](int64_t j0, int64_t nb, int64_t s0, int64_t s1) {
           const SegmentGemm g1 = {w.dy.data(), T * d, d, MergedB{w.wd.data() + j0 * d, f * d, 1, d, e, E}, E,
                                   a.data() + j0, T * f, f, false};
           run_segment_gemms(&g1, 1, T, nb, d, s0, s1);
         });
       }));
  emit("da·W̄gateᵀ + db·W̄upᵀ (merged, transposed)", 2 * G, T, d, f, median_ms(repeats, [&] {
         for_column_blocks_and_segments(par, d, G, [&](int64_t j0, int64_t nb, int64_t s0, int64_t s1) {
           const SegmentGemm g2[2] = {
               {a.data(), T * f, f, MergedB{w.wg.data() + j0 * f, d * f, 1, f, e, E}, E, out.data() + j0, T * d, d, false},
               {b.data(), T * f, f, MergedB{w.wu.data() + j0 * f, d * f, 1, f, e, E}, E, out.data() + j0, T * d, d, true}};
           run_segment_gemms(g2, 2, T, nb, f, s0, s1);
         });
       }));
  {  // weight-gradient tiles G_s = x_sᵀ·da_s from packed strips (pass C's GEMM, K = T), segments in parallel
    auto up = [](int64_t v, int64_t m) { return (v + m - 1) / m * m; };
    std::vector<float> xp(G * T * up(d, kStripRows)), dap(G * T * up(f, kStripCols));
    for (int64_t g = 0; g < G; ++g) {
      pack_strips(x + g * T * d, T, d, d, kStripRows, xp.data() + g * T * up(d, kStripRows));
      pack_strips(h.data() + g * T * f, T, f, f, kStripCols, dap.data() + g * T * up(f, kStripCols));
    }
    emit("xᵀ·da per segment (weight-gradient tiles, K = T)", G, d, f, T, median_ms(repeats, [&] {
           par(size_t(G), [&](size_t task) {
             thread_local std::vector<float> tile;
             tile.resize(size_t(d * f));
             const int64_t g = int64_t(task);
             strips_gemm(d, f, T, xp.data() + g * T * up(d, kStripRows), dap.data() + g * T * up(f, kStripCols),
                         tile.data(), f);
           });
         }));
  }
  OwnGemm own(par);
  emit("dense x·W (one GEMM over all G·T rows, own micro-kernels)", 1, G * T, f, d, median_ms(repeats, [&] {
         own.run(false, false, G * T, f, d, x, d, w.wg.data(), f, a.data(), f, false);
       }));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--fused-only") {  // for profiling the fused kernel alone
      args.fused_only = true;
      --i;
      continue;
    }
    if (k == "--gemms") {  // the op's GEMMs one by one, as JSON lines (bench/moe-ort.ts compares them with ORT)
      args.gemms = true;
      --i;
      continue;
    }
    if (i + 1 >= argc) { std::fprintf(stderr, "missing value for %s\n", k.c_str()); return 2; }
    const int64_t v = std::atoll(argv[i + 1]);
    if (k == "--threads") args.threads = int(v);
    else if (k == "--repeats") args.repeats = int(v);
    else if (k == "--G") args.s.G = v;
    else if (k == "--T") args.s.T = v;
    else if (k == "--d") args.s.d = v;
    else if (k == "--f") args.s.f = v;
    else if (k == "--E") args.s.E = v;
    else { std::fprintf(stderr, "unknown option %s\n", k.c_str()); return 2; }
  }
  const MoeShape& s = args.s;
  g_threads = args.threads;
  if (!args.gemms) std::printf("GEMM path: %s\n", gemm_path_name(gemm_path()));
  const ParallelFor par = thread_for(args.threads);
  Weights w;
  w.x = random_vector(s.x_elems(), 1.f, 1);
  w.e = random_vector(s.e_elems(), 0.5f, 2);
  for (auto& v : w.e) v += 0.5f;
  w.wg = random_vector(s.w_elems(), 0.05f, 3);
  w.wu = random_vector(s.w_elems(), 0.05f, 4);
  w.wd = random_vector(s.w_elems(), 0.03f, 5);
  w.dy = random_vector(s.x_elems(), 1.f, 6);
  std::printf("layer G=%lld T=%lld d=%lld f=%lld E=%lld, %d threads, median of %d, %s\n", (long long)s.G,
              (long long)s.T, (long long)s.d, (long long)s.f, (long long)s.E, args.threads, args.repeats,
              std::getenv("LORY_BENCH_WALL") ? "wall time" : "CPU time / threads");

  if (args.gemms) return time_gemms(s, w, par, args.repeats);
  std::vector<float> y(s.x_elems()), dx(s.x_elems()), de(s.e_elems()), dwg(s.w_elems()), dwu(s.w_elems()),
      dwd(s.w_elems());
  std::vector<float> fwd_scratch(moe_forward_scratch_floats(s)), bwd_scratch(moe_backward_scratch_floats(s));
  std::vector<float> saved(moe_saved_floats(s));
  // The training pair (a, b saved by the forward) first, then the pair that recomputes them.
  const double saving_f = median_ms(args.repeats, [&] {
    moe_forward(s, w.x.data(), w.e.data(), w.wg.data(), w.wu.data(), w.wd.data(), y.data(), saved.data(),
                fwd_scratch.data(), par);
  });
  const double saving_b = median_ms(args.repeats, [&] {
    moe_backward(s, w.x.data(), w.e.data(), w.wg.data(), w.wu.data(), w.wd.data(), w.dy.data(), saved.data(),
                 dx.data(), de.data(), dwg.data(), dwu.data(), dwd.data(), bwd_scratch.data(), par);
  });
  const double fused_f = median_ms(args.repeats, [&] {
    moe_forward(s, w.x.data(), w.e.data(), w.wg.data(), w.wu.data(), w.wd.data(), y.data(), nullptr,
                fwd_scratch.data(), par);
  });
  const double fused_b = median_ms(args.repeats, [&] {
    moe_backward(s, w.x.data(), w.e.data(), w.wg.data(), w.wu.data(), w.wd.data(), w.dy.data(), nullptr, dx.data(),
                 de.data(), dwg.data(), dwu.data(), dwd.data(), bwd_scratch.data(), par);
  });
  const std::vector<float> y_fused = y, dwg_fused = dwg, de_fused = de;
  const double gemm_flop = 2.0 * s.G * s.T * s.d * s.f;  // one of the layer's GEMMs
  std::printf("\n%-34s %10s %10s %12s %12s\n", "path", "fwd ms", "bwd ms", "fwd GFLOP/s", "scratch MiB");
  auto row = [&](const std::string& name, double f, double b, double bytes) {
    std::printf("%-34s %10.2f %10.2f %12.1f %12.1f\n", name.c_str(), f, b, 3 * gemm_flop / f / 1e6, bytes / 1048576.0);
  };
  const double fused_bytes = double(bwd_scratch.size()) * sizeof(float);
  row("fused, a/b saved (training pair)", saving_f, saving_b, fused_bytes + double(saved.size()) * sizeof(float));
  row("fused custom op (own kernels)", fused_f, fused_b, fused_bytes);

  if (args.fused_only) return 0;
  std::vector<Gemm*> engines;
  OwnGemm own(par);
  engines.push_back(&own);
#ifdef LORY_BENCH_OPENBLAS
  openblas_set_num_threads(args.threads);
  BlasGemm blas;
  engines.push_back(&blas);
#endif
  double best_dense_f = 1e30, best_dense_b = 1e30, std_f = 0, std_b = 0, std_bytes = 0;
  for (Gemm* g : engines) {
    Standard st(s, *g);
    const double f = median_ms(args.repeats, [&] { st.forward(w, y.data()); });
    const double b = median_ms(args.repeats, [&] {
      st.backward(w, dx.data(), de.data(), dwg.data(), dwu.data(), dwd.data());
    });
    row(std::string("standard, ") + g->name(), f, b, double(st.backward_bytes()));
    std::printf("    (agrees with fused: y %.1e, dW_gate %.1e, de %.1e)\n", max_rel_diff(y, y_fused),
                max_rel_diff(dwg, dwg_fused), max_rel_diff(de, de_fused));
    if (!std_f || f + b < std_f + std_b) std_f = f, std_b = b, std_bytes = double(st.backward_bytes());
    Chunked chunked(s, *g, 4);
    const double cf = median_ms(args.repeats, [&] { chunked.forward(w, y.data()); });
    const double cb = median_ms(args.repeats, [&] {
      chunked.backward(w, dx.data(), de.data(), dwg.data(), dwu.data(), dwd.data());
    });
    row(std::string("merge 4 segs + GEMMs, ") + g->name(), cf, cb, double(chunked.backward_bytes()));
    std::printf("    (agrees with fused: y %.1e, dW_gate %.1e, de %.1e)\n", max_rel_diff(y, y_fused),
                max_rel_diff(dwg, dwg_fused), max_rel_diff(de, de_fused));
    Dense dense(s, *g);
    const double df = median_ms(args.repeats, [&] { dense.forward(w, y.data()); });
    const double db = median_ms(args.repeats, [&] { dense.backward(w, dx.data(), dwg.data(), dwu.data(), dwd.data()); });
    row(std::string("dense SwiGLU, ") + g->name(), df, db, double(dense.bytes()));
    best_dense_f = std::min(best_dense_f, df);
    best_dense_b = std::min(best_dense_b, db);
  }
  std::printf("\nratios (same run):\n");
  std::printf("  fused / best dense:     forward %.2fx  backward %.2fx  (target <= 1.25x)\n", fused_f / best_dense_f,
              fused_b / best_dense_b);
  std::printf("  fused / best standard:  forward %.2fx  backward %.2fx\n", fused_f / std_f, fused_b / std_b);
  std::printf("  scratch standard / fused: %.1fx (%.0f MiB vs %.0f MiB; standard holds G*3*d*f merged weights)\n",
              std_bytes / fused_bytes, std_bytes / 1048576.0, fused_bytes / 1048576.0);
  return 0;
}
