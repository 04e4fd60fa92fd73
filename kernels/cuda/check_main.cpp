// Standalone check of the CUDA kernels: the merged-expert FFN's forward and backward on random inputs vs.
// a CPU reference, as the plain pair (LoryMoEFFN / LoryMoEFFNGrad) and, on the shapes marked for it, as the
// training pair (LoryMoEFFNTrain / LoryMoEFFNTrainGrad: the forward also returns ab = a, b, the backward
// reads them), with relative error bounds per precision, bit-for-bit determinism of two runs, timing
// (TFLOP/s), and side by side a dense SwiGLU FFN of the same d, f through cuBLAS (loaded at run time;
// skipped where absent) and the ideal overhead line 1 + E/(2T); then the fused AdamW update (AdamWUpdate,
// float32) against its float64 reference and, on a GPU, the CPU kernel's bits. Needs no Node and no network.
//   check [--cpu-only] [--quick] [--repeats N] [--cases N] [--shape G,T,d,f,E]... [--inject-error]
//         [--kernel tile|segment|group|group-wide|both|all] [--wgrad tile|shared|all] [--no-dense] [--cublas-search] [--gemm-peak [--gemm-size N]]
// --wgrad: the weight-gradient path(s) each kernel's rows run with (default tile); shared rows are labelled
// "<kernel>+sw" (float32 runs the tile path under either, so it has one row).
// --cases N keeps the first N shapes; --shape (repeatable) runs just those shapes of the table, with their
// budgets, and skips the pending-error probe (an explicit list under compute-sanitizer).
// --inject-error perturbs one element of every output (in its smallest-magnitude segment) by 3x the
// precision's bound: every row (AdamW's too) must then FAIL in every output that has elements.
// --cpu-only runs the same flow without a GPU: the fast CPU kernel plays the device, its float32 results
// rounded to each precision's storage format, so the harness (bounds, injection, determinism) is
// testable on machines without CUDA. Shapes with an empty dimension run on a GPU only (the CPU kernel
// does not take them).
// --cublas-search (GPU build, no device needed): where the dense baseline looks for cuBLAS, and what loads.
// --gemm-peak (GPU build): only the measured bf16 matmul peak, the MFU denominator of bin/gpu-check: one
// cuBLAS N×N×N bf16 GEMM (N = --gemm-size, default 8192) on random data, median of --repeats (default 20).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "check_error.h"
#include "lory/adamw.h"
#include "lory/moe_cpu.h"
#include "lory/moe_reference.h"
#include "moe_cuda_plan.h"
#ifdef LORY_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <dlfcn.h>

#include "adamw_cuda.h"
#include "check_cublas.h"
#include "moe_cuda.h"
#endif

using namespace lory;

namespace {

const CudaDType kPrecisions[3] = {CudaDType::f32, CudaDType::f16, CudaDType::bf16};
// The plain pair's six outputs, then the training forward's ab [2,G,T,f] (empty in plain rows).
constexpr int kOutputs = 7, kAb = 6;
const char* const kOutputNames[kOutputs] = {"y", "dx", "de", "dW_gate", "dW_up", "dW_down", "ab"};

// Bounds on max|got − ref| / max|ref| per output and per segment (check_error.h), from the reference's
// own float32-vs-float64 error:
//  * the fast CPU kernel (float32, another summation order than the float64 reference) lands at
//    2e-7 … 1.2e-6 on these shapes (moe_kernel_test; printed here as "e32" for every float64 case);
//    float32 on the GPU only changes the order again, so 1e-5 (≥ 8x the largest e32) bounds it, and the
//    check fails if e32 itself ever exceeds bound/8, which would void that argument;
//  * float16/bfloat16: e32 is negligible next to storage roundings: the merged B tile, h (and da, db)
//    and each output are rounded to the type, each ≤ u/2 relative (u = 2^-11 for float16, 2^-8 for
//    bfloat16), and K-long sums average them, so 4u (2.0e-3, 1.6e-2) leaves a margin of ~2 roundings
//    while a missing expert term (≈ 1/E), K step (≥ 3%) or tile breaks it;
//  * the same for dW at any number of chunks: 16-bit dW crosses chunks in float32 (moe_cuda_plan.h), so
//    no per-chunk rounding adds up (rounding per chunk cost ~√C·u/2, ≈ 1% at 98 chunks in bfloat16);
//  * the training pair in 16 bits: 6u. Its ab output is rounded to the type, and the backward's h, da, db
//    are computed from those rounded a, b: twice the rounding terms upstream of dx, de and dW, so errors
//    ~√2 times the plain pair's (the host emulation measured 1.4x on `de` over 40 seeds); 4u·√2 → 6u.
//    float32 saves a, b exactly: 1e-5 as for the plain pair.
double unit_roundoff(CudaDType t) { return t == CudaDType::f32 ? 0x1p-24 : t == CudaDType::f16 ? 0x1p-11 : 0x1p-8; }
double base_bound(CudaDType t) { return t == CudaDType::f32 ? 1e-5 : 4 * unit_roundoff(t); }
double row_bound(CudaDType t, bool train) { return train && t != CudaDType::f32 ? 6 * unit_roundoff(t) : base_bound(t); }

struct Tensors {
  std::vector<float> x, e, wg, wu, wd, dy;
};
struct Outputs {
  std::vector<float> out[kOutputs];  // y, dx, de, dW_gate, dW_up, dW_down, ab (training pair only)
  double fwd_ms = 0, bwd_ms = 0;
  bool deterministic = true;  // two runs gave the same bits
};

float round_to_bf16(float v) {  // nearest-even; the check's inputs are exactly representable in bf16
  uint32_t u;
  std::memcpy(&u, &v, 4);
  u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  std::memcpy(&v, &u, 4);
  return v;
}

float round_to_f16(float v) {  // nearest-even to IEEE binary16 (the test values are far from its limits)
  if (!std::isfinite(v) || v == 0.f) return v;
  const float a = std::fabs(v);
  if (a >= 65520.f) return std::copysign(INFINITY, v);
  const int exp = std::max(std::ilogb(a), -14);  // below 2^-14: subnormal spacing 2^-24
  const float ulp = std::ldexp(1.f, exp - 10);
  return std::copysign(std::nearbyint(a / ulp) * ulp, v);
}

float round_to(CudaDType t, float v) {
  return t == CudaDType::f32 ? v : t == CudaDType::f16 ? round_to_f16(v) : round_to_bf16(v);
}

// live_ends > 0: x is 0 in all but the first and last live_ends segments. Their outputs (y, dx, de) are
// then exactly 0 in every precision, and dW sums a few segments, not tens of thousands (a float32 sum
// over 65537 segments alone errs by ~1e-5, the float32 bound).
Tensors random_tensors(const MoeShape& s, unsigned seed, int64_t live_ends) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  auto fill = [&](int64_t n, float scale, float shift) {
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& a : v) a = round_to_bf16(shift + scale * u(rng));
    return v;
  };
  // x and dy of segment g scaled by 2^-(g mod 4) (exact): segment magnitudes up to 8x apart, so an error
  // confined to a small segment shows in the per-segment metric and not in a whole-output one.
  auto by_segment = [&](std::vector<float> v) {
    const size_t per = size_t(s.T * s.d);
    for (size_t i = 0; i < v.size(); ++i) v[i] = std::ldexp(v[i], -int(i / per % 4));
    return v;
  };
  Tensors t;
  t.x = by_segment(fill(s.x_elems(), 1.f, 0.f));
  if (live_ends > 0)
    for (int64_t g = live_ends; g < s.G - live_ends; ++g) std::fill_n(t.x.begin() + g * s.T * s.d, s.T * s.d, 0.f);
  t.e = fill(s.e_elems(), 0.5f / float(s.E), 1.f / float(s.E));  // softmax-like: positive, sums ≈ 1
  t.wg = fill(s.w_elems(), 1.7f / std::sqrt(float(s.d)), 0.f);
  t.wu = fill(s.w_elems(), 1.7f / std::sqrt(float(s.d)), 0.f);
  t.wd = fill(s.w_elems(), 1.7f / std::sqrt(float(s.f)), 0.f);
  t.dy = by_segment(fill(s.x_elems(), 1.f, 0.f));
  return t;
}

