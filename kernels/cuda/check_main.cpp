// Standalone check of the CUDA kernel: forward and backward on random inputs vs. a CPU reference, with
// relative error bounds per precision, and timing (TFLOP/s). Needs no Node and no network.
//   check [--cpu-only] [--quick] [--repeats N] [--inject-error]
// --inject-error perturbs one element of each result: the run must then fail (tests the harness).
// --cpu-only runs the same flow without a GPU: the fast CPU kernel plays the device (float32), so the
// harness itself is testable on machines without CUDA.
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
#include <vector>

#include "lory/moe_cpu.h"
#include "lory/moe_reference.h"
#ifdef LORY_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "moe_cuda.h"
#endif

using namespace lory;

namespace {

enum class Precision { f32, f16, bf16 };
const char* precision_name(Precision p) { return p == Precision::f32 ? "float32" : p == Precision::f16 ? "float16" : "bfloat16"; }

// max|got − ref| / max|ref| over a tensor. Bounds per precision, for every output (y, dx, de, dW*):
//   float32 on CUDA cores: 2e-5 (fp32 FMA, different summation order than the reference);
//   float16 on tensor cores: 1e-2 (inputs, merged B tiles, h/da/db and outputs rounded to 11 bits);
//   bfloat16 on tensor cores: 4e-2 (the same roundings at 8 bits).
double error_bound(Precision p) { return p == Precision::f32 ? 2e-5 : p == Precision::f16 ? 1e-2 : 4e-2; }

struct Tensors {
  std::vector<float> x, e, wg, wu, wd, dy;
};
struct Outputs {
  std::vector<float> y, dx, de, dwg, dwu, dwd;
  double fwd_ms = 0, bwd_ms = 0;
};

float round_to_bf16(float v) {  // nearest-even; the check's inputs are exactly representable in bf16
  uint32_t u;
  std::memcpy(&u, &v, 4);
  u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  std::memcpy(&v, &u, 4);
  return v;
}

Tensors random_tensors(const MoeShape& s, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  auto fill = [&](int64_t n, float scale, float shift) {
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& a : v) a = round_to_bf16(shift + scale * u(rng));
    return v;
  };
  Tensors t;
  t.x = fill(s.x_elems(), 1.f, 0.f);
  t.e = fill(s.e_elems(), 0.5f / float(s.E), 1.f / float(s.E));  // softmax-like: positive, sums ≈ 1
  t.wg = fill(s.w_elems(), 1.7f / std::sqrt(float(s.d)), 0.f);
  t.wu = fill(s.w_elems(), 1.7f / std::sqrt(float(s.d)), 0.f);
  t.wd = fill(s.w_elems(), 1.7f / std::sqrt(float(s.f)), 0.f);
  t.dy = fill(s.x_elems(), 1.f, 0.f);
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

Outputs run_cpu_fast(const MoeShape& s, const Tensors& in, int repeats, int threads) {
  Outputs o;
  o.y.resize(s.x_elems()), o.dx.resize(s.x_elems()), o.de.resize(s.e_elems());
  o.dwg.resize(s.w_elems()), o.dwu.resize(s.w_elems()), o.dwd.resize(s.w_elems());
  std::vector<float> scratch(std::max(moe_forward_scratch_floats(s), moe_backward_scratch_floats(s)));
  const ParallelFor par = thread_for(threads);
  auto fwd = [&] {
    moe_forward(s, in.x.data(), in.e.data(), in.wg.data(), in.wu.data(), in.wd.data(), o.y.data(), scratch.data(), par);
  };
  auto bwd = [&] {
    moe_backward(s, in.x.data(), in.e.data(), in.wg.data(), in.wu.data(), in.wd.data(), in.dy.data(), o.dx.data(),
                 o.de.data(), o.dwg.data(), o.dwu.data(), o.dwd.data(), scratch.data(), par);
  };
  o.fwd_ms = median_ms(repeats, [&] { return wall_ms(fwd); });
  o.bwd_ms = median_ms(repeats, [&] { return wall_ms(bwd); });
  return o;
}

Outputs run_reference(const MoeShape& s, const Tensors& in) {
  std::vector<double> y(s.x_elems()), dx(s.x_elems()), de(s.e_elems()), dwg(s.w_elems()), dwu(s.w_elems()),
      dwd(s.w_elems());
  moe_forward_reference(s, in.x.data(), in.e.data(), in.wg.data(), in.wu.data(), in.wd.data(), y.data());
  moe_backward_reference(s, in.x.data(), in.e.data(), in.wg.data(), in.wu.data(), in.wd.data(), in.dy.data(),
                         dx.data(), de.data(), dwg.data(), dwu.data(), dwd.data());
  auto to_f = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
  Outputs o;
  o.y = to_f(y), o.dx = to_f(dx), o.de = to_f(de), o.dwg = to_f(dwg), o.dwu = to_f(dwu), o.dwd = to_f(dwd);
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

CudaDType to_cuda(Precision p) { return p == Precision::f32 ? CudaDType::f32 : p == Precision::f16 ? CudaDType::f16 : CudaDType::bf16; }

std::vector<unsigned char> encode(const std::vector<float>& v, Precision p) {
  std::vector<unsigned char> out(v.size() * (p == Precision::f32 ? 4 : 2));
  for (size_t i = 0; i < v.size(); ++i) {
    if (p == Precision::f32) std::memcpy(&out[i * 4], &v[i], 4);
    else if (p == Precision::f16) { __half h = __float2half_rn(v[i]); std::memcpy(&out[i * 2], &h, 2); }
    else { __nv_bfloat16 h = __float2bfloat16_rn(v[i]); std::memcpy(&out[i * 2], &h, 2); }
  }
  return out;
}

std::vector<float> decode(const std::vector<unsigned char>& raw, Precision p, size_t n) {
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (p == Precision::f32) std::memcpy(&out[i], &raw[i * 4], 4);
    else if (p == Precision::f16) { __half h; std::memcpy(&h, &raw[i * 2], 2); out[i] = __half2float(h); }
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

Outputs run_cuda(const MoeShape& s, const Tensors& in, Precision p, int repeats) {
  const size_t es = p == Precision::f32 ? 4 : 2;
  auto upload = [&](const std::vector<float>& v) {
    auto raw = encode(v, p);
    auto* b = new DeviceBuffer(raw.size());
    CUDA_OK(cudaMemcpy(b->p, raw.data(), raw.size(), cudaMemcpyHostToDevice));
    return b;
  };
  std::unique_ptr<DeviceBuffer> x(upload(in.x)), e(upload(in.e)), wg(upload(in.wg)), wu(upload(in.wu)),
      wd(upload(in.wd)), dy(upload(in.dy));
  DeviceBuffer y(s.x_elems() * es), dx(s.x_elems() * es), de(s.e_elems() * es), dwg(s.w_elems() * es),
      dwu(s.w_elems() * es), dwd(s.w_elems() * es);
  // Pre-fill the outputs with NaN (0xFF.. is NaN in float32, float16 and bfloat16): an element the kernel
  // never writes then fails the check instead of passing as cudaMalloc's (often zero) contents.
  for (const DeviceBuffer* b : {&y, &dx, &de, &dwg, &dwu, &dwd}) CUDA_OK(cudaMemset(b->p, 0xFF, b->bytes));
  const CudaDType t = to_cuda(p);
  DeviceBuffer scratch(std::max(moe_cuda_forward_scratch_bytes(s, t), moe_cuda_backward_scratch_bytes(s, t)));
  cudaStream_t stream;
  CUDA_OK(cudaStreamCreate(&stream));
  cudaEvent_t start, stop;
  CUDA_OK(cudaEventCreate(&start));
  CUDA_OK(cudaEventCreate(&stop));
  auto check = [](const std::string& err) {
    if (!err.empty()) { std::fprintf(stderr, "%s\n", err.c_str()); std::exit(3); }
  };
  auto fwd = [&] { check(moe_cuda_forward(s, t, x->p, e->p, wg->p, wu->p, wd->p, y.p, scratch.p, stream)); };
  auto bwd = [&] {
    check(moe_cuda_backward(s, t, x->p, e->p, wg->p, wu->p, wd->p, dy->p, dx.p, de.p, dwg.p, dwu.p, dwd.p, scratch.p,
                            stream));
  };
  auto timed = [&](const std::function<void()>& f) {
    CUDA_OK(cudaEventRecord(start, stream));
    f();
    CUDA_OK(cudaEventRecord(stop, stream));
    CUDA_OK(cudaEventSynchronize(stop));
    float ms = 0;
    CUDA_OK(cudaEventElapsedTime(&ms, start, stop));
    return double(ms);
  };
  fwd();  // warm-up (module load, L2)
  bwd();
  CUDA_OK(cudaStreamSynchronize(stream));
  Outputs o;
  o.fwd_ms = median_ms(repeats, [&] { return timed(fwd); });
  o.bwd_ms = median_ms(repeats, [&] { return timed(bwd); });
  CUDA_OK(cudaStreamSynchronize(stream));
  auto download = [&](const DeviceBuffer& b, size_t n) {
    std::vector<unsigned char> raw(n * es);
    CUDA_OK(cudaMemcpy(raw.data(), b.p, raw.size(), cudaMemcpyDeviceToHost));
    return decode(raw, p, n);
  };
  o.y = download(y, s.x_elems()), o.dx = download(dx, s.x_elems()), o.de = download(de, s.e_elems());
  o.dwg = download(dwg, s.w_elems()), o.dwu = download(dwu, s.w_elems()), o.dwd = download(dwd, s.w_elems());
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaStreamDestroy(stream);
  return o;
}
#endif

double rel_err(const std::vector<float>& got, const std::vector<float>& ref) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = std::abs(double(got[i]) - double(ref[i]));
    err = std::isnan(d) ? INFINITY : std::max(err, d);
    scale = std::max(scale, double(std::abs(ref[i])));
  }
  return err / std::max(scale, 1e-30);
}

struct Case {
  MoeShape s;
  bool float64_reference;  // small shapes: naive float64; large: the fast CPU kernel (tested against it)
  int repeats;
};

}  // namespace

