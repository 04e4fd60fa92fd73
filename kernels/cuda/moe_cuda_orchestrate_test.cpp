// Host test of the CUDA kernel's orchestration (moe_cuda_orchestrate.h): the same chunk loop, GEMM jobs,
// weight-gradient calls and `de` reduction that drive the GPU, run here against a host backend that
// follows the documented semantics of each call element by element (moe_cuda_orchestrate.h). Checks
// forward and all five gradients against the float64 reference (per segment: check_error.h) in float32
// and in an emulated bfloat16, with budgets that force several chunks (float32 dW accumulated in place;
// 16-bit dW in the float32 accumulator, up to 64 chunks), empty dimensions (T, d, f, E or G = 0: zero
// outputs, no GEMM launched), and that nothing is written outside the planned scratch. The backend
// refuses what a CUDA launch refuses (an empty grid dimension). Every case runs both pairs: the plain
// one and the training pair (LoryMoEFFNTrain / LoryMoEFFNTrainGrad: the forward's epilogue saves a, b
// [2,G,T,f], checked against the float64 reference too; the backward's first GEMM computes only dh and
// reads them back), which in float32 must reproduce the plain pair's bits.
// What it cannot check: the CUDA kernels' own tiling, shared memory and synchronisation (GPU only).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "check_error.h"
#include "lory/moe_reference.h"
#include "moe_cuda_group.h"
#include "moe_cuda_orchestrate.h"
#include "moe_cuda_wgrad.h"

using namespace lory;