template <typename F>
double median_ms(int repeats, F&& run_once_ms) {
  std::vector<double> t;
  for (int r = 0; r < repeats; ++r) t.push_back(run_once_ms());
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

double wall_ms(const std::function<void()>& f) {
  const auto a = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count();
}

bool same_bits(const Outputs& a, const Outputs& b) {
  for (int i = 0; i < kOutputs; ++i)
    if (a.out[i].size() != b.out[i].size() ||
        std::memcmp(a.out[i].data(), b.out[i].data(), a.out[i].size() * sizeof(float)) != 0)
      return false;
  return true;
}

// Elements of output i; ab only for the training pair.
int64_t output_elems(const MoeShape& s, int i, bool train) {
  return i < 2 ? s.x_elems() : i == 2 ? s.e_elems() : i < kAb ? s.w_elems() : train ? 2 * s.G * s.T * s.f : 0;
}

// The fast CPU kernel: the plain pair, or the training pair (`train`: the forward saves a, b into ab).
Outputs run_cpu_fast(const MoeShape& s, const Tensors& in, int repeats, int threads, size_t budget, bool train) {
  MoeCpuOptions opt;
  opt.scratch_budget_bytes = budget;
  auto once = [&](int reps) {
    Outputs o;
    for (int i = 0; i < kOutputs; ++i) o.out[i].assign(size_t(output_elems(s, i, train)), NAN);
    float* saved = train ? o.out[kAb].data() : nullptr;
    std::vector<float> scratch(
        std::max(moe_forward_scratch_floats(s, opt, train), moe_backward_scratch_floats(s, opt)));
    const ParallelFor par = thread_for(threads);
    auto fwd = [&] {
      moe_forward(s, in.x.data(), in.e.data(), in.wg.data(), in.wu.data(), in.wd.data(), o.out[0].data(),
                  saved, scratch.data(), par, opt);
    };
    auto bwd = [&] {
      moe_backward(s, in.x.data(), in.e.data(), in.wg.data(), in.wu.data(), in.wd.data(), in.dy.data(),
                   saved, o.out[1].data(), o.out[2].data(), o.out[3].data(), o.out[4].data(), o.out[5].data(),
                   scratch.data(), par, opt);
    };
    o.fwd_ms = median_ms(reps, [&] { return wall_ms(fwd); });
    o.bwd_ms = median_ms(reps, [&] { return wall_ms(bwd); });
    return o;
  };
  Outputs o = once(repeats);
  o.deterministic = same_bits(o, once(1));
  return o;
}

// The float64 reference of every output (ab too when `train`).
Outputs run_reference(const MoeShape& s, const Tensors& in, bool train) {
  std::vector<double> y(s.x_elems()), dx(s.x_elems()), de(s.e_elems()), dwg(s.w_elems()), dwu(s.w_elems()),
      dwd(s.w_elems()), ab(size_t(output_elems(s, kAb, train)));
  moe_forward_reference(s, in.x.data(), in.e.data(), in.wg.data(), in.wu.data(), in.wd.data(), y.data());
  moe_backward_reference(s, in.x.data(), in.e.data(), in.wg.data(), in.wu.data(), in.wd.data(), in.dy.data(),
                         dx.data(), de.data(), dwg.data(), dwu.data(), dwd.data());
  if (train) moe_saved_reference(s, in.x.data(), in.e.data(), in.wg.data(), in.wu.data(), ab.data());
  auto to_f = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
  Outputs o;
  o.out[0] = to_f(y), o.out[1] = to_f(dx), o.out[2] = to_f(de), o.out[3] = to_f(dwg), o.out[4] = to_f(dwu);
  o.out[5] = to_f(dwd), o.out[kAb] = to_f(ab);
  return o;
}

#ifdef LORY_WITH_CUDA
#define CUDA_OK(expr)                                                                                   \
  do {                                                                                                  \
    cudaError_t err_ = (expr);                                                                          \
    if (err_ != cudaSuccess) {                                                                          \
      std::fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorString(err_), __FILE__, __LINE__, #expr); \
      std::exit(3);                                                                                     \
    }                                                                                                   \
  } while (0)

// Milliseconds the work `run` enqueues on `stream` takes, between two events recorded around it.
template <typename Run>
double event_ms(cudaStream_t stream, cudaEvent_t start, cudaEvent_t stop, const Run& run) {
  CUDA_OK(cudaEventRecord(start, stream));
  run();
  CUDA_OK(cudaEventRecord(stop, stream));
  CUDA_OK(cudaEventSynchronize(stop));
  float ms = 0;
  CUDA_OK(cudaEventElapsedTime(&ms, start, stop));
  return double(ms);
}

std::vector<unsigned char> encode(const std::vector<float>& v, CudaDType p) {
  std::vector<unsigned char> out(v.size() * element_size(p));
  for (size_t i = 0; i < v.size(); ++i) {
    if (p == CudaDType::f32) std::memcpy(&out[i * 4], &v[i], 4);
    else if (p == CudaDType::f16) { __half h = __float2half_rn(v[i]); std::memcpy(&out[i * 2], &h, 2); }
    else { __nv_bfloat16 h = __float2bfloat16_rn(v[i]); std::memcpy(&out[i * 2], &h, 2); }
  }
  return out;
}

std::vector<float> decode(const std::vector<unsigned char>& raw, CudaDType p, size_t n) {
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (p == CudaDType::f32) std::memcpy(&out[i], &raw[i * 4], 4);
    else if (p == CudaDType::f16) { __half h; std::memcpy(&h, &raw[i * 2], 2); out[i] = __half2float(h); }
    else { __nv_bfloat16 h; std::memcpy(&h, &raw[i * 2], 2); out[i] = __bfloat162float(h); }
  }
  return out;
}