int main(int argc, char** argv) {
  bool cpu_only = false, quick = false, inject_error = false;
  int repeats_override = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--cpu-only") cpu_only = true;
    else if (a == "--quick") quick = true;
    else if (a == "--inject-error") inject_error = true;
    else if (a == "--repeats" && i + 1 < argc && std::atoi(argv[i + 1]) > 0) repeats_override = std::atoi(argv[++i]);
    else { std::fprintf(stderr, "usage: check [--cpu-only] [--quick] [--repeats N] [--inject-error]\n"); return 2; }
  }
#ifndef LORY_WITH_CUDA
  if (!cpu_only) {
    std::fprintf(stderr, "built without CUDA (no nvcc): only --cpu-only is available\n");
    return 2;
  }
#else
  if (!cpu_only) {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
      std::fprintf(stderr, "no CUDA device: run with --cpu-only\n");
      return 2;
    }
    cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    std::printf("device: %s (sm_%d%d, %d SMs, %.0f GiB)\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount,
                prop.totalGlobalMem / 1073741824.0);
  }
#endif
  const int threads = int(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<Case> cases = {
      {{3, 7, 40, 72, 3}, true, 3},        // T, d, f not multiples of any tile or vector width
      {{1, 128, 64, 96, 1}, true, 3},      // G=1, E=1
      {{1, 13, 17, 29, 1}, true, 3},       // G=1, E=1, odd T/d/f: partial tiles on every axis, odd row strides
      {{2, 13, 17, 29, 12}, true, 3},      // E > 8: two expert groups in the weight-gradient kernel, the last partial
      {{4, 33, 96, 160, 8}, true, 3},
      {{2, 128, 512, 1408, 8}, true, 3},   // the bench layer's shape, 2 segments, against float64
      {{32, 128, 512, 1408, 8}, false, 10},  // the bench layer
  };
  if (!quick && !cpu_only) {
    cases.push_back({{64, 256, 1024, 2816, 8}, false, 5});  // 0.3B-model layer, 4 sequences of L=4096
    cases.push_back({{16, 256, 1024, 2816, 32}, false, 5});  // E=32
    cases.push_back({{9, 100, 1000, 2700, 7}, false, 3});   // odd sizes at scale
  }
  if (cpu_only) cases.resize(quick ? 2 : 6);

  std::vector<Precision> precisions = {Precision::f32};
  if (!cpu_only) precisions = {Precision::f32, Precision::f16, Precision::bf16};
  std::printf("%-28s %-9s %-9s %10s %10s %10s %10s %10s %10s %9s %9s %9s %9s\n", "shape G,T,d,f,E", "dtype", "reference",
              "y", "dx", "de", "dW_gate", "dW_up", "dW_down", "fwd ms", "bwd ms", "fwd TF/s", "bwd TF/s");
  int failures = 0;
  for (const Case& c : cases) {
    const MoeShape& s = c.s;
    const Tensors in = random_tensors(s, 17u + unsigned(s.G + s.d));
    const Outputs ref = c.float64_reference ? run_reference(s, in) : run_cpu_fast(s, in, 1, threads);
    for (Precision p : precisions) {
      const int repeats = repeats_override ? repeats_override : c.repeats;
      Outputs got;
      if (cpu_only) got = run_cpu_fast(s, in, repeats, threads);
#ifdef LORY_WITH_CUDA
      else got = run_cuda(s, in, p, repeats);
#endif
      if (inject_error) got.dwd[got.dwd.size() / 3] += 0.05f * std::abs(ref.dwd[ref.dwd.size() / 3]) + 1e-3f;
      const double errs[6] = {rel_err(got.y, ref.y),     rel_err(got.dx, ref.dx),   rel_err(got.de, ref.de),
                              rel_err(got.dwg, ref.dwg), rel_err(got.dwu, ref.dwu), rel_err(got.dwd, ref.dwd)};
      const double bound = error_bound(p);
      bool ok = true;
      for (double v : errs) ok = ok && v <= bound;
      failures += ok ? 0 : 1;
      // Useful FLOPs: 3 GEMMs forward, 6 backward (2·T·d·f each per segment); recompute and merge not counted.
      const double gemm = 2.0 * s.G * s.T * s.d * s.f;
      char shape[64];
      std::snprintf(shape, sizeof shape, "%lld,%lld,%lld,%lld,%lld", (long long)s.G, (long long)s.T, (long long)s.d,
                    (long long)s.f, (long long)s.E);
      const std::string verdict = ok ? "ok" : "FAIL (bound " + std::to_string(bound) + ")";
      std::printf("%-28s %-9s %-9s %10.2e %10.2e %10.2e %10.2e %10.2e %10.2e %9.3f %9.3f %9.3f %9.3f %s\n", shape,
                  cpu_only ? "f32(cpu)" : precision_name(p), c.float64_reference ? "float64" : "cpu-fast", errs[0],
                  errs[1], errs[2], errs[3], errs[4], errs[5], got.fwd_ms, got.bwd_ms, 3 * gemm / got.fwd_ms / 1e9,
                  6 * gemm / got.bwd_ms / 1e9, verdict.c_str());
      std::fflush(stdout);
    }
  }
  std::printf(failures ? "%d case(s) FAILED\n" : "all within bounds\n", failures);
  return failures ? 1 : 0;
}
