// Native tests of the CPU kernel: fast float32 kernel vs. the float64 reference (forward and all five
// gradients), finite differences on a tiny shape, shape-error messages. Exits non-zero on any failure.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "expert_scatter.h"
#include "gemm_path.h"
#include "lory/adamw.h"
#include "lory/moe_cpu.h"
#include "lory/moe_reference.h"
#include "lory/scatter_rows.h"
#include "merged_gemm.h"
#include "micro_avx512.h"

using namespace lory;

static int failures = 0;

static void expect(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  if (!ok) ++failures;
}

// max |got − ref| / max |ref|: scale-free, and a wrong element anywhere moves it.
template <typename Got>
static double relative_error(const std::vector<Got>& got, const std::vector<double>& ref) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    err = std::max(err, std::abs(double(got[i]) - ref[i]));
    scale = std::max(scale, std::abs(ref[i]));
  }
  return err / std::max(scale, 1e-30);
}

struct Inputs {
  std::vector<float> x, e, wg, wu, wd, dy;
};

static Inputs random_inputs(const MoeShape& s, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  auto fill = [&](int64_t n, float scale) {
    std::vector<float> v(n);
    for (auto& a : v) a = scale * u(rng);
    return v;
  };
  Inputs in;
  in.x = fill(s.x_elems(), 1.f);
  in.e = fill(s.e_elems(), 1.f);
  for (auto& a : in.e) a = 0.5f + 0.5f * a;  // positive like softmax output, but not normalised
  in.wg = fill(s.w_elems(), 2.f / std::sqrt(float(s.d)));
  in.wu = fill(s.w_elems(), 2.f / std::sqrt(float(s.d)));
  in.wd = fill(s.w_elems(), 2.f / std::sqrt(float(s.f)));
  in.dy = fill(s.x_elems(), 1.f);
  return in;
}

static std::string name(const MoeShape& s) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "G=%lld T=%lld d=%lld f=%lld E=%lld", (long long)s.G, (long long)s.T,
                (long long)s.d, (long long)s.f, (long long)s.E);
  return buf;
}

// float32 kernel vs float64 reference, sums of up to ~1400 terms: observed max errors are 2e-7..1e-6
// (relative to the largest |ref|); the bounds leave ~5-10x headroom and still catch one wrong element.
constexpr double kForwardTol = 5e-6, kBackwardTol = 1e-5;