struct DeviceBuffer {
  void* p = nullptr;
  size_t bytes = 0;
  explicit DeviceBuffer(size_t n) : bytes(n) { CUDA_OK(cudaMalloc(&p, std::max<size_t>(n, 256))); }
  ~DeviceBuffer() { cudaFree(p); }
};

Outputs run_cuda(const MoeShape& s, const Tensors& in, CudaDType p, const MoeCudaOptions& opt, int repeats, bool train) {
  const size_t es = element_size(p);
  auto upload = [&](const std::vector<float>& v) {
    auto raw = encode(v, p);
    auto* b = new DeviceBuffer(raw.size());
    CUDA_OK(cudaMemcpy(b->p, raw.data(), raw.size(), cudaMemcpyHostToDevice));
    return b;
  };
  std::unique_ptr<DeviceBuffer> x(upload(in.x)), e(upload(in.e)), wg(upload(in.wg)), wu(upload(in.wu)),
      wd(upload(in.wd)), dy(upload(in.dy));
  DeviceBuffer y(s.x_elems() * es), dx(s.x_elems() * es), de(s.e_elems() * es), dwg(s.w_elems() * es),
      dwu(s.w_elems() * es), dwd(s.w_elems() * es), ab(output_elems(s, kAb, train) * es);
  const DeviceBuffer* outs[kOutputs] = {&y, &dx, &de, &dwg, &dwu, &dwd, &ab};
  void* saved = train ? ab.p : nullptr;
  // Pre-fill the outputs with NaN (0xFF.. is NaN in float32, float16 and bfloat16): an element the kernel
  // never writes then fails the check instead of passing as cudaMalloc's (often zero) contents.
  auto poison = [&] {
    for (const DeviceBuffer* b : outs) CUDA_OK(cudaMemset(b->p, 0xFF, b->bytes));
  };
  poison();
  DeviceBuffer scratch(std::max(moe_cuda_forward_scratch_bytes(s, p, opt), moe_cuda_backward_scratch_bytes(s, p, opt)));
  cudaStream_t stream;
  CUDA_OK(cudaStreamCreate(&stream));
  cudaEvent_t start, stop;
  CUDA_OK(cudaEventCreate(&start));
  CUDA_OK(cudaEventCreate(&stop));
  auto check = [](const std::string& err) {
    if (!err.empty()) { std::fprintf(stderr, "%s\n", err.c_str()); std::exit(3); }
  };
  auto fwd = [&] {
    check(moe_cuda_forward(s, p, x->p, e->p, wg->p, wu->p, wd->p, y.p, saved, scratch.p, stream, opt));
  };
  auto bwd = [&] {
    check(moe_cuda_backward(s, p, x->p, e->p, wg->p, wu->p, wd->p, dy->p, saved, dx.p, de.p, dwg.p, dwu.p, dwd.p,
                            scratch.p, stream, opt));
  };
  auto timed = [&](const std::function<void()>& f) { return event_ms(stream, start, stop, f); };
  auto download_all = [&] {
    std::vector<std::vector<unsigned char>> raw(kOutputs);
    CUDA_OK(cudaStreamSynchronize(stream));
    for (int i = 0; i < kOutputs; ++i) {
      raw[i].resize(outs[i]->bytes);
      CUDA_OK(cudaMemcpy(raw[i].data(), outs[i]->p, outs[i]->bytes, cudaMemcpyDeviceToHost));
    }
    return raw;
  };
  fwd();  // first run: results kept for the determinism comparison
  bwd();
  const auto first = download_all();
  Outputs o;
  o.fwd_ms = median_ms(repeats, [&] { return timed(fwd); });
  o.bwd_ms = median_ms(repeats, [&] { return timed(bwd); });
  poison();  // the last run must write every element again
  fwd();
  bwd();
  const auto last = download_all();
  o.deterministic = first == last;
  for (int i = 0; i < kOutputs; ++i) o.out[i] = decode(last[i], p, outs[i]->bytes / es);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaStreamDestroy(stream);
  return o;
}

// An error left pending on the thread by earlier work (here a failed cudaMalloc) must be reported by the
// next call as pending and stay set for its owner; once it is cleared, the next call succeeds.
// Returns false on a wrong answer; skipped (true) when the runtime did not record the provoked error.
bool pending_error_probe() {
  const MoeShape s{1, 4, 8, 8, 2};
  DeviceBuffer x(s.x_elems() * 4), e(s.e_elems() * 4), w(s.w_elems() * 4), y(s.x_elems() * 4),
      scratch(moe_cuda_forward_scratch_bytes(s, CudaDType::f32));
  CUDA_OK(cudaMemset(x.p, 0, x.bytes));
  CUDA_OK(cudaMemset(e.p, 0, e.bytes));
  CUDA_OK(cudaMemset(w.p, 0, w.bytes));
  void* huge = nullptr;
  const cudaError_t provoked = cudaMalloc(&huge, size_t(1) << 62);
  if (provoked == cudaSuccess) cudaFree(huge);
  if (provoked == cudaSuccess || cudaPeekAtLastError() != provoked) {
    cudaGetLastError();
    std::printf("pending-error probe: skipped (a failed cudaMalloc left no pending error to test with)\n");
    return true;
  }
  // The FFN's entry point, then AdamW's (x stands in for p, g, m, v, and hyper: zeros, 7 ≤ its elements).
  const float* z = static_cast<const float*>(x.p);
  float* out = static_cast<float*>(y.p);
  const std::string pending = moe_cuda_forward(s, CudaDType::f32, x.p, e.p, w.p, w.p, w.p, y.p, nullptr, scratch.p, nullptr);
  const std::string pending_adamw = cuda_adamw_update(8, z, z, z, z, z, out, out + 8, out + 16, nullptr);
  const cudaError_t left = cudaGetLastError();
  const std::string clean = moe_cuda_forward(s, CudaDType::f32, x.p, e.p, w.p, w.p, w.p, y.p, nullptr, scratch.p, nullptr);
  const std::string clean_adamw = cuda_adamw_update(8, z, z, z, z, z, out, out + 8, out + 16, nullptr);
  const cudaError_t after = cudaDeviceSynchronize();
  const bool ok = pending.find("pending") != std::string::npos && pending_adamw.find("pending") != std::string::npos &&
                  left == provoked && clean.empty() && clean_adamw.empty() && after == cudaSuccess;
  std::printf("pending-error probe: %s (with an error pending: '%s', AdamW '%s'; left set: %s; next calls: '%s', '%s')\n",
              ok ? "ok" : "FAIL", pending.c_str(), pending_adamw.c_str(), left == provoked ? "yes" : "no",
              clean.c_str(), clean_adamw.c_str());
  return ok;
}