namespace {

int failures = 0;

void expect(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  if (!ok) ++failures;
}

// y, dx, de, dW_gate, dW_up, dW_down, and the training pair's ab [2, G, T, f].
constexpr int kOutputs = 7;
int64_t output_elems(const MoeShape& s, int i) {
  return i < 2 ? s.x_elems() : i == 2 ? s.e_elems() : i < 6 ? s.w_elems() : 2 * s.G * s.T * s.f;
}
// Blocks of the per-segment metric: y, dx, de per segment, ab per segment of a and of b, dW one block.
size_t output_segments(const MoeShape& s, int i) { return i < 3 ? size_t(s.G) : i == 6 ? size_t(2 * s.G) : 1; }

// bfloat16 on the host: round to nearest even, as __float2bfloat16_rn.
struct Bf16 {
  uint16_t bits;
};
float to_f(float v) { return v; }
float to_f(Bf16 v) {
  const uint32_t u = uint32_t(v.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
template <typename T> T from_f(float v);
template <> float from_f<float>(float v) { return v; }
template <> Bf16 from_f<Bf16>(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  if (std::isnan(v)) return Bf16{0x7fc0};
  u = u + 0x7fffu + ((u >> 16) & 1u);
  return Bf16{uint16_t(u >> 16)};
}

// Follows the semantics moe_cuda_orchestrate.h documents for each call; merged B in float, rounded to T
// (as the kernels stage it), float accumulation, outputs rounded to T.
// kernel = group: the jobs wide_kernel_takes accepts run as the group kernel's grid does (one block per
// segment_group, each expert element read once and merged into every segment of the group); a segment
// computed twice or never fails the call. Others fall back to the per-segment path, as on the GPU.
// wgrad = shared: the products wgrad_shared_takes accepts run as that kernel's grid does (moe_cuda_wgrad.h:
// per 64×64 tile, passes of wgrad_pass_rows(E) rows, G_s once per segment and pass for all experts, dW
// summed in float in segment order, de partials stored by the first pass and added by the later ones; an
// element written twice or never fails the call), and de_reduce sums in the warp kernel's order.
template <typename T>
struct HostBackend {
  CudaKernel kernel = CudaKernel::tile;
  CudaWgrad wgrad = CudaWgrad::tile;
  int gemm_calls = 0, weight_grad_calls = 0, zero_calls = 0, group_calls = 0, group_fallbacks = 0;
  int wgrad_shared_calls = 0, wgrad_fallbacks = 0, de_warp_calls = 0;
  long long column_tiles = 0;  // (segment, column tile) blocks of the group kernels
  int merged_products = 0;  // A·B̄ products over all GEMM calls (phases × operands)

  static float a_at(const View<T>& a, long long s, long long m, long long k) {
    return to_f(a.p[s * a.seg + m * a.rs + k * a.cs]);
  }

  // B̄ of segment s as a [K, N] matrix.
  static std::vector<float> merged_b(const MergedOperand<T>& b, long long s, int K, int N) {
    std::vector<float> out(size_t(K) * N);
    for (int k = 0; k < K; ++k)
      for (int n = 0; n < N; ++n) {
        const T* src = b.w + s * b.seg + k * b.rs + n * b.cs;
        float v = 0;
        for (int i = 0; i < b.terms; ++i)
          v += (b.coef ? to_f(b.coef[s * b.coef_seg + i]) : 1.f) * to_f(src[i * b.term_stride]);
        out[size_t(k) * N + n] = to_f(from_f<T>(v));
      }
    return out;
  }

  // B̄ of segments first … first+count-1 of one merged operand, each expert element read once and added
  // into all of them (the group kernel's merge).
  static std::vector<std::vector<float>> merged_group(const MergedOperand<T>& b, SegmentGroup grp, int K, int N) {
    std::vector<std::vector<float>> out(size_t(grp.count), std::vector<float>(size_t(K) * N, 0.f));
    for (int k = 0; k < K; ++k)
      for (int n = 0; n < N; ++n)
        for (int i = 0; i < b.terms; ++i) {
          const float w = to_f(b.w[i * b.term_stride + k * b.rs + n * b.cs]);
          for (int q = 0; q < grp.count; ++q) {
            const long long s = grp.first + q;
            out[size_t(q)][size_t(k) * N + n] += (b.coef ? to_f(b.coef[s * b.coef_seg + i]) : 1.f) * w;
          }
        }
    for (auto& m : out)
      for (float& v : m) v = to_f(from_f<T>(v));
    return out;
  }

  // Columns [n_lo, n_hi) of segment s of the job from its merged operands bs[phase][operand], then the
  // epilogue.
  static void compute_segment(const SegmentJob<T>& job, long long s, const std::vector<float> (&bs)[2][2],
                              int n_lo = 0, int n_hi = -1) {
    if (n_hi < 0) n_hi = job.N;
    std::vector<float> acc(size_t(3) * job.M * job.N, 0.f);
    for (int p = 0; p < job.n_ph; ++p) {
      const Phase<T>& ph = job.ph[p];
      for (int ib = 0; ib < ph.n_b; ++ib) {
        const std::vector<float>& b = bs[p][ib];
        float* c = acc.data() + size_t(ph.b[ib].slot) * job.M * job.N;
        for (int m = 0; m < job.M; ++m)
          for (int k = 0; k < ph.K; ++k) {
            const float av = a_at(ph.a, s, m, k);
            for (int n = n_lo; n < n_hi; ++n) c[size_t(m) * job.N + n] += av * b[size_t(k) * job.N + n];
          }
      }
    }
    for (int m = 0; m < job.M; ++m)
      for (int n = n_lo; n < n_hi; ++n) {
        const long long at = s * job.out_seg + m * job.out_ld + n;
        float v[3], out[3], saved[2] = {};
        for (int q = 0; q < 3; ++q) v[q] = acc[size_t(q) * job.M * job.N + size_t(m) * job.N + n];
        if (epilogue_reads_saved(job.epi)) saved[0] = to_f(job.in[0][at]), saved[1] = to_f(job.in[1][at]);
        const int outs = epilogue_values(job.epi, v, saved, out);
        for (int i = 0; i < outs; ++i) job.out[i][at] = from_f<T>(out[i]);
      }
  }

  // The group kernel's grid: per group, the column tiles of columns_per_slot (group-wide: 32 for 3 slots);
  // every (segment, column) computed exactly once.
  std::string gemm_grouped(const SegmentJob<T>& job, long long segments) {
    ++group_calls;
    const int bnp = columns_per_slot(job.slots, kernel == CudaKernel::group_wide);
    if (job.slots * bnp > 96) return "group: more than 96 staged columns";
    std::vector<int> visits(size_t(segments) * job.N, 0);
    const long long groups = segment_group_count(segments, kGroupSegments);
    for (long long g = 0; g < groups; ++g) {
      const SegmentGroup grp = segment_group(g, segments, kGroupSegments);
      if (grp.count < 1 || grp.count > kGroupSegments || grp.first < 0 || grp.first + grp.count > segments)
        return "group " + std::to_string(g) + " out of range";
      for (int p = 0; p < job.n_ph; ++p)
        for (int ib = 0; ib < job.ph[p].n_b; ++ib)
          if (job.ph[p].b[ib].seg != 0) return "group: a per-segment B operand";  // the kernel reads shared experts
      std::vector<std::vector<float>> merged[2][2];
      for (int p = 0; p < job.n_ph; ++p)
        for (int ib = 0; ib < job.ph[p].n_b; ++ib) merged[p][ib] = merged_group(job.ph[p].b[ib], grp, job.ph[p].K, job.N);
      for (int q = 0; q < grp.count; ++q) {
        std::vector<float> bs[2][2];
        for (int p = 0; p < job.n_ph; ++p)
          for (int ib = 0; ib < job.ph[p].n_b; ++ib) bs[p][ib] = std::move(merged[p][ib][size_t(q)]);
        for (int n0 = 0; n0 < job.N; n0 += bnp) {
          ++column_tiles;
          const int n_hi = std::min(n0 + bnp, job.N);
          compute_segment(job, grp.first + q, bs, n0, n_hi);
          for (int n = n0; n < n_hi; ++n) ++visits[size_t(grp.first + q) * job.N + n];
        }
      }
    }
    for (size_t j = 0; j < visits.size(); ++j)
      if (visits[j] != 1)
        return "group: segment " + std::to_string(j / job.N) + " column " + std::to_string(j % job.N) + " computed " +
               std::to_string(visits[j]) + " times";
    return "";
  }

  std::string gemm(const SegmentJob<T>& job, long long segments) {
    ++gemm_calls;
    if (job.slots < 1 || job.slots > 3) return "bad slot count";
    bool empty = segments < 1 || job.M < 1 || job.N < 1;
    for (int p = 0; p < job.n_ph; ++p) empty = empty || job.ph[p].K < 1;
    if (empty) return "gemm: empty grid or K (a CUDA launch would fail)";
    for (int p = 0; p < job.n_ph; ++p) merged_products += job.ph[p].n_b;
    if (kernel == CudaKernel::group || kernel == CudaKernel::group_wide) {
      VectorFlags flags;
      if (wide_kernel_takes(job, sizeof(T) == 2, segment_group_count(segments, kGroupSegments), &flags))
        return gemm_grouped(job, segments);
      ++group_fallbacks;  // the tile kernel's per-segment path
    }
    for (long long s = 0; s < segments; ++s) {
      std::vector<float> bs[2][2];
      for (int p = 0; p < job.n_ph; ++p)
        for (int ib = 0; ib < job.ph[p].n_b; ++ib) bs[p][ib] = merged_b(job.ph[p].b[ib], s, job.ph[p].K, job.N);
      compute_segment(job, s, bs);
    }
    return "";
  }

  // dW element `at` of one expert from this call's sum v: the float32 state across chunks, or dw.
  static void store_dw(float v, size_t at, T* dw, float* acc, bool first, bool last) {
    if (acc) {
      if (!first) v += acc[at];
      if (last) dw[at] = from_f<T>(v);
      else acc[at] = v;
    } else {
      if (!first) v += to_f(dw[at]);
      dw[at] = from_f<T>(v);
    }
  }

  std::string weight_grad_shared(const Phase<T>& prod, long long segments, int M, int N, int E, const T* e, const T* w,
                                 T* dw, float* acc, bool first, bool last, float* de_partial, long long tile_offset) {
    ++wgrad_shared_calls;
    const int tile = kWgradTile, rows = wgrad_pass_rows(E), tiles_n = (N + tile - 1) / tile;
    std::vector<std::vector<float>> b(static_cast<size_t>(segments));
    for (long long s = 0; s < segments; ++s) b[size_t(s)] = merged_b(prod.b[0], s, prod.K, N);
    std::vector<int> visits(size_t(M) * N, 0);
    for (int m0 = 0; m0 < M; m0 += tile)
      for (int n0 = 0; n0 < N; n0 += tile) {
        const long long t = tile_offset + m0 / tile * tiles_n + n0 / tile;
        const int cols = std::min(tile, N - n0);
        for (int p = 0; p * rows < tile; ++p) {
          const RowRange rr = wgrad_pass(m0, M, rows, p);
          if (rr.count == 0) break;
          std::vector<float> dws(size_t(E) * rr.count * cols, 0.f);
          for (long long s = 0; s < segments; ++s) {
            std::vector<float> g(size_t(rr.count) * cols, 0.f);  // G_s of the pass, once for all experts
            for (int r = 0; r < rr.count; ++r)
              for (int k = 0; k < prod.K; ++k) {
                const float av = a_at(prod.a, s, rr.first + r, k);
                for (int c = 0; c < cols; ++c) g[size_t(r) * cols + c] += av * b[size_t(s)][size_t(k) * N + n0 + c];
              }
            for (int i = 0; i < E; ++i) {
              const float coef = to_f(e[s * E + i]);
              double dot = 0;
              for (int r = 0; r < rr.count; ++r)
                for (int c = 0; c < cols; ++c) {
                  const float gv = g[size_t(r) * cols + c];
                  dws[(size_t(i) * rr.count + r) * cols + c] += coef * gv;
                  dot += double(gv) * to_f(w[size_t(i) * M * N + size_t(rr.first + r) * N + n0 + c]);
                }
              float& part = de_partial[(t * segments + s) * E + i];
              part = p == 0 ? float(dot) : part + float(dot);
            }
          }
          for (int r = 0; r < rr.count; ++r)
            for (int c = 0; c < cols; ++c) {
              const size_t at = size_t(rr.first + r) * N + n0 + c;
              ++visits[at];
              for (int i = 0; i < E; ++i)
                store_dw(dws[(size_t(i) * rr.count + r) * cols + c], size_t(i) * M * N + at, dw, acc, first, last);
            }
        }
      }
    for (size_t j = 0; j < visits.size(); ++j)
      if (visits[j] != 1)
        return "shared wgrad: dW element " + std::to_string(j) + " written " + std::to_string(visits[j]) + " times";
    return "";
  }

  std::string weight_grad(const Phase<T>& prod, long long segments, int M, int N, int E, const T* e, const T* w,
                          T* dw, float* acc, bool first, bool last, float* de_partial, long long tile_offset) {
    ++weight_grad_calls;
    if (segments < 1 || M < 1 || N < 1 || E < 1 || prod.K < 1) return "weight_grad: empty grid or K";
    if (wgrad == CudaWgrad::shared) {
      bool vec;
      if (wgrad_shared_takes(prod, sizeof(T) == 2, E, &vec))
        return weight_grad_shared(prod, segments, M, N, E, e, w, dw, acc, first, last, de_partial, tile_offset);
      ++wgrad_fallbacks;  // the tile path, as on the GPU
    }
    const long long tile = kWeightGradTile, tiles_n = (N + tile - 1) / tile;
    std::vector<double> sum(size_t(E) * M * N, 0.0);
    for (long long s = 0; s < segments; ++s) {
      const std::vector<float> b = merged_b(prod.b[0], s, prod.K, N);
      std::vector<float> g(size_t(M) * N, 0.f);
      for (int m = 0; m < M; ++m)
        for (int k = 0; k < prod.K; ++k) {
          const float av = a_at(prod.a, s, m, k);
          for (int n = 0; n < N; ++n) g[size_t(m) * N + n] += av * b[size_t(k) * N + n];
        }
      for (int i = 0; i < E; ++i) {
        const float coef = to_f(e[s * E + i]);
        std::vector<double> dot(size_t((M + tile - 1) / tile * tiles_n), 0.0);
        for (int m = 0; m < M; ++m)
          for (int n = 0; n < N; ++n) {
            const size_t at = size_t(m) * N + n;
            sum[size_t(i) * M * N + at] += double(coef) * g[at];
            dot[size_t(m / tile * tiles_n + n / tile)] += double(g[at]) * to_f(w[size_t(i) * M * N + at]);
          }
        for (size_t t = 0; t < dot.size(); ++t)
          de_partial[((tile_offset + static_cast<long long>(t)) * segments + s) * E + i] = float(dot[t]);
      }
    }
    for (size_t j = 0; j < sum.size(); ++j) store_dw(float(sum[j]), j, dw, acc, first, last);
    return "";
  }

  std::string de_reduce(const float* de_partial, long long tiles, long long segments, int E, T* de) {
    if (tiles < 1 || segments < 1 || E < 1) return "de_reduce: nothing to reduce";
    if (wgrad == CudaWgrad::shared) {  // one warp per output: lane sums, then the shuffle tree
      ++de_warp_calls;
      for (long long j = 0; j < segments * E; ++j) {
        float lanes[kDeLanes];
        for (int l = 0; l < kDeLanes; ++l) lanes[l] = de_lane_sum(de_partial, tiles, segments * E, j, l);
        de[j] = from_f<T>(de_tree_sum(lanes));
      }
      return "";
    }
    for (long long j = 0; j < segments * E; ++j) {
      float v = 0;
      for (long long t = 0; t < tiles; ++t) v += de_partial[t * segments * E + j];
      de[j] = from_f<T>(v);
    }
    return "";
  }

  std::string zero(T* p, long long n) {
    ++zero_calls;
    if (n < 1) return "zero: empty";
    std::fill(p, p + n, from_f<T>(0.f));
    return "";
  }
};

float round_bf16(float v) { return to_f(from_f<Bf16>(v)); }

// Random inputs of a case in type T and the float64 references of every output.
template <typename T>
struct CaseData {
  std::vector<T> x, e, wg, wu, wd, dy;
  std::vector<double> ref[kOutputs];  // y, dx, de, dW_gate, dW_up, dW_down, ab
};

template <typename T>
CaseData<T> make_case(const MoeShape& s) {
  std::mt19937 rng(unsigned(s.G * 131 + s.d));
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  auto fill = [&](int64_t n, float scale, float shift) {
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& a : v) a = round_bf16(shift + scale * u(rng));  // exact in every type
    return v;
  };
  // x and dy of segment g scaled by 2^-(g mod 4): segment magnitudes up to 8x apart (check_main.cpp too).
  auto by_segment = [&](std::vector<float> v) {
    const size_t per = s.G ? v.size() / size_t(s.G) : 0;
    for (size_t i = 0; i < v.size(); ++i) v[i] = std::ldexp(v[i], -int(i / per % 4));
    return v;
  };
  const std::vector<float> x = by_segment(fill(s.x_elems(), 1.f, 0.f)), e = fill(s.e_elems(), 0.5f / s.E, 1.f / s.E),
                           wg = fill(s.w_elems(), 1.7f / std::sqrt(float(s.d)), 0.f),
                           wu = fill(s.w_elems(), 1.7f / std::sqrt(float(s.d)), 0.f),
                           wd = fill(s.w_elems(), 1.7f / std::sqrt(float(s.f)), 0.f),
                           dy = by_segment(fill(s.x_elems(), 1.f, 0.f));
  CaseData<T> c;
  for (int i = 0; i < kOutputs; ++i) c.ref[i].resize(size_t(output_elems(s, i)));
  moe_forward_reference(s, x.data(), e.data(), wg.data(), wu.data(), wd.data(), c.ref[0].data());
  moe_backward_reference(s, x.data(), e.data(), wg.data(), wu.data(), wd.data(), dy.data(), c.ref[1].data(),
                         c.ref[2].data(), c.ref[3].data(), c.ref[4].data(), c.ref[5].data());
  moe_saved_reference(s, x.data(), e.data(), wg.data(), wu.data(), c.ref[6].data());
  auto conv = [](const std::vector<float>& v) {
    std::vector<T> out(v.size());
    for (size_t i = 0; i < v.size(); ++i) out[i] = from_f<T>(v[i]);
    return out;
  };
  c.x = conv(x), c.e = conv(e), c.wg = conv(wg), c.wu = conv(wu), c.wd = conv(wd), c.dy = conv(dy);
  return c;
}

// One run of a pair through the orchestration: outputs as float (ab empty for the plain pair) and what the
// backend saw.
struct PairRun {
  std::vector<float> out[kOutputs];
  std::string err;
  bool canary_ok = false;
  int fwd_gemms = 0, bwd_gemms = 0, weight_grads = 0, fwd_products = 0, bwd_products = 0;
  bool group_ok = true, wgrad_ok = true;
};

template <typename T>
PairRun run_pair(const MoeShape& s, CudaDType dtype, size_t budget, CudaKernel kernel, CudaWgrad wgrad,
                 const CaseData<T>& in, bool train) {
  const T nan = from_f<T>(NAN);  // every element must be written
  std::vector<T> out[kOutputs];
  for (int i = 0; i < kOutputs; ++i) out[i].assign(i == 6 && !train ? 0 : size_t(output_elems(s, i)), nan);
  MoeCudaOptions opt;
  opt.scratch_budget_bytes = budget;
  const ForwardLayout fl = plan_forward(s, dtype, budget);
  const BackwardLayout bl = plan_backward(s, dtype, budget);
  // Exactly the planned bytes, then a canary: the orchestration must stay inside the plan.
  const size_t bytes = std::max(fl.plan.scratch_bytes, bl.plan.scratch_bytes), canary = 4096;
  std::vector<unsigned char> scratch(bytes + canary + kScratchAlign, 0xA5);
  unsigned char* base = scratch.data() + (kScratchAlign - reinterpret_cast<uintptr_t>(scratch.data()) % kScratchAlign);
  std::fill(base + bytes, base + bytes + canary, 0x5A);
  HostBackend<T> be;
  be.kernel = kernel;
  be.wgrad = wgrad;
  T* saved = train ? out[6].data() : nullptr;
  PairRun r;
  r.err = orchestrate_forward<T>(be, dtype, s, in.x.data(), in.e.data(), in.wg.data(), in.wu.data(), in.wd.data(),
                                 out[0].data(), saved, base, opt);
  r.fwd_gemms = be.gemm_calls, r.fwd_products = be.merged_products;
  if (r.err.empty())
    r.err = orchestrate_backward<T>(be, dtype, s, in.x.data(), in.e.data(), in.wg.data(), in.wu.data(), in.wd.data(),
                                    in.dy.data(), saved, out[1].data(), out[2].data(), out[3].data(), out[4].data(),
                                    out[5].data(), base, opt);
  r.bwd_gemms = be.gemm_calls - r.fwd_gemms, r.bwd_products = be.merged_products - r.fwd_products;
  r.weight_grads = be.weight_grad_calls;
  r.canary_ok = std::all_of(base + bytes, base + bytes + canary, [](unsigned char c) { return c == 0x5A; });
  // group(-wide): every GEMM grouped when it takes the job (16-bit, E ≤ 64), none otherwise; per segment
  // the column tiles of columns_per_slot: forward gate/up (2 slots, f) and down (1, d), backward pass A
  // (3 slots, f: 16 columns, 32 with group-wide; the training pair's 1 slot) and dx (1, d).
  const bool group_kernel = kernel == CudaKernel::group || kernel == CudaKernel::group_wide;
  const bool grouped = group_kernel && dtype != CudaDType::f32 && s.E <= kWideKernelMaxTerms;
  auto tiles = [](long long n, int per) { return (n + per - 1) / per; };
  const long long pass_a = tiles(s.f, columns_per_slot(train ? 1 : 3, kernel == CudaKernel::group_wide));
  const long long column_tiles = s.G * (tiles(s.f, columns_per_slot(2, false)) + 2 * tiles(s.d, 64) + pass_a);
  r.group_ok = !group_kernel || degenerate(s) ||
               (grouped ? be.group_calls == be.gemm_calls && be.group_fallbacks == 0 && be.column_tiles == column_tiles
                        : be.group_calls == 0 && be.group_fallbacks == be.gemm_calls);
  // shared: every weight-gradient call on that path when it takes the products (16-bit, E ≤ 32), none
  // otherwise; `de` by the warp order in every chunk.
  const bool shared = wgrad == CudaWgrad::shared && dtype != CudaDType::f32 && wgrad_pass_rows(int(s.E)) > 0;
  r.wgrad_ok = wgrad != CudaWgrad::shared || degenerate(s) ||
               ((shared ? be.wgrad_shared_calls == be.weight_grad_calls && be.wgrad_fallbacks == 0
                        : be.wgrad_shared_calls == 0 && be.wgrad_fallbacks == be.weight_grad_calls) &&
                be.de_warp_calls == be.weight_grad_calls / 3);
  for (int i = 0; i < kOutputs; ++i) {
    r.out[i].resize(out[i].size());
    for (size_t j = 0; j < out[i].size(); ++j) r.out[i][j] = to_f(out[i][j]);
  }
  return r;
}

// Both pairs on one case, each against the float64 references, with the calls each must make: per chunk
// the forward runs 2 GEMMs (3 merged products), the backward 2 GEMMs and 3 weight-gradient calls; the
// plain backward's first GEMM has 3 merged products (a, b recomputed, dh), the training pair's only dh.
// float32: the training pair's outputs are the plain pair's bits (a, b saved exactly, consumed as recomputed).
template <typename T>
BackwardLayout run_case(const MoeShape& s, CudaDType dtype, size_t budget, const char* what,
                        CudaKernel kernel = CudaKernel::tile, CudaWgrad wgrad = CudaWgrad::tile) {
  const CaseData<T> in = make_case<T>(s);
  const ForwardLayout fl = plan_forward(s, dtype, budget);
  const BackwardLayout bl = plan_backward(s, dtype, budget);
  const bool sixteen = dtype != CudaDType::f32;
  const bool group_kernel = kernel == CudaKernel::group || kernel == CudaKernel::group_wide;
  const bool grouped = group_kernel && sixteen && s.E <= kWideKernelMaxTerms;
  const std::string group_tag = std::string("[") + kernel_name(kernel) + (grouped ? "] " : " → tile] ");
  std::vector<float> plain_bits[kOutputs];
  for (const bool train : {false, true}) {
    // As the check program's (check_main.cpp), every output: float32 1e-5; 16-bit 4u, the training pair 6u
    // (its backward's h, da, db also carry the roundings of the saved a, b).
    const double bound = !sixteen ? 1e-5 : (train ? 6 : 4) * 0x1p-8;
    const PairRun r = run_pair<T>(s, dtype, budget, kernel, wgrad, in, train);
    double worst = 0, worst_ratio = 0;
    bool ok = r.err.empty() && r.canary_ok;
    for (int i = 0; i < kOutputs; ++i) {
      if (i == 6 && !train) continue;
      const double e = segment_relative_error(r.out[i].data(), in.ref[i].data(), r.out[i].size(), output_segments(s, i));
      worst = std::max(worst, e);
      worst_ratio = std::max(worst_ratio, e / bound);
      ok = ok && e <= bound;
    }
    const long long fc = fl.plan.chunks, bc = bl.plan.chunks;
    const bool calls_ok =
        r.group_ok && r.wgrad_ok && (degenerate(s) ? r.fwd_gemms == 0 && r.bwd_gemms == 0 && r.weight_grads == 0
                                     : r.fwd_gemms == 2 * fc && r.bwd_gemms == 2 * bc && r.weight_grads == 3 * bc &&
                                           r.fwd_products == 3 * fc && r.bwd_products == (train ? 3 : 5) * bc);
    bool same_as_plain = true;
    if (!train)
      for (int i = 0; i < 6; ++i) plain_bits[i] = r.out[i];
    else if (!sixteen)
      for (int i = 0; i < 6; ++i)
        same_as_plain = same_as_plain && plain_bits[i].size() == r.out[i].size() &&
                        std::memcmp(plain_bits[i].data(), r.out[i].data(), r.out[i].size() * sizeof(float)) == 0;
    char msg[512];
    std::snprintf(msg, sizeof msg,
                  "%s%s%s%s G,T,d,f,E=%lld,%lld,%lld,%lld,%lld %s: %lld fwd / %lld bwd chunks%s, max error %.2e (%.2f of "
                  "bound)%s%s%s%s",
                  group_kernel ? group_tag.c_str() : "",
                  wgrad == CudaWgrad::shared
                      ? (sixteen && wgrad_pass_rows(int(s.E)) > 0 ? "[wgrad shared] " : "[wgrad shared → tile] ")
                      : "",
                  train ? "[train] " : "", what, (long long)s.G, (long long)s.T, (long long)s.d, (long long)s.f,
                  (long long)s.E, dtype_name(dtype), fc, bc, bl.has_dw_acc ? ", float32 dW accumulator" : "", worst,
                  worst_ratio, r.err.empty() ? "" : (" error: " + r.err).c_str(),
                  r.canary_ok ? "" : " WROTE PAST THE SCRATCH", calls_ok ? "" : " wrong number of kernel calls",
                  same_as_plain ? (train && !sixteen ? ", bits of the plain pair" : "") : " BITS DIFFER FROM THE PLAIN PAIR");
    expect(ok && calls_ok && same_as_plain, msg);
  }
  return bl;
}

}  // namespace

// Empty dimensions: every output that has elements is exactly 0, no GEMM or weight-gradient call.
template <typename T>
void run_empty(CudaDType dtype) {
  const MoeShape shapes[] = {{2, 0, 8, 8, 2}, {2, 3, 0, 8, 2}, {2, 3, 8, 0, 2}, {2, 3, 8, 8, 0}, {0, 3, 8, 8, 2}};
  const char* const names[] = {"T = 0", "d = 0", "f = 0", "E = 0", "G = 0"};
  for (int i = 0; i < 5; ++i) run_case<T>(shapes[i], dtype, size_t(256) << 20, names[i]);
}

// The group kernel's split of a chunk into groups: every segment in exactly one group, groups in order,
// only the last one partial, for G below, at and past multiples of the group size.
void check_segment_groups() {
  bool ok = segment_group_count(0, kGroupSegments) == 0;
  for (long long G = 1; G <= 41; ++G)
    for (int per = 1; per <= 8; ++per) {
      const long long groups = segment_group_count(G, per);
      ok = ok && groups == (G + per - 1) / per;
      long long next = 0;
      for (long long g = 0; g < groups; ++g) {
        const SegmentGroup grp = segment_group(g, G, per);
        ok = ok && grp.first == next && grp.count >= 1 && grp.count <= per && (grp.count == per || g + 1 == groups);
        next = grp.first + grp.count;
      }
      ok = ok && next == G;
    }
  expect(ok, "segment groups: G = 1…41 in groups of 1…8 cover every segment once, only the last group partial");
}

// Columns per slot of the group kernels: one 64-column staged tile shared by the slots, except
// group-wide's 3-slot jobs (32 each).
void check_columns_per_slot() {
  expect(columns_per_slot(1, false) == 64 && columns_per_slot(2, false) == 32 && columns_per_slot(3, false) == 16 &&
             columns_per_slot(1, true) == 64 && columns_per_slot(2, true) == 32 && columns_per_slot(3, true) == 32,
         "columns per slot: 64/32/16 for 1/2/3 slots; group-wide gives 3 slots 32");
}

// The group kernel's fallback decision (the GPU backend uses the same function): 16-bit, ≤ 64 experts,
// A row-major, 1–3 slots.
void check_wide_kernel_takes() {
  const Bf16 w[16] = {};
  SegmentJob<Bf16> job{};
  job.n_ph = 1, job.slots = 1, job.M = 4, job.N = 8;
  job.ph[0] = Phase<Bf16>{View<Bf16>{w, 32, 8, 1}, 8, 1, {merged_operand(w, 64, 8, 1, w, 64, 0)}};
  VectorFlags flags;
  const bool e64 = wide_kernel_takes(job, true, 1, &flags), f32 = wide_kernel_takes(job, false, 1, &flags);
  job.ph[0].b[0].terms = 65;
  const bool e65 = wide_kernel_takes(job, true, 1, &flags);
  job.ph[0].b[0].terms = 64, job.ph[0].a.cs = 8, job.ph[0].a.rs = 1;
  const bool a_cols = wide_kernel_takes(job, true, 1, &flags);
  job.ph[0].a.cs = 1, job.ph[0].a.rs = 8;
  const bool grid = wide_kernel_takes(job, true, 0x80000000LL, &flags);
  expect(e64 && !f32 && !e65 && !a_cols && !grid,
         "wide kernels take E = 64 in 16 bits; not float32, E = 65, column-major A or 2^31 blocks");
}

// The shared weight-gradient kernel's passes: 64, 32 or 16 rows by E, and for every M the passes of each
// 64-row tile cover its rows once, in order.
void check_wgrad_passes() {
  bool rows_ok = wgrad_pass_rows(0) == 0 && wgrad_pass_rows(33) == 0 && wgrad_pass_rows(1000) == 0;
  for (int E = 1; E <= 32; ++E) rows_ok = rows_ok && wgrad_pass_rows(E) == (E <= 8 ? 64 : E <= 16 ? 32 : 16);
  bool cover_ok = true;
  for (int M = 1; M <= 200; ++M)
    for (int rows = 64; rows >= 16; rows /= 2)
      for (int m0 = 0; m0 < M; m0 += kWgradTile) {
        int next = m0;
        for (int p = 0; p * rows < kWgradTile; ++p) {
          const RowRange rr = wgrad_pass(m0, M, rows, p);
          if (rr.count == 0) break;
          cover_ok = cover_ok && rr.first == next && rr.count >= 1 && rr.count <= rows;
          next = rr.first + rr.count;
        }
        cover_ok = cover_ok && next == std::min(m0 + kWgradTile, M);
      }
  expect(rows_ok && cover_ok, "shared wgrad: 64/32/16-row passes for E ≤ 8/16/32, none past 32; passes cover each "
                              "64-row tile once for M = 1…200");
}

// Which products the shared kernel takes (the GPU backend uses the same function): 16-bit, E ≤ 32,
// A = a transposed activation (unit row stride), B plain with unit column stride; vectors when aligned.
void check_wgrad_shared_takes() {
  alignas(16) const Bf16 x[64] = {};
  Phase<Bf16> prod{View<Bf16>{x, 32, 1, 8}, 4, 1, {MergedOperand<Bf16>{x, 0, 8, 1, 32, nullptr, 0, 1, 0}}};
  bool vec = false, vec_odd = true;
  const bool e32 = wgrad_shared_takes(prod, true, 32, &vec), e33 = wgrad_shared_takes(prod, true, 33, &vec_odd);
  const bool f32 = wgrad_shared_takes(prod, false, 8, &vec_odd);
  Phase<Bf16> odd = prod;
  odd.a.cs = 7;
  const bool odd_taken = wgrad_shared_takes(odd, true, 8, &vec_odd);
  Phase<Bf16> rows_a = prod;
  rows_a.a.rs = 8, rows_a.a.cs = 1;
  Phase<Bf16> merged = prod;
  merged.b[0].coef = x;
  expect(e32 && vec && !e33 && !f32 && odd_taken && !vec_odd && !wgrad_shared_takes(rows_a, true, 8, &vec) &&
             !wgrad_shared_takes(merged, true, 8, &vec),
         "shared wgrad takes 16-bit E ≤ 32 with A transposed and plain B (vectors only when aligned); not float32, "
         "E = 33, row-major A or a merged B");
}

// The warp-per-output `de` order counts every tile once: integer partials (exact in float) sum to the
// exact total for 1…100 tiles, at every output of 3.
void check_de_warp_order() {
  bool ok = true;
  for (long long tiles = 1; tiles <= 100; ++tiles) {
    const long long n = 3;
    std::vector<float> partial(size_t(tiles * n));
    for (long long t = 0; t < tiles; ++t)
      for (long long j = 0; j < n; ++j) partial[size_t(t * n + j)] = float((t + 1) * (j + 1));
    for (long long j = 0; j < n; ++j) {
      float lanes[kDeLanes];
      for (int l = 0; l < kDeLanes; ++l) lanes[l] = de_lane_sum(partial.data(), tiles, n, j, l);
      ok = ok && de_tree_sum(lanes) == float((j + 1) * tiles * (tiles + 1) / 2);
    }
  }
  expect(ok, "de by one warp per output: every tile's partial counted once (1…100 tiles, 3 outputs)");
}

int main() {
  check_segment_groups();
  check_wide_kernel_takes();
  check_columns_per_slot();
  check_wgrad_passes();
  check_wgrad_shared_takes();
  check_de_warp_order();
  const size_t big = size_t(256) << 20;
  run_case<float>({3, 7, 40, 72, 3}, CudaDType::f32, big, "one chunk");
  const BackwardLayout f32_chunks = run_case<float>({5, 33, 96, 160, 8}, CudaDType::f32, size_t(64) << 10, "64 KiB budget");
  run_case<float>({2, 13, 17, 29, 12}, CudaDType::f32, size_t(8) << 10, "8 KiB budget, E > 8, odd sizes");
  run_case<float>({1, 13, 17, 29, 1}, CudaDType::f32, big, "G=1, E=1");
  run_case<Bf16>({3, 7, 40, 72, 3}, CudaDType::bf16, big, "one chunk");
  run_case<Bf16>({5, 33, 96, 160, 8}, CudaDType::bf16, size_t(64) << 10, "64 KiB budget");
  const BackwardLayout with_acc = run_case<Bf16>({100, 9, 24, 40, 4}, CudaDType::bf16, size_t(96) << 10, "96 KiB budget");
  const BackwardLayout single =
      run_case<Bf16>({7, 5, 130, 70, 2}, CudaDType::bf16, size_t(1) << 10, "1 KiB budget: one segment per chunk");
  // Issue 25: 64 chunks. dW rounded to bfloat16 once per chunk (the old mode for dW state over half the
  // budget) lands far beyond 4u here; the float32 accumulator keeps it at a fraction of it.
  const BackwardLayout many =
      run_case<Bf16>({64, 4, 24, 40, 4}, CudaDType::bf16, size_t(1) << 10, "1 KiB budget, 64 chunks");
  // The group kernel: G below, at and past multiples of the group size (4), partial last groups in
  // every chunk, one segment per chunk, 64 chunks; E > 64 and float32 fall back to the tile path.
  const CudaKernel group = CudaKernel::group;
  run_case<Bf16>({3, 7, 40, 72, 3}, CudaDType::bf16, big, "one partial group", group);
  run_case<Bf16>({8, 6, 24, 40, 3}, CudaDType::bf16, big, "two full groups", group);
  run_case<Bf16>({13, 9, 24, 40, 5}, CudaDType::bf16, big, "G = 13: 3 groups + 1", group);
  run_case<Bf16>({5, 33, 96, 160, 8}, CudaDType::bf16, size_t(64) << 10, "64 KiB budget", group);
  run_case<Bf16>({100, 9, 24, 40, 4}, CudaDType::bf16, size_t(96) << 10, "96 KiB budget", group);
  run_case<Bf16>({7, 5, 130, 70, 2}, CudaDType::bf16, size_t(1) << 10, "1 KiB budget: one segment per chunk", group);
  run_case<Bf16>({64, 4, 24, 40, 4}, CudaDType::bf16, size_t(1) << 10, "1 KiB budget, 64 chunks", group);
  run_case<Bf16>({2, 5, 16, 24, 65}, CudaDType::bf16, big, "E = 65", group);
  run_case<Bf16>({6, 5, 16, 24, 64}, CudaDType::bf16, big, "E = 64", group);
  run_case<float>({5, 7, 40, 72, 3}, CudaDType::f32, big, "float32", group);
  // The shared weight-gradient path (LORY_CUDA_MOE_WGRAD=shared): 64-row passes (E ≤ 8), 32 (E = 12, odd
  // sizes, partial passes), 16 (E = 20, 32), chunks with and without the float32 dW state, beside the group
  // kernel; E = 33 and float32 fall back to the tile path.
  const CudaWgrad shared = CudaWgrad::shared;
  run_case<Bf16>({3, 7, 40, 72, 3}, CudaDType::bf16, big, "one chunk", CudaKernel::tile, shared);
  run_case<Bf16>({5, 33, 96, 160, 8}, CudaDType::bf16, size_t(64) << 10, "64 KiB budget", CudaKernel::tile, shared);
  run_case<Bf16>({2, 13, 17, 29, 12}, CudaDType::bf16, big, "E = 12, odd sizes", CudaKernel::tile, shared);
  run_case<Bf16>({2, 9, 70, 100, 12}, CudaDType::bf16, big, "E = 12, partial passes", CudaKernel::tile, shared);
  run_case<Bf16>({3, 9, 40, 72, 20}, CudaDType::bf16, big, "E = 20: 16-row passes", CudaKernel::tile, shared);
  run_case<Bf16>({2, 5, 16, 24, 32}, CudaDType::bf16, big, "E = 32", CudaKernel::tile, shared);
  run_case<Bf16>({2, 5, 16, 24, 33}, CudaDType::bf16, big, "E = 33", CudaKernel::tile, shared);
  run_case<Bf16>({64, 4, 24, 40, 4}, CudaDType::bf16, size_t(1) << 10, "1 KiB budget, 64 chunks", CudaKernel::tile,
                 shared);
  run_case<Bf16>({100, 9, 24, 40, 4}, CudaDType::bf16, size_t(96) << 10, "96 KiB budget", group, shared);
  run_case<float>({5, 7, 40, 72, 3}, CudaDType::f32, big, "float32", CudaKernel::tile, shared);
  // group-wide: 32 columns per slot for backward pass A (3 slots); partial column tiles (f = 40, 72, 100),
  // partial groups, chunks; float32 and E > 64 fall back to the tile kernel.
  const CudaKernel wide = CudaKernel::group_wide;
  run_case<Bf16>({3, 7, 40, 72, 3}, CudaDType::bf16, big, "one partial group", wide);
  run_case<Bf16>({13, 9, 70, 100, 5}, CudaDType::bf16, big, "G = 13, f = 100", wide);
  run_case<Bf16>({100, 9, 24, 40, 4}, CudaDType::bf16, size_t(96) << 10, "96 KiB budget", wide, shared);
  run_case<Bf16>({2, 5, 16, 24, 65}, CudaDType::bf16, big, "E = 65", wide);
  run_case<float>({5, 7, 40, 72, 3}, CudaDType::f32, big, "float32", wide);
  run_empty<float>(CudaDType::f32);
  run_empty<Bf16>(CudaDType::bf16);
  expect(f32_chunks.plan.chunks > 1 && !f32_chunks.has_dw_acc, "float32 across chunks: dW accumulated in place");
  expect(with_acc.plan.chunks > 1 && with_acc.has_dw_acc && single.plan.segments_per_chunk == 1 && single.has_dw_acc &&
             many.plan.chunks == 64 && many.has_dw_acc,
         "bfloat16 across chunks with the float32 dW accumulator, down to one segment per chunk and 64 chunks");
  std::printf(failures ? "%d FAILED\n" : "all passed\n", failures);
  return failures ? 1 : 0;
}