// Both ways of running the pair: the backward recomputing a, b, and the training pair, whose forward
// saves them for its backward. A wrong saved a or b shows up in every gradient.
static void check_against_reference(const MoeShape& s, const ParallelFor& par, const MoeCpuOptions& opt,
                                    const std::string& label) {
  const Inputs in = random_inputs(s, 1234u + unsigned(s.G * 7 + s.T));
  std::vector<double> y_ref(s.x_elems());
  moe_forward_reference(s, in.x.data(), in.e.data(), in.wg.data(), in.wu.data(), in.wd.data(), y_ref.data());
  std::vector<double> dx_r(s.x_elems()), de_r(s.e_elems()), dwg_r(s.w_elems()), dwu_r(s.w_elems()),
      dwd_r(s.w_elems());
  moe_backward_reference(s, in.x.data(), in.e.data(), in.wg.data(), in.wu.data(), in.wd.data(), in.dy.data(),
                         dx_r.data(), de_r.data(), dwg_r.data(), dwu_r.data(), dwd_r.data());
  for (const bool saving : {false, true}) {
    const std::string mode = label + (saving ? ", a/b saved" : ", a/b recomputed");
    std::vector<float> y(s.x_elems()), scratch(moe_forward_scratch_floats(s, opt, saving));
    std::vector<float> saved(saving ? moe_saved_floats(s) : 0, NAN);  // NaN: every element must be written
    moe_forward(s, in.x.data(), in.e.data(), in.wg.data(), in.wu.data(), in.wd.data(), y.data(),
                saving ? saved.data() : nullptr, scratch.data(), par, opt);
    const double ey = relative_error(y, y_ref);
    char msg[256];
    std::snprintf(msg, sizeof msg, "forward %s [%s]: max rel err y %.2e (tol %.0e)", name(s).c_str(), mode.c_str(),
                  ey, kForwardTol);
    expect(ey < kForwardTol, msg);

    std::vector<float> dx(s.x_elems()), de(s.e_elems()), dwg(s.w_elems(), NAN), dwu(s.w_elems(), NAN),
        dwd(s.w_elems(), NAN);  // NaN: the kernel must overwrite, not accumulate into, its outputs
    scratch.assign(moe_backward_scratch_floats(s, opt), 0.f);
    moe_backward(s, in.x.data(), in.e.data(), in.wg.data(), in.wu.data(), in.wd.data(), in.dy.data(),
                 saving ? saved.data() : nullptr, dx.data(), de.data(), dwg.data(), dwu.data(), dwd.data(),
                 scratch.data(), par, opt);
    const double errs[5] = {relative_error(dx, dx_r), relative_error(de, de_r), relative_error(dwg, dwg_r),
                            relative_error(dwu, dwu_r), relative_error(dwd, dwd_r)};
    double worst = 0;
    for (double v : errs) worst = std::max(worst, std::isnan(v) ? 1e9 : v);
    std::snprintf(msg, sizeof msg,
                  "backward %s [%s]: max rel err dx %.2e de %.2e dWg %.2e dWu %.2e dWd %.2e (tol %.0e)",
                  name(s).c_str(), mode.c_str(), errs[0], errs[1], errs[2], errs[3], errs[4], kBackwardTol);
    expect(worst < kBackwardTol, msg);
  }
}

// Central differences of L = ⟨y, dy⟩ through the float64 forward, against both backward kernels.
static void check_finite_differences() {
  const MoeShape s{2, 3, 5, 7, 3};
  const Inputs in = random_inputs(s, 99);
  std::vector<double> y(s.x_elems());
  std::vector<std::vector<double>> p = {
      {in.x.begin(), in.x.end()},   {in.e.begin(), in.e.end()},   {in.wg.begin(), in.wg.end()},
      {in.wu.begin(), in.wu.end()}, {in.wd.begin(), in.wd.end()},
  };
  auto loss = [&] {
    moe_forward_reference_f64(s, p[0].data(), p[1].data(), p[2].data(), p[3].data(), p[4].data(), y.data());
    double l = 0;
    for (int64_t i = 0; i < s.x_elems(); ++i) l += y[i] * in.dy[i];
    return l;
  };
  std::vector<std::vector<double>> fd(5);
  const double eps = 1e-5;
  for (int k = 0; k < 5; ++k) {
    fd[k].resize(p[k].size());
    for (size_t i = 0; i < p[k].size(); ++i) {
      const double keep = p[k][i];
      p[k][i] = keep + eps;
      const double up = loss();
      p[k][i] = keep - eps;
      const double down = loss();
      p[k][i] = keep;
      fd[k][i] = (up - down) / (2 * eps);
    }
  }
  std::vector<double> r[5] = {std::vector<double>(s.x_elems()), std::vector<double>(s.e_elems()),
                              std::vector<double>(s.w_elems()), std::vector<double>(s.w_elems()),
                              std::vector<double>(s.w_elems())};
  moe_backward_reference(s, in.x.data(), in.e.data(), in.wg.data(), in.wu.data(), in.wd.data(), in.dy.data(),
                         r[0].data(), r[1].data(), r[2].data(), r[3].data(), r[4].data());
  std::vector<float> q[5] = {std::vector<float>(s.x_elems()), std::vector<float>(s.e_elems()),
                             std::vector<float>(s.w_elems()), std::vector<float>(s.w_elems()),
                             std::vector<float>(s.w_elems())};
  std::vector<float> scratch(moe_backward_scratch_floats(s));
  moe_backward(s, in.x.data(), in.e.data(), in.wg.data(), in.wu.data(), in.wd.data(), in.dy.data(), nullptr, q[0].data(),
               q[1].data(), q[2].data(), q[3].data(), q[4].data(), scratch.data(), serial_for());
  static const char* names[5] = {"dx", "de", "dW_gate", "dW_up", "dW_down"};
  for (int k = 0; k < 5; ++k) {
    const double er = relative_error(r[k], fd[k]), eq = relative_error(q[k], fd[k]);
    char msg[160];
    std::snprintf(msg, sizeof msg, "finite differences %s: reference %.2e (tol 1e-7), fast %.2e (tol 1e-5)",
                  names[k], er, eq);
    expect(er < 1e-7 && eq < 1e-5, msg);
  }
}