// --cublas-search: every candidate in order, and the first that dlopen accepts (no handle, no device).
int cublas_search() {
  const std::vector<std::string> candidates = cublas_candidates();
  std::printf("cuBLAS candidates, in order:\n");
  for (const std::string& c : candidates) std::printf("  %s\n", c.c_str());
  for (const std::string& c : candidates)
    if (void* lib = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL)) {
      std::printf("loads: %s\n", c.c_str());
      dlclose(lib);
      return 0;
    }
  std::printf("none loads\n");
  return 1;
}
#endif

// Segments of output i (y and dx: G blocks of T·d; de: G blocks of E; ab: 2G blocks of T·f, a and b of each
// segment; dW: one block).
size_t output_segments(const MoeShape& s, int i) { return i < 3 ? size_t(s.G) : i == kAb ? size_t(2 * s.G) : 1; }

double output_error(const MoeShape& s, int i, const std::vector<float>& got, const std::vector<float>& ref) {
  return segment_relative_error(got.data(), ref.data(), ref.size(), output_segments(s, i));
}

// Adds `bound` × 3 relative to the smallest-magnitude segment of output i (the one a whole-output metric
// would miss), at its middle element; all-zero references get 3 × bound × 1e-30 (check_error.h's floor).
void inject(const MoeShape& s, int i, double bound, const std::vector<float>& ref, std::vector<float>& got) {
  const size_t n = ref.size(), segments = output_segments(s, i), per = n / std::max<size_t>(segments, 1);
  size_t best = 0;
  double best_scale = INFINITY;
  for (size_t g = 0; g < segments && per > 0; ++g) {
    double m = 0;
    for (size_t k = g * per; k < (g + 1) * per; ++k) m = std::max(m, double(std::abs(ref[k])));
    if (m < best_scale) best_scale = m, best = g;
  }
  if (per == 0) return;
  got[best * per + per / 2] += float(3 * bound * std::max(best_scale, 1e-30));
}

bool empty_dimension(const MoeShape& s) { return s.G == 0 || s.T == 0 || s.d == 0 || s.f == 0 || s.E == 0; }

// Which runs take a shape: --cpu-only --quick, --cpu-only, --quick (GPU), the full GPU table.
enum : unsigned { kCpuQuick = 1, kCpu = 2, kGpuQuick = 4, kGpu = 8 };
constexpr unsigned kEverywhere = kCpuQuick | kCpu | kGpuQuick | kGpu, kSmall = kCpu | kGpuQuick | kGpu,
                   kGpuOnly = kGpuQuick | kGpu;

struct Case {
  MoeShape s;
  bool float64_reference;  // small shapes: naive float64; large: the fast CPU kernel (tested against it)
  int repeats;
  size_t budget;  // scratch budget: small ones force chunks
  unsigned runs;  // kCpuQuick | kCpu | kGpuQuick | kGpu
  int64_t live_ends = 0;  // > 0: only that many segments at each end have nonzero x (random_tensors)
  bool train = false;     // also run the training pair (rows "train"); kept to small shapes (gpu-run's time)
};
constexpr bool kTrainPair = true;

std::string shape_name(const MoeShape& s) {
  char b[96];
  std::snprintf(b, sizeof b, "%lld,%lld,%lld,%lld,%lld", (long long)s.G, (long long)s.T, (long long)s.d,
                (long long)s.f, (long long)s.E);
  return b;
}

struct Args {
  bool cpu_only = false, quick = false, inject_error = false, dense = true, cublas_search = false, gemm_peak = false;
  int repeats = 0, cases = 0;
  long long gemm_size = 8192;
  std::vector<std::string> shapes;
  std::vector<CudaKernel> kernels = {CudaKernel::tile, CudaKernel::segment, CudaKernel::group,
                                     CudaKernel::group_wide};  // all
  std::vector<CudaWgrad> wgrads = {CudaWgrad::tile};
};

int usage() {
  std::fprintf(stderr,
               "usage: check [--cpu-only] [--quick] [--repeats N] [--cases N] [--shape G,T,d,f,E]... "
               "[--inject-error] [--kernel tile|segment|group|group-wide|both|all] [--wgrad tile|shared|all] [--no-dense] "
               "[--cublas-search] [--gemm-peak [--gemm-size N]]\n");
  return 2;
}

#ifdef LORY_WITH_CUDA
// --gemm-peak: one machine-readable line (bin/gpu-check parses `tflops=`); exit 1 when cuBLAS fails.
int gemm_peak(const Args& args) {
  DenseCublas cublas;
  const int repeats = args.repeats ? args.repeats : 20;
  double ms = 0, tflops = 0;
  const std::string err = cublas.time_gemm(CudaDType::bf16, args.gemm_size, repeats, &ms, &tflops);
  if (!err.empty()) return std::fprintf(stderr, "gemm peak: %s\n", err.c_str()), 1;
  std::printf("gemm peak bfloat16 n=%lld repeats=%d median_ms=%.4f tflops=%.1f library=%s\n", args.gemm_size, repeats, ms,
              tflops, cublas.library().c_str());
  return 0;
}
#endif

// Every shape of the check, with the runs that take it. kTrainPair: the training pair runs too, on a
// subset that keeps gpu-run within its time: the chunked cases, odd sizes, E > 8 and > 64, the segment
// kernel's row blocks, the empty dimensions and the bench layer's 2-segment shape. Not G = 65537: its
// weight-gradient blocks walk all segments in turn (seconds per row), and `ab` is read and written at
// the positions of h, whose grid.z split the plain rows check.
std::vector<Case> all_cases() {
  const size_t kDefault = MoeCudaOptions{}.scratch_budget_bytes, k64KiB = size_t(64) << 10;
  return {
      {{3, 7, 40, 72, 3}, true, 3, kDefault, kEverywhere, 0, kTrainPair},   // T odd (no tile multiple); d, f multiples of 8, not 64
      {{40, 33, 96, 160, 8}, true, 3, k64KiB, kEverywhere, 0, kTrainPair},  // 64 KiB: ≥ 20 backward chunks, 4 segment scales
      {{5, 33, 96, 160, 8}, true, 3, k64KiB, kSmall, 0, kTrainPair},        // 64 KiB: 3–5 backward chunks, small (sanitizer)
      {{1, 128, 64, 96, 1}, true, 3, kDefault, kSmall},      // G=1, E=1
      {{1, 13, 17, 29, 1}, true, 3, kDefault, kSmall, 0, kTrainPair},       // odd T/d/f: partial tiles on every axis, odd row strides
      {{2, 13, 17, 29, 12}, true, 3, kDefault, kSmall, 0, kTrainPair},      // E > 8: two expert groups in the weight-gradient kernel
      {{4, 33, 96, 160, 8}, true, 3, kDefault, kSmall},
      {{100, 33, 96, 160, 8}, true, 3, size_t(3) << 20, kSmall, 0, kTrainPair},  // 3 MiB: 2 chunks, float32 dW state
      {{2, 130, 24, 40, 3}, true, 3, kDefault, kSmall, 0, kTrainPair},      // segment kernel, 129 ≤ T < 256: one 256-row block
      {{2, 300, 24, 40, 3}, true, 3, kDefault, kSmall, 0, kTrainPair},      // segment kernel, T > 256: two row blocks
      {{2, 5, 16, 24, 65}, true, 3, kDefault, kSmall, 0, kTrainPair},       // E > 64: segment kernel declines, tile kernel runs
      {{65537, 2, 16, 16, 2}, true, 1, kDefault, kSmall, 8},  // G > 65535: the tile kernel splits grid.z
      {{2, 0, 8, 8, 2}, true, 1, kDefault, kGpuOnly, 0, kTrainPair},        // empty dimensions: zero or empty outputs,
      {{2, 3, 0, 8, 2}, true, 1, kDefault, kGpuOnly, 0, kTrainPair},        // nothing launched on an empty grid
      {{2, 3, 8, 0, 2}, true, 1, kDefault, kGpuOnly, 0, kTrainPair},
      {{2, 3, 8, 8, 0}, true, 1, kDefault, kGpuOnly, 0, kTrainPair},
      {{0, 3, 8, 8, 2}, true, 1, kDefault, kGpuOnly, 0, kTrainPair},
      {{2, 256, 512, 1408, 8}, true, 3, kDefault, kGpuOnly},   // T = 256: the segment kernel's 256-row blocks
      {{2, 128, 512, 1408, 8}, true, 3, kDefault, kGpuOnly, 0, kTrainPair},  // the bench layer's shape, 2 segments, against float64
      {{32, 128, 512, 1408, 8}, false, 10, kDefault, kGpuOnly},  // the bench layer
      {{64, 256, 1024, 2816, 8}, false, 5, kDefault, kGpu},    // paper shape (0.3B), 256 MiB: chunked backward
      {{16, 256, 1024, 2816, 32}, false, 5, kDefault, kGpu},   // paper shape, E=32
      {{9, 100, 1000, 2700, 7}, false, 3, kDefault, kGpu},     // odd sizes at scale
  };
}

// The cases of this run: --shape's (in its order), else the mode's; then the first --cases.
std::string select_cases(const Args& args, std::vector<Case>* out) {
  const std::vector<Case> all = all_cases();
  const unsigned mode = args.cpu_only ? (args.quick ? kCpuQuick : kCpu) : (args.quick ? kGpuQuick : kGpu);
  for (const std::string& want : args.shapes) {
    auto it = std::find_if(all.begin(), all.end(), [&](const Case& c) { return shape_name(c.s) == want; });
    if (it == all.end()) return "--shape '" + want + "': not a shape of the check's table (kernels/cuda/check_main.cpp)";
    if (args.cpu_only && !(it->runs & kCpu)) return "--shape '" + want + "': runs on a GPU only";
    out->push_back(*it);
  }
  if (args.shapes.empty())
    for (const Case& c : all)
      if (c.runs & mode) out->push_back(c);
  if (args.cases > 0 && size_t(args.cases) < out->size()) out->resize(size_t(args.cases));
  return "";
}

struct Tally {
  int rows = 0, caught = 0, failures = 0;
};

// One FFN row: which pair, kernel and precision produced `got`, and the columns computed beside it.
struct MoeRow {
  std::string shape;
  std::string kernel;
  bool train;
  CudaDType p;
  bool float64_reference;
  double e32;
  double dense_f = NAN, dense_b = NAN;
};

std::string error_cell(double v, bool present) {
  char b[16];
  if (present) std::snprintf(b, sizeof b, "%8.1e", v);
  else std::snprintf(b, sizeof b, "%8s", "-");
  return b;
}

// Checks one row of results against the reference (injecting errors first under --inject-error), prints
// it and counts it.
void check_moe_row(const MoeShape& s, const MoeRow& row, const Outputs& ref, Outputs got, const BackwardLayout& lay,
                   bool inject_error, Tally* tally) {
  const double bound = row_bound(row.p, row.train);
  const int outputs = row.train ? kOutputs : kAb;  // a plain row has no ab
  // 3 × the precision's base bound whatever the row's bound: a bound widened past 3× (as `+ C·u/2` on dW
  // was at ≥ 16 chunks) misses it; the training pair's 1.5× does not.
  if (inject_error)
    for (int i = 0; i < outputs; ++i) inject(s, i, base_bound(row.p), ref.out[i], got.out[i]);
  std::string failed, cells;
  int failed_outputs = 0, nonempty = 0;
  for (int i = 0; i < kOutputs; ++i) {
    const double err = i < outputs ? output_error(s, i, got.out[i], ref.out[i]) : NAN;
    cells += " " + error_cell(err, i < outputs);
    if (i >= outputs) continue;
    nonempty += ref.out[i].empty() ? 0 : 1;
    if (!(err <= bound)) failed += std::string(failed.empty() ? "" : ",") + kOutputNames[i], ++failed_outputs;
  }
  const bool ok = failed.empty() && got.deterministic;
  tally->failures += ok ? 0 : 1;
  ++tally->rows;
  if (inject_error && failed_outputs == nonempty) ++tally->caught;
  // Useful FLOPs: 3 GEMMs forward, 6 backward (2·T·d·f each per segment); recompute and merge not counted.
  const double gemm = 2.0 * s.G * s.T * s.d * s.f;
  const double ideal = 1.0 + double(s.E) / (2.0 * double(s.T));
  std::string verdict = ok ? "ok" : "FAIL";
  if (!failed.empty()) verdict += " (" + failed + ")";
  if (!got.deterministic) verdict += " (bits differ between runs)";
  if (lay.plan.chunks > 1)
    verdict += " [" + std::to_string(lay.plan.chunks) + " bwd chunks" + (lay.has_dw_acc ? ", float32 dW state" : "") + "]";
  std::printf("%-22s %-10s %-5s %-8s %-8s %8.1e%s %8.1e %-4s %8.3f %8.3f %7.2f %7.2f %8.3f %8.3f %6.2f %6.2f %6.3f  %s\n",
              row.shape.c_str(), row.kernel.c_str(), row.train ? "train" : "plain", dtype_name(row.p),
              row.float64_reference ? "float64" : "cpu-fast", row.e32, cells.c_str(), bound,
              got.deterministic ? "same" : "DIFF", got.fwd_ms, got.bwd_ms, 3 * gemm / got.fwd_ms / 1e9,
              6 * gemm / got.bwd_ms / 1e9, row.dense_f, row.dense_b, got.fwd_ms / row.dense_f,
              got.bwd_ms / row.dense_b, ideal, verdict.c_str());
  std::fflush(stdout);
}