// The comparison itself must notice a single wrong element of realistic size.
static void check_the_checker() {
  const MoeShape s{2, 9, 16, 24, 3};
  const Inputs in = random_inputs(s, 7);
  std::vector<double> ref(s.x_elems());
  moe_forward_reference(s, in.x.data(), in.e.data(), in.wg.data(), in.wu.data(), in.wd.data(), ref.data());
  std::vector<float> y(s.x_elems()), scratch(moe_forward_scratch_floats(s));
  moe_forward(s, in.x.data(), in.e.data(), in.wg.data(), in.wu.data(), in.wd.data(), y.data(), nullptr,
              scratch.data(), serial_for());
  y[s.x_elems() / 2] += 1e-3f;
  expect(relative_error(y, ref) > kForwardTol, "a 1e-3 error in one element of y is detected");
}

static void check_shape_errors() {
  MoeShape s;
  const std::vector<std::vector<int64_t>> good = {{4, 8, 16}, {4, 3}, {3, 16, 24}, {3, 16, 24}, {3, 24, 16}};
  expect(infer_moe_shape("LoryMoEFFN", good, &s).empty() && s.G == 4 && s.T == 8 && s.d == 16 && s.f == 24 &&
             s.E == 3,
         "consistent shapes are accepted and read as G,T,d,f,E");
  auto bad = good;
  bad[4] = {3, 16, 24};
  const std::string msg = infer_moe_shape("LoryMoEFFN", bad, &s);
  expect(msg.find("LoryMoEFFN") != std::string::npos && msg.find("'W_down'") != std::string::npos &&
             msg.find("[3,24,16]") != std::string::npos,
         "a transposed W_down is rejected naming the op, the input and the expected shape: " + msg);
  bad = good;
  bad.push_back({4, 8, 15});
  const std::string msg2 = infer_moe_shape("LoryMoEFFNGrad", bad, &s);
  expect(msg2.find("'dy'") != std::string::npos, "a dy of the wrong shape is rejected: " + msg2);
  bad = good;
  bad[1] = {4};
  expect(infer_moe_shape("LoryMoEFFN", bad, &s).find("rank 2") != std::string::npos,
         "a rank-1 e is rejected");
}

// The GEMMs on their own, against a float64 loop: every row count of the R×32 tiles (M = 1…31), column
// remainders, K past one panel depth, row-major and transposed A, merged and plain B, accumulate.
static void check_gemms(const std::string& label) {
  std::mt19937 rng(99);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  struct Case {
    int64_t M, N, K, terms;
    bool transposed_a, accumulate;
  };
  std::vector<Case> cases;
  for (int64_t M = 1; M <= 31; ++M) cases.push_back({M, 16 * (1 + M % 3) + (M % 5 == 0 ? 0 : M % 17), 37, 3, false, M % 2 == 0});
  cases.push_back({128, 64, 512, 8, false, false});
  cases.push_back({64, 200, 900, 2, false, true});  // K over one slab
  cases.push_back({29, 45, 70, 1, true, false});
  cases.push_back({13, 33, 21, 4, true, true});
  double worst = 0;
  for (const Case& c : cases) {
    std::vector<float> a(c.M * c.K), b(c.terms * c.K * c.N), coef(c.terms), out(c.M * (c.N + 3));
    for (auto& v : a) v = u(rng);
    for (auto& v : b) v = u(rng);
    for (auto& v : coef) v = 0.5f + 0.5f * u(rng);
    for (auto& v : out) v = u(rng);
    const int64_t ldc = c.N + 3;  // padding columns must stay untouched
    const std::vector<float> before = out;
    // A(m,k): row-major [M,K], or transposed storage [K,M] read with strides (1, M).
    const StridedA A = c.transposed_a ? StridedA{a.data(), 1, c.M} : StridedA{a.data(), c.K, 1};
    const MergedB B{b.data(), c.K * c.N, c.N, 1, c.terms > 1 ? coef.data() : nullptr, c.terms};
    merged_gemm(c.M, c.N, c.K, A, B, out.data(), ldc, c.accumulate);
    std::vector<double> ref(c.M * ldc), got(c.M * ldc);
    bool padding_kept = true;
    for (int64_t m = 0; m < c.M; ++m)
      for (int64_t n = 0; n < ldc; ++n) {
        const int64_t o = m * ldc + n;
        got[o] = out[o];
        if (n >= c.N) {
          ref[o] = before[o];
          padding_kept = padding_kept && out[o] == before[o];
          continue;
        }
        double acc = c.accumulate ? before[o] : 0.0;
        for (int64_t k = 0; k < c.K; ++k) {
          double bk = 0;
          for (int64_t i = 0; i < c.terms; ++i) bk += (c.terms > 1 ? coef[i] : 1.f) * double(b[i * c.K * c.N + k * c.N + n]);
          acc += double(c.transposed_a ? a[k * c.M + m] : a[m * c.K + k]) * bk;
        }
        ref[o] = acc;
      }
    worst = std::max(worst, relative_error(got, ref));
    if (!padding_kept) expect(false, "merged_gemm wrote past N [" + label + "]");
  }
  // strips_gemm (pass C's GEMM, K = T) from packed strips.
  for (int64_t M : {7, 48, 13})
    for (int64_t N : {128, 40, 17}) {
      const int64_t K = 64;
      std::vector<float> a(M * K), b(K * N), ap((M + 5) / 6 * 6 * K), bp((N + 15) / 16 * 16 * K), c(M * N);
      for (auto& v : a) v = u(rng);
      for (auto& v : b) v = u(rng);
      // a is Aᵀ stored [K, M] (as the kernel packs xᵀ), b is [K, N].
      pack_strips(a.data(), K, M, M, kStripRows, ap.data());
      pack_strips(b.data(), K, N, N, kStripCols, bp.data());
      strips_gemm(M, N, K, ap.data(), bp.data(), c.data(), N);
      std::vector<double> ref(M * N), got(c.begin(), c.end());
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) {
          double acc = 0;
          for (int64_t k = 0; k < K; ++k) acc += double(a[k * M + m]) * b[k * N + n];
          ref[m * N + n] = acc;
        }
      worst = std::max(worst, relative_error(got, ref));
    }
  char msg[160];
  std::snprintf(msg, sizeof msg, "GEMMs [%s]: %zu merged_gemm cases + 9 strips_gemm, max rel err %.2e (tol 2e-6)",
                label.c_str(), cases.size(), worst);
  expect(worst < 2e-6, msg);
}