// AdamWUpdate (float32 only, like the CPU op): n elements at `offset` floats past an aligned boundary
// (≠ 0: the GPU's element-by-element path and the CPU's ordinary stores), with hyper set `hyper`.
struct AdamWCase {
  long long n;
  int offset, hyper;
};
// Empty; one element; a tail only; float4 vectors + a tail of 2; the same unaligned; 2^20 + 3.
const AdamWCase kAdamWCases[] = {{0, 0, 0}, {1, 0, 0}, {7, 0, 1}, {197842, 0, 0}, {197842, 1, 1}, {1048579, 0, 1}};
struct NamedHyper {
  const char* name;
  AdamWHyper h;
};
// (decay, step_size, bc2_sqrt, grad_scale, β₁, β₂, ε) as src/graph/optim/adamw.ts computes them: step 2 of
// lr 3e-4, weight decay 0.1, gradients clipped by 0.7 (moe_kernel_test's); step 1 of lr 1e-3, no clipping.
const NamedHyper kAdamWHypers[2] = {
    {"step2,clip", {1.f - 3e-4f * 0.1f, 3e-4f / (1.f - 0.9f * 0.9f), std::sqrt(1.f - 0.95f * 0.95f), 0.7f, 0.9f, 0.95f, 1e-8f}},
    {"step1", {1.f - 1e-3f * 0.1f, 1e-3f / (1.f - 0.9f), std::sqrt(1.f - 0.95f), 1.f, 0.9f, 0.95f, 1e-8f}},
};
// Each output sums two terms: m' = β₁m + (1−β₁)g, v' = β₂v + (1−β₂)g² (g scaled by grad_scale),
// p' = p·decay − δ with δ = step_size·m'/(√v'/bc2_sqrt + ε). The error of element i is measured relative to
// the scale its rounding errors have (their first-order bound over u): |β₁m| + |(1−β₁)g| for m', the same
// for v', and |p·decay| + step_size·scale(m')/(√v'/bc2_sqrt + ε) for p' (δ inherits m''s error), maximised
// over the elements. Relative to the result itself, cancellation (p·decay ≈ δ, β₁m ≈ −(1−β₁)g) would make
// one ulp look huge; relative to the largest δ (moe_kernel_test's p' − p), one ulp of p' fails whenever
// few elements make that δ small. The float32 kernel rounds a few times per term (≲ 6u of the scale), so
// 1e-6 (≈ 17u) bounds all three, while an error of η in δ shows as ≈ η wherever |p| ≲ |δ|.
constexpr double kAdamWBound = 1e-6;

struct AdamWTensors {
  std::vector<float> p, g, m, v;
};
struct AdamWOut {
  std::vector<float> p, m, v;
  double ms = 0;
  bool deterministic = true;
};

AdamWTensors adamw_inputs(long long n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  AdamWTensors t;
  for (long long i = 0; i < n; ++i) {
    t.p.push_back(u(rng));
    t.g.push_back(0.1f * u(rng));
    t.m.push_back(0.01f * u(rng));
    t.v.push_back(1e-4f * (1.f + u(rng)));  // second moments are non-negative
  }
  return t;
}

// Per element, the scales of the errors of p', m', v' (see kAdamWBound), from the inputs and the reference v'.
struct AdamWScales {
  std::vector<double> p, m, v;
};
AdamWScales adamw_scales(const AdamWTensors& in, const AdamWHyper& h, const std::vector<double>& v_ref) {
  AdamWScales sc;
  for (size_t i = 0; i < in.p.size(); ++i) {
    const double g = double(in.g[i]) * h.grad_scale;
    sc.m.push_back(std::abs(h.beta1 * double(in.m[i])) + std::abs((1.0 - h.beta1) * g));
    sc.v.push_back(std::abs(h.beta2 * double(in.v[i])) + (1.0 - h.beta2) * g * g);
    const double denom = std::sqrt(v_ref[i]) / h.bc2_sqrt + h.eps;
    sc.p.push_back(std::abs(double(in.p[i]) * h.decay) + std::abs(double(h.step_size)) * sc.m.back() / denom);
  }
  return sc;
}

// max_i |got − ref| / scale_i (a NaN gives infinity; a zero scale is floored at 1e-30).
double scaled_error(const std::vector<float>& got, const std::vector<double>& ref, const std::vector<double>& scale) {
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = std::abs(double(got[i]) - ref[i]) / std::max(scale[i], 1e-30);
    worst = std::isnan(d) ? INFINITY : std::max(worst, d);
  }
  return worst;
}

bool same_floats(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}
bool same_adamw(const AdamWOut& a, const AdamWOut& b) { return same_floats(a.p, b.p) && same_floats(a.m, b.m) && same_floats(a.v, b.v); }

// The CPU kernel (adamw.h), outputs `offset` floats past a 64-byte boundary, NaN-filled before each run.
AdamWOut run_cpu_adamw(const AdamWTensors& in, const AdamWHyper& h, int offset, int threads, int repeats) {
  const long long n = (long long)in.p.size();
  std::vector<float> storage[3];
  float* out[3];
  for (int i = 0; i < 3; ++i) {
    storage[i].assign(size_t(n + offset + 16), NAN);
    const uintptr_t at = (reinterpret_cast<uintptr_t>(storage[i].data()) + 63) & ~uintptr_t(63);
    out[i] = reinterpret_cast<float*>(at) + offset;
  }
  const ParallelFor par = thread_for(threads);
  auto once = [&] {
    for (int i = 0; i < 3; ++i) std::fill_n(out[i], n, NAN);
    adamw_update(n, in.p.data(), in.g.data(), in.m.data(), in.v.data(), h, out[0], out[1], out[2], par);
    return AdamWOut{{out[0], out[0] + n}, {out[1], out[1] + n}, {out[2], out[2] + n}};
  };
  AdamWOut o = once();
  o.ms = median_ms(repeats, [&] { return wall_ms([&] { once(); }); });
  o.deterministic = same_adamw(o, once());
  return o;
}