// The fused AdamW update vs its float64 reference (random p, g, m ≥ 0 v, clipping scale ≠ 1, decay ≠ 1),
// on every path, serial and in parallel chunks (n spans several chunks plus a remainder).
// The fan-out of weight-gradient tiles to the experts against its double-loop reference: column counts
// off the 16-lane vectors and the 64-column blocks, expert counts off the 4-expert blocks, segment counts
// off the 4-segment blocks and past 32, row counts past one 16-row block; overwrite and accumulate.
static void check_fan_out(const std::string& label) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  struct Case {
    int64_t rows, cols, segments, E;
    bool first, aligned;  // aligned: dW rows on 64-byte lines (the streaming-store path of a first write)
  };
  const Case cases[] = {{48, 64, 32, 8, true, true},   {48, 64, 32, 8, true, false}, {48, 64, 32, 8, false, false},
                        {17, 40, 5, 3, false, false},  {6, 16, 1, 1, true, false},   {40, 72, 37, 6, false, true},
                        {33, 130, 9, 9, true, false},  {30, 80, 7, 5, true, true},   {1, 1, 2, 5, false, false}};
  for (const Case& c : cases) {
    // Strided like a tile of a larger matrix, or packed on whole lines.
    const int64_t ldw = c.aligned ? (c.cols + 15) / 16 * 16 : c.cols + 3;
    const int64_t expert_stride = c.aligned ? c.rows * ldw : c.rows * ldw + 11;
    std::vector<float> tiles(size_t(c.segments * c.rows * c.cols)), coef(size_t(c.segments * c.E)),
        w(size_t(c.E * expert_stride)), dw0(w.size());
    for (auto* v : {&tiles, &coef, &w, &dw0})
      for (float& x : *v) x = u(rng);
    std::vector<float> dw_storage(dw0.size() + 16), dw_ref = dw0;
    float* const dw_at = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(dw_storage.data()) + 63) & ~uintptr_t(63));
    std::copy(dw0.begin(), dw0.end(), dw_at);
    const auto dw = [&](size_t k) -> float& { return dw_at[k]; };
    std::vector<double> dots(size_t(c.segments * c.E), 0.25), dots_ref = dots;  // both add to what is there
    fan_out_tile(c.rows, c.cols, tiles.data(), c.segments, coef.data(), c.E, w.data(), dw_at, expert_stride, ldw,
                 c.first, dots.data());
    fan_out_tile_reference(c.rows, c.cols, tiles.data(), c.segments, coef.data(), c.E, w.data(), dw_ref.data(),
                           expert_stride, ldw, c.first, dots_ref.data());
    // Elements outside the tiles (padding of ldw and expert_stride) must be untouched.
    double err_w = 0, err_d = 0, scale_w = 0, scale_d = 0;
    bool padding_kept = true;
    for (int64_t i = 0; i < c.E; ++i)
      for (int64_t at = i * expert_stride; at < (i + 1) * expert_stride; ++at) {
        const int64_t local = at - i * expert_stride;
        const bool inside = local < c.rows * ldw && local % ldw < c.cols;
        if (!inside) {
          padding_kept = padding_kept && dw(size_t(at)) == dw0[size_t(at)];
          continue;
        }
        err_w = std::max(err_w, double(std::fabs(dw(size_t(at)) - dw_ref[size_t(at)])));
        scale_w = std::max(scale_w, double(std::fabs(dw_ref[size_t(at)])));
      }
    for (size_t k = 0; k < dots.size(); ++k) {
      err_d = std::max(err_d, std::fabs(dots[k] - dots_ref[k]));
      scale_d = std::max(scale_d, std::fabs(dots_ref[k]));
    }
    char msg[240];
    std::snprintf(msg, sizeof msg, "fan-out [%s] rows=%lld cols=%lld segments=%lld E=%lld %s%s: dW %.1e, de %.1e (tol 1e-6), padding %s",
                  label.c_str(), (long long)c.rows, (long long)c.cols, (long long)c.segments, (long long)c.E,
                  c.first ? "overwrite" : "accumulate", c.aligned ? ", aligned lines" : "", err_w / scale_w, err_d / scale_d,
                  padding_kept ? "kept" : "WRITTEN");
    expect(err_w <= 1e-6 * scale_w && err_d <= 1e-6 * scale_d && padding_kept, msg);
  }
}

// Outputs at a 64-byte boundary (as ORT allocates them) take the streaming-store path; `shift` floats
// off it, the ordinary one.
static void check_adamw(const std::string& label, const ParallelFor& par, int64_t shift) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  const int64_t n = 3 * 65536 + 1234;
  std::vector<float> p(n), g(n), m(n), v(n);
  struct Aligned {  // n floats from a 64-byte boundary + shift, NaN-filled: every element must be written
    std::vector<float> storage;
    float* data;
    Aligned(int64_t n, int64_t shift) : storage(size_t(n + shift + 16), NAN) {
      const uintptr_t at = (reinterpret_cast<uintptr_t>(storage.data()) + 63) & ~uintptr_t(63);
      data = reinterpret_cast<float*>(at) + shift;
    }
    float operator[](int64_t i) const { return data[i]; }
  };
  Aligned po(n, shift), mo(n, shift), vo(n, shift);
  for (int64_t i = 0; i < n; ++i) {
    p[i] = u(rng);
    g[i] = 0.1f * u(rng);
    m[i] = 0.01f * u(rng);
    v[i] = 1e-4f * (1.f + u(rng));  // second moments are non-negative
  }
  const AdamWHyper h{1.f - 3e-4f * 0.1f, 3e-4f / (1.f - 0.9f * 0.9f), std::sqrt(1.f - 0.95f * 0.95f), 0.7f, 0.9f, 0.95f, 1e-8f};
  adamw_update(n, p.data(), g.data(), m.data(), v.data(), h, po.data, mo.data, vo.data, par);
  std::vector<double> pr(n), mr(n), vr(n);
  adamw_update_reference(n, p.data(), g.data(), m.data(), v.data(), h, pr.data(), mr.data(), vr.data());
  // Compare the update p' − p (what AdamW changes), not p' itself, so the bound is not hidden under |p|.
  std::vector<double> dref(n), dgot(n);
  for (int64_t i = 0; i < n; ++i) dref[i] = pr[i] - p[i], dgot[i] = double(po[i]) - p[i];
  const std::vector<float> mo_v(mo.data, mo.data + n), vo_v(vo.data, vo.data + n);
  const double ep = relative_error(dgot, dref), em = relative_error(mo_v, mr), ev = relative_error(vo_v, vr);
  char msg[200];
  std::snprintf(msg, sizeof msg, "AdamW update [%s]: max rel err of p'-p %.2e, m' %.2e, v' %.2e (tol 1e-5, 1e-6, 1e-6)",
                label.c_str(), ep, em, ev);
  expect(ep < 1e-5 && em < 1e-6 && ev < 1e-6, msg);
}

// Zipf-like ids (many repeats, as in text) into rows: against the float64 definition, and bit-identical
// at 1, 2 and 4 threads (each element sums in index order whatever the split).
template <typename T>
static void check_scatter_rows(const char* type, int64_t n, int64_t width, int64_t rows) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<int64_t> ids(n);
  for (auto& id : ids) id = std::min<int64_t>(rows - 1, int64_t(std::exp(u(rng) * std::log(double(rows)))) - 1);
  std::vector<T> upd(n * width);
  for (auto& a : upd) a = T(2 * u(rng) - 1);
  std::vector<double> ref(rows * width);
  scatter_add_rows_reference<T>(n, width, rows, ids.data(), upd.data(), ref.data());
  std::vector<T> serial(rows * width, T(NAN)), two(rows * width, T(NAN)), four(rows * width, T(NAN));
  scatter_add_rows<T>(n, width, rows, ids.data(), upd.data(), serial.data(), serial_for());
  scatter_add_rows<T>(n, width, rows, ids.data(), upd.data(), two.data(), thread_for(2));
  scatter_add_rows<T>(n, width, rows, ids.data(), upd.data(), four.data(), thread_for(4));
  const double err = relative_error(two, ref);
  const double tol = sizeof(T) == 4 ? 1e-5 : 1e-13;
  const bool same = std::memcmp(serial.data(), two.data(), sizeof(T) * serial.size()) == 0 &&
                    std::memcmp(serial.data(), four.data(), sizeof(T) * serial.size()) == 0;
  char msg[200];
  std::snprintf(msg, sizeof msg, "scatter_add_rows %s n=%lld W=%lld rows=%lld: rel err %.2e (tol %.0e), 1/2/4 threads bit-identical: %s",
                type, (long long)n, (long long)width, (long long)rows, err, tol, same ? "yes" : "NO");
  expect(err <= tol && same, msg);
}