#ifdef LORY_WITH_CUDA
// The GPU kernel (adamw_cuda.h) on one stream: first run, timed runs, then a last run into NaN-filled
// outputs whose bits must equal the first's.
AdamWOut run_cuda_adamw(const AdamWTensors& in, const AdamWHyper& h, int offset, int repeats) {
  const long long n = (long long)in.p.size();
  const size_t bytes = size_t(n + offset) * sizeof(float);
  DeviceBuffer buf[7] = {DeviceBuffer(bytes), DeviceBuffer(bytes), DeviceBuffer(bytes), DeviceBuffer(bytes),
                         DeviceBuffer(bytes), DeviceBuffer(bytes), DeviceBuffer(bytes)};
  float* at[7];
  for (int i = 0; i < 7; ++i) at[i] = static_cast<float*>(buf[i].p) + offset;
  const std::vector<float>* src[4] = {&in.p, &in.g, &in.m, &in.v};
  for (int i = 0; i < 4; ++i) CUDA_OK(cudaMemcpy(at[i], src[i]->data(), size_t(n) * sizeof(float), cudaMemcpyHostToDevice));
  const float hv[7] = {h.decay, h.step_size, h.bc2_sqrt, h.grad_scale, h.beta1, h.beta2, h.eps};
  DeviceBuffer hyper(sizeof hv);
  CUDA_OK(cudaMemcpy(hyper.p, hv, sizeof hv, cudaMemcpyHostToDevice));
  cudaStream_t stream;
  CUDA_OK(cudaStreamCreate(&stream));
  cudaEvent_t start, stop;
  CUDA_OK(cudaEventCreate(&start));
  CUDA_OK(cudaEventCreate(&stop));
  auto run = [&] {
    const std::string err = cuda_adamw_update(n, at[0], at[1], at[2], at[3], static_cast<const float*>(hyper.p), at[4],
                                              at[5], at[6], stream);
    if (!err.empty()) { std::fprintf(stderr, "%s\n", err.c_str()); std::exit(3); }
  };
  auto download = [&] {
    CUDA_OK(cudaStreamSynchronize(stream));
    AdamWOut o;
    std::vector<float>* dst[3] = {&o.p, &o.m, &o.v};
    for (int i = 0; i < 3; ++i) {
      dst[i]->resize(size_t(n));
      CUDA_OK(cudaMemcpy(dst[i]->data(), at[4 + i], size_t(n) * sizeof(float), cudaMemcpyDeviceToHost));
    }
    return o;
  };
  auto poison = [&] {
    for (int i = 4; i < 7; ++i) CUDA_OK(cudaMemset(buf[i].p, 0xFF, bytes));
  };
  poison();
  run();
  const AdamWOut first = download();
  const double ms = median_ms(repeats, [&] { return event_ms(stream, start, stop, run); });
  poison();
  run();
  AdamWOut last = download();
  last.deterministic = same_adamw(first, last);
  last.ms = ms;
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaStreamDestroy(stream);
  return last;
}
#endif

// One AdamWUpdate row: the device's result (the CPU kernel in --cpu-only) against the float64 reference,
// two runs bit-identical, and on a GPU the CPU kernel's bits (the same float32 operations in the same
// order, adamw_cuda.h).
void check_adamw_row(const AdamWCase& c, const Args& args, int threads, Tally* tally) {
  const NamedHyper& hy = kAdamWHypers[c.hyper];
  const AdamWTensors in = adamw_inputs(c.n, 29u + unsigned(c.n));
  const int repeats = args.repeats ? args.repeats : 3;
  const size_t n = size_t(c.n);
  std::vector<double> pr(n), mr(n), vr(n);
  adamw_update_reference(c.n, in.p.data(), in.g.data(), in.m.data(), in.v.data(), hy.h, pr.data(), mr.data(), vr.data());
  const AdamWOut cpu = run_cpu_adamw(in, hy.h, c.offset, threads, args.cpu_only ? repeats : 1);
  AdamWOut got = cpu;
#ifdef LORY_WITH_CUDA
  if (!args.cpu_only) got = run_cuda_adamw(in, hy.h, c.offset, repeats);
#endif
  const bool cpu_bits = same_adamw(got, cpu);
  const AdamWScales sc = adamw_scales(in, hy.h, vr);
  std::vector<float>* outs[3] = {&got.p, &got.m, &got.v};
  const std::vector<double>* refs[3] = {&pr, &mr, &vr};
  const std::vector<double>* scales[3] = {&sc.p, &sc.m, &sc.v};
  const char* const names[3] = {"p", "m", "v"};
  std::string failed;
  int failed_outputs = 0;
  double errs[3];
  for (int i = 0; i < 3; ++i) {
    // --inject-error: 3 × the bound at the middle element, in units of its scale.
    if (args.inject_error && n) (*outs[i])[n / 2] += float(3 * kAdamWBound * std::max((*scales[i])[n / 2], 1e-30));
    errs[i] = scaled_error(*outs[i], *refs[i], *scales[i]);
    if (!(errs[i] <= kAdamWBound)) failed += std::string(failed.empty() ? "" : ",") + names[i], ++failed_outputs;
  }
  const bool ok = failed.empty() && got.deterministic && cpu_bits;
  tally->failures += ok ? 0 : 1;
  ++tally->rows;
  if (args.inject_error && failed_outputs == (n ? 3 : 0)) ++tally->caught;
  std::string verdict = ok ? "ok" : "FAIL";
  if (!failed.empty()) verdict += " (" + failed + ")";
  if (!got.deterministic) verdict += " (bits differ between runs)";
  if (!cpu_bits) verdict += " (bits differ from the CPU kernel)";
  std::printf("AdamWUpdate %9lld %6d %-10s %8.1e %8.1e %8.1e %8.1e %-4s %-4s %8.3f %7.1f  %s\n", c.n, c.offset,
              hy.name, errs[0], errs[1], errs[2], kAdamWBound, got.deterministic ? "same" : "DIFF",
              cpu_bits ? "same" : "DIFF", got.ms, got.ms > 0 ? 28.0 * double(c.n) / got.ms / 1e6 : 0.0, verdict.c_str());
  std::fflush(stdout);
}

void print_adamw_header() {
  std::printf("%-11s %9s %6s %-10s %8s %8s %8s %8s %-4s %-4s %8s %7s  %s\n", "op", "n", "offset", "hyper", "p'", "m'",
              "v'", "bound", "bits", "cpu", "ms", "GB/s", "verdict");
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--cpu-only") args.cpu_only = true;
    else if (a == "--quick") args.quick = true;
    else if (a == "--inject-error") args.inject_error = true;
    else if (a == "--no-dense") args.dense = false;
    else if (a == "--repeats" && i + 1 < argc && std::atoi(argv[i + 1]) > 0) args.repeats = std::atoi(argv[++i]);
    else if (a == "--cases" && i + 1 < argc && std::atoi(argv[i + 1]) > 0) args.cases = std::atoi(argv[++i]);
    else if (a == "--shape" && i + 1 < argc) args.shapes.push_back(argv[++i]);
    else if (a == "--cublas-search") args.cublas_search = true;
    else if (a == "--gemm-peak") args.gemm_peak = true;
    else if (a == "--gemm-size" && i + 1 < argc && std::atoll(argv[i + 1]) > 0) args.gemm_size = std::atoll(argv[++i]);
    else if (a == "--kernel" && i + 1 < argc) {
      const std::string k = argv[++i];
      CudaKernel one;
      if (k == "both") args.kernels = {CudaKernel::tile, CudaKernel::segment};
      else if (k == "all")
        args.kernels = {CudaKernel::tile, CudaKernel::segment, CudaKernel::group, CudaKernel::group_wide};
      else if (parse_kernel_name(k.c_str(), &one)) args.kernels = {one};
      else return std::fprintf(stderr, "--kernel '%s': expected tile, segment, group, group-wide, both (tile + segment) or all\n", k.c_str()), 2;
    } else if (a == "--wgrad" && i + 1 < argc) {
      const std::string w = argv[++i];
      CudaWgrad one;
      if (w == "all") args.wgrads = {CudaWgrad::tile, CudaWgrad::shared};
      else if (parse_wgrad_name(w.c_str(), &one)) args.wgrads = {one};
      else return std::fprintf(stderr, "--wgrad '%s': expected tile, shared or all\n", w.c_str()), 2;
    } else return usage();
  }
  std::vector<Case> cases;
  if (const std::string err = select_cases(args, &cases); !err.empty())
    return std::fprintf(stderr, "%s\n", err.c_str()), 2;