int main() {
  check_shape_errors();
  check_the_checker();
  check_finite_differences();
  check_scatter_rows<float>("float", 2048, 128, 4096);
  check_scatter_rows<float>("float", 300, 37, 50);  // width not a multiple of a cache line
  check_scatter_rows<float>("float", 64, 1, 8);     // one column: a single task
  check_scatter_rows<float>("float", 20000, 4, 5);  // fewer rows than row classes, pool used
  check_scatter_rows<double>("double", 1000, 96, 500);
  const ParallelFor two = thread_for(2), serial = serial_for();
  const MoeCpuOptions defaults;
  // Every micro-kernel path this CPU can run, whatever it would pick (the layer tests below use the best).
  const GemmPath best = gemm_path();
  std::printf("CPU GEMM path in use: %s\n", gemm_path_name(best));
  for (GemmPath path : {GemmPath::kPortable, GemmPath::kAvx2, GemmPath::kAvx512}) {
    if (!set_gemm_path(path)) {
      std::printf("skip %s path: this CPU lacks it\n", gemm_path_name(path));
      continue;
    }
    check_gemms(gemm_path_name(path));
    check_fan_out(gemm_path_name(path));
    check_adamw(std::string(gemm_path_name(path)) + ", 2 threads, aligned outputs", thread_for(2), 0);
    check_adamw(std::string(gemm_path_name(path)) + ", 2 threads, unaligned outputs", thread_for(2), 3);
    check_adamw(std::string(gemm_path_name(path)) + ", serial", serial_for(), 0);
    if (path == GemmPath::kAvx512)
      for (int64_t rows : {6, 14}) {  // other tile heights than the default
        set_avx512_tile_rows(rows);
        check_gemms("avx512, " + std::to_string(rows) + "-row tiles");
        check_against_reference({3, 64, 128, 352, 8}, two, defaults, "avx512, " + std::to_string(rows) + "-row tiles");
        set_avx512_tile_rows(kDefaultRowsAvx512);
      }
    if (path != best) {
      const std::string tag = std::string(gemm_path_name(path)) + " path";
      check_against_reference({2, 13, 40, 72, 3}, two, defaults, tag + ", T=13");
      check_against_reference({3, 64, 128, 352, 8}, two, defaults, tag + ", model-like");
      check_against_reference({5, 19, 40, 56, 3}, serial, defaults, tag + ", serial");
    }
  }
  set_gemm_path(best);
  check_against_reference({3, 7, 16, 24, 4}, serial, defaults, "serial");
  check_against_reference({2, 13, 40, 72, 3}, two, defaults, "2 threads, T=13");
  check_against_reference({1, 128, 64, 96, 8}, two, defaults, "G=1");
  check_against_reference({4, 33, 32, 48, 1}, two, defaults, "E=1");
  check_against_reference({2, 1, 24, 40, 2}, serial, defaults, "T=1");
  check_against_reference({3, 64, 128, 352, 8}, two, defaults, "model-like");
  check_against_reference({2, 128, 512, 1408, 8}, two, defaults, "bench layer, G=2");
  check_against_reference({6, 40, 96, 200, 5}, thread_for(4), defaults, "4 threads");
  check_against_reference({37, 8, 24, 70, 6}, two, defaults, "G=37: more segments than one fan-out block");
  MoeCpuOptions tiny;
  tiny.scratch_budget_bytes = 1;  // one segment per chunk
  check_against_reference({5, 19, 40, 56, 3}, two, tiny, "chunked, 1 segment per chunk");
  tiny.scratch_budget_bytes = 2 * 3 * 19 * 56 * 4;  // two segments per chunk, last chunk partial
  check_against_reference({5, 19, 40, 56, 3}, two, tiny, "chunked, 2 segments per chunk");
  std::printf(failures ? "%d FAILED\n" : "all passed\n", failures);
  return failures ? 1 : 0;
}