#ifndef LORY_WITH_CUDA
  if (!args.cpu_only || args.cublas_search || args.gemm_peak) {
    std::fprintf(stderr, "this check binary was built without CUDA (no nvcc at build time): only --cpu-only runs\n");
    return 2;
  }
  Tally tally;
#else
  if (args.cublas_search) return cublas_search();
  std::unique_ptr<DenseCublas> cublas;
  Tally tally;
  if (!args.cpu_only) {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
      std::fprintf(stderr, "no CUDA device: run with --cpu-only\n");
      return 2;
    }
    cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    std::printf("device: %s (sm_%d%d, %d SMs, %.0f GiB)\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount,
                prop.totalGlobalMem / 1073741824.0);
    if (args.gemm_peak) return gemm_peak(args);
    if (args.dense) {
      cublas = std::make_unique<DenseCublas>();
      if (cublas->available()) std::printf("dense baseline: %s\n", cublas->library().c_str());
      else std::printf("dense baseline skipped: %s\n", cublas->why().c_str());
    }
    // Not with --shape: under compute-sanitizer (gpu-run --sanitize) the probe's deliberate cudaMalloc
    // failure would count as an API error.
    if (args.shapes.empty() && !pending_error_probe()) ++tally.failures;
  }
#endif
  const int threads = int(std::max(1u, std::thread::hardware_concurrency()));
  const size_t kDefault = MoeCudaOptions{}.scratch_budget_bytes;
  std::vector<CudaKernel> kernels = args.kernels;
  std::vector<CudaWgrad> wgrads = args.wgrads;
  if (args.cpu_only) kernels = {CudaKernel::tile}, wgrads = {CudaWgrad::tile};  // one device stand-in

  std::printf("%-22s %-10s %-5s %-8s %-8s %8s %8s %8s %8s %8s %8s %8s %8s %8s %-4s %8s %8s %7s %7s %8s %8s %6s %6s "
              "%6s  %s\n",
              "shape G,T,d,f,E", "kernel", "op", "dtype", "ref", "e32", "y", "dx", "de", "dW_gate", "dW_up", "dW_down",
              "ab", "bound", "bits", "fwd ms", "bwd ms", "fwd TF", "bwd TF", "dense f", "dense b", "x fwd", "x bwd",
              "ideal", "verdict");
  for (const Case& c : cases) {
    const MoeShape& s = c.s;
    const Tensors in = random_tensors(s, 17u + unsigned(s.G + s.d), c.live_ends);
    const Outputs ref =
        c.float64_reference ? run_reference(s, in, c.train) : run_cpu_fast(s, in, 1, threads, kDefault, c.train);
    const int repeats = args.repeats ? args.repeats : c.repeats;
    // The fast CPU kernel (float32) against the float64 reference: the error the bounds are built on. In
    // --cpu-only mode the same results (of the pair a row runs) stand in for the device's.
    double e32 = NAN;
    Outputs cpu[2];  // plain pair, training pair
    if ((c.float64_reference || args.cpu_only) && !empty_dimension(s)) {  // the CPU kernel takes no empty one
      for (int op = 0; op < (c.train ? 2 : 1); ++op)
        cpu[op] = run_cpu_fast(s, in, args.cpu_only ? repeats : 1, threads, c.budget, op == 1);
      if (c.float64_reference) {
        e32 = 0;
        for (int op = 0; op < (c.train ? 2 : 1); ++op)
          for (int i = 0; i < kOutputs; ++i)
            if (!cpu[op].out[i].empty()) e32 = std::max(e32, output_error(s, i, cpu[op].out[i], ref.out[i]));
        if (!(e32 <= base_bound(CudaDType::f32) / 8)) {
          std::printf("  float32 reference error %.2e exceeds bound/8: the float32 bound no longer holds\n", e32);
          ++tally.failures;
        }
      }
    }
    const std::string shape = shape_name(s);
    for (CudaDType p : kPrecisions) {
      double dense_f = NAN, dense_b = NAN;
#ifdef LORY_WITH_CUDA
      if (cublas && cublas->available() && !empty_dimension(s)) {
        DenseTimes dt;
        const std::string err = cublas->time_ffn(p, s.G * s.T, s.d, s.f, repeats, &dt);
        if (err.empty()) dense_f = dt.fwd_ms, dense_b = dt.bwd_ms;
        else std::printf("  dense baseline failed: %s\n", err.c_str());
      }
#endif
      for (CudaKernel k : kernels)
      for (CudaWgrad w : wgrads) {
        // float32 runs the tile kernel and path under every switch (moe_cuda_plan.h): one float32 row per shape.
        if (p == CudaDType::f32 && (k != kernels.front() || w != wgrads.front())) continue;
        for (int op = 0; op < (c.train ? 2 : 1); ++op) {
          const bool train = op == 1;
          MoeCudaOptions opt;
          opt.kernel = k;
          opt.wgrad = w;
          opt.scratch_budget_bytes = c.budget;
          Outputs got;
          if (args.cpu_only) {
            got = cpu[op];  // storage rounding of the type; the compute-path roundings only happen on a GPU
            for (auto& v : got.out)
              for (float& a : v) a = round_to(p, a);
          }
#ifdef LORY_WITH_CUDA
          else got = run_cuda(s, in, p, opt, repeats, train);
#endif
          const std::string label = std::string(kernel_name(k)) + (w == CudaWgrad::shared ? "+sw" : "");
          MoeRow row{shape, args.cpu_only ? "cpu" : label, train, p, c.float64_reference, e32};
          row.dense_f = dense_f, row.dense_b = dense_b;
          check_moe_row(s, row, ref, std::move(got), plan_backward(s, p, c.budget), args.inject_error, &tally);
        }
      }
    }
  }
  print_adamw_header();
  for (const AdamWCase& ac : kAdamWCases) check_adamw_row(ac, args, threads, &tally);
  if (args.inject_error) std::printf("injected errors caught in every output: %d of %d rows\n", tally.caught, tally.rows);
  std::printf(tally.failures ? "%d row(s) FAILED\n" : "all within bounds\n", tally.failures);
  return tally.failures ? 1 : 0;
}
