// Dense cuBLAS baseline of the check program: see check_cublas.h.
#include "check_cublas.h"

#include <cuda_runtime.h>
#include <dlfcn.h>
#include <glob.h>
#include <library_types.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "moe_cuda.h"

namespace lory {

// cuBLAS C API (cublas_api.h), as documented: status 0 = CUBLAS_STATUS_SUCCESS; CUBLAS_OP_N = 0,
// CUBLAS_OP_T = 1; CUBLAS_COMPUTE_32F = 68; CUBLAS_GEMM_DEFAULT = -1. Handles are opaque pointers.
using CublasCreate = int (*)(void** handle);
using CublasDestroy = int (*)(void* handle);
using CublasSetStream = int (*)(void* handle, cudaStream_t stream);
using CublasGemmEx = int (*)(void* handle, int transa, int transb, int m, int n, int k, const void* alpha,
                             const void* A, cudaDataType Atype, int lda, const void* B, cudaDataType Btype, int ldb,
                             const void* beta, void* C, cudaDataType Ctype, int ldc, int compute_type, int algo);
constexpr int kOpN = 0, kOpT = 1, kCompute32F = 68, kGemmDefault = -1;

struct DenseCublas::Api {
  CublasCreate create;
  CublasDestroy destroy;
  CublasSetStream set_stream;
  CublasGemmEx gemm_ex;
};

namespace {

const char* const kCublasNames[] = {"libcublas.so", "libcublas.so.13", "libcublas.so.12"};

// Paths matching a glob pattern, newest version first (cuda-12.4 before cuda-12.10 is wrong: strverscmp).
std::vector<std::string> glob_newest_first(const std::string& pattern) {
  std::vector<std::string> out;
  glob_t g{};
  if (glob(pattern.c_str(), 0, nullptr, &g) == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i) out.push_back(g.gl_pathv[i]);
  globfree(&g);
  std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
    return strverscmp(a.c_str(), b.c_str()) > 0;
  });
  return out;
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// Directories that may hold libcublas beyond the loader's own search: CUDA toolkits (cuBLAS ships in
// lib64 beside cudart) and pip's nvidia-cublas wheels (site-packages/nvidia/cublas/lib, e.g. under torch).
std::vector<std::string> cublas_dirs() {
  std::vector<std::string> dirs;
  for (const char* var : {"CUDA_HOME", "CUDA_PATH"})
    if (!env(var).empty()) dirs.push_back(env(var) + "/lib64");
  dirs.push_back("/usr/local/cuda/lib64");
  for (const std::string& d : glob_newest_first("/usr/local/cuda-*/lib64")) dirs.push_back(d);
  std::vector<std::string> prefixes;
  for (const char* var : {"VIRTUAL_ENV", "CONDA_PREFIX"})
    if (!env(var).empty()) prefixes.push_back(env(var));
  if (!env("HOME").empty()) prefixes.push_back(env("HOME") + "/.local");
  prefixes.push_back("/usr/local");
  prefixes.push_back("/usr");
  std::vector<std::string> site;
  const std::string pythonpath = env("PYTHONPATH");
  for (size_t at = 0; at <= pythonpath.size() && !pythonpath.empty();) {
    const size_t end = std::min(pythonpath.find(':', at), pythonpath.size());
    if (end > at) site.push_back(pythonpath.substr(at, end - at));
    at = end + 1;
  }
  for (const std::string& p : prefixes)
    for (const char* kind : {"site-packages", "dist-packages"})
      for (const std::string& d : glob_newest_first(p + "/lib/python3*/" + kind)) site.push_back(d);
  site.push_back("/usr/lib/python3/dist-packages");
  for (const std::string& s : site) dirs.push_back(s + "/nvidia/cublas/lib");
  return dirs;
}

}  // namespace

std::vector<std::string> cublas_candidates() {
  std::vector<std::string> out(std::begin(kCublasNames), std::end(kCublasNames));  // LD_LIBRARY_PATH, ld.so.cache
  for (const std::string& dir : cublas_dirs())
    for (const char* name : kCublasNames) {
      const std::string path = dir + "/" + name;
      if (access(path.c_str(), F_OK) == 0 && std::find(out.begin(), out.end(), path) == out.end()) out.push_back(path);
    }
  return out;
}

DenseCublas::DenseCublas() {
  std::string last_error;
  for (const std::string& c : cublas_candidates()) {
    lib_ = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib_) {
      library_ = c;
      break;
    }
    const char* e = dlerror();
    last_error = e ? e : "dlopen failed";
  }
  if (!lib_) {
    why_ = "libcublas not found by the loader, in CUDA toolkits' lib64 or in Python's nvidia/cublas/lib (" +
           last_error + ")";
    return;
  }
  api_ = new Api{reinterpret_cast<CublasCreate>(dlsym(lib_, "cublasCreate_v2")),
                 reinterpret_cast<CublasDestroy>(dlsym(lib_, "cublasDestroy_v2")),
                 reinterpret_cast<CublasSetStream>(dlsym(lib_, "cublasSetStream_v2")),
                 reinterpret_cast<CublasGemmEx>(dlsym(lib_, "cublasGemmEx"))};
  if (!api_->create || !api_->destroy || !api_->set_stream || !api_->gemm_ex) {
    why_ = library_ + " lacks cublasCreate_v2/cublasDestroy_v2/cublasSetStream_v2/cublasGemmEx";
    return;
  }
  void* h = nullptr;
  if (const int st = api_->create(&h); st != 0) {
    why_ = "cublasCreate_v2 failed with status " + std::to_string(st);
    return;
  }
  handle_ = h;
}

DenseCublas::~DenseCublas() {
  if (handle_) api_->destroy(handle_);
  delete api_;
  if (lib_) dlclose(lib_);
}

namespace {

cudaDataType cuda_type(CudaDType t) {
  return t == CudaDType::f32 ? CUDA_R_32F : t == CudaDType::f16 ? CUDA_R_16F : CUDA_R_16BF;
}

// Median over `repeats` runs of run() on `stream`, timed by CUDA events; stops early once err is set.
template <class Run>
double median_event_ms(cudaStream_t stream, cudaEvent_t start, cudaEvent_t stop, int repeats, const std::string& err,
                       const Run& run) {
  std::vector<double> ms;
  for (int r = 0; r < repeats && err.empty(); ++r) {
    cudaEventRecord(start, stream);
    run();
    cudaEventRecord(stop, stream);
    cudaEventSynchronize(stop);
    float v = 0;
    cudaEventElapsedTime(&v, start, stop);
    ms.push_back(v);
  }
  std::sort(ms.begin(), ms.end());
  return ms.empty() ? 0.0 : ms[ms.size() / 2];
}

// A stream for cuBLAS and the two events that time work on it: made together (err says when they could
// not be), released when it goes out of scope.
struct TimedStream {
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  explicit TimedStream(std::string& err) {
    if (err.empty() && (cudaStreamCreate(&stream) != cudaSuccess || cudaEventCreate(&start) != cudaSuccess ||
                        cudaEventCreate(&stop) != cudaSuccess))
      err = "cudaStreamCreate/cudaEventCreate failed";
  }
  ~TimedStream() {
    if (start) cudaEventDestroy(start);
    if (stop) cudaEventDestroy(stop);
    if (stream) cudaStreamDestroy(stream);
  }
  TimedStream(const TimedStream&) = delete;
  TimedStream& operator=(const TimedStream&) = delete;
  // Median time in ms over `repeats` runs of `run` (stops early once err is set).
  template <typename Run>
  double median_ms(int repeats, const std::string& err, const Run& run) const {
    return median_event_ms(stream, start, stop, repeats, err, run);
  }
};

}  // namespace

std::string DenseCublas::time_ffn(CudaDType t, long long rows, long long d, long long f, int repeats,
                                  DenseTimes* out) {
  if (!handle_) return why_;
  const size_t es = element_size(t);
  std::vector<void*> allocs;
  std::string err;
  // Random values of the fused op's scales (check_main.cpp), not zeros: tensor cores run measurably faster
  // on zeros, which would flatter the baseline. Intermediates are filled too, so nothing is uninitialised.
  auto alloc = [&](long long n, float scale) {
    void* p = nullptr;
    if (cudaMalloc(&p, size_t(n) * es) != cudaSuccess) return static_cast<void*>(nullptr);
    allocs.push_back(p);
    const std::string fill = cuda_fill_uniform(t, n, 0x5eedull + allocs.size(), scale, p, nullptr);
    if (!fill.empty() && err.empty()) err = "random fill of the dense baseline's inputs: " + fill;
    return p;
  };
  const float sd = 1.7f / std::sqrt(float(d)), sf = 1.7f / std::sqrt(float(f));
  void *x = alloc(rows * d, 1.f), *dy = alloc(rows * d, 1.f), *y = alloc(rows * d, 1.f), *dx = alloc(rows * d, 1.f);
  void *wg = alloc(d * f, sd), *wu = alloc(d * f, sd), *wd = alloc(f * d, sf);
  void *dwg = alloc(d * f, 1.f), *dwu = alloc(d * f, 1.f), *dwd = alloc(f * d, 1.f);
  void *a = alloc(rows * f, 1.f), *b = alloc(rows * f, 1.f), *h = alloc(rows * f, 1.f), *dh = alloc(rows * f, 1.f);
  void *da = alloc(rows * f, 1.f), *db = alloc(rows * f, 1.f);
  if (allocs.size() != 16 && err.empty()) err = "cudaMalloc failed for the dense baseline";
  if (err.empty() && cudaDeviceSynchronize() != cudaSuccess) err = cudaGetErrorString(cudaGetLastError());
  TimedStream timing(err);
  const cudaStream_t stream = timing.stream;
  if (err.empty()) api_->set_stream(handle_, stream);
  const float one = 1.f, zero = 0.f;
  const cudaDataType ct = cuda_type(t);
  // Row-major C[m,n] = op(A)[m,k]·op(B)[k,n] is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ; lda, ldb are the stored
  // row lengths of A and B.
  auto gemm = [&](bool ta, bool tb, long long m, long long n, long long k, const void* A, long long lda,
                  const void* B, long long ldb, void* C, long long ldc, bool accumulate) {
    if (!err.empty()) return;
    const int st = api_->gemm_ex(handle_, tb ? kOpT : kOpN, ta ? kOpT : kOpN, int(n), int(m), int(k), &one, B, ct,
                                 int(ldb), A, ct, int(lda), accumulate ? &one : &zero, C, ct, int(ldc), kCompute32F,
                                 kGemmDefault);
    if (st != 0) err = "cublasGemmEx failed with status " + std::to_string(st);
  };
  auto forward = [&] {
    gemm(false, false, rows, f, d, x, d, wg, f, a, f, false);
    gemm(false, false, rows, f, d, x, d, wu, f, b, f, false);
    if (err.empty()) err = cuda_swiglu_forward(t, rows * f, a, b, h, stream);
    gemm(false, false, rows, d, f, h, f, wd, d, y, d, false);
  };
  auto backward = [&] {
    gemm(false, false, rows, f, d, x, d, wg, f, a, f, false);    // recompute a
    gemm(false, false, rows, f, d, x, d, wu, f, b, f, false);    // recompute b
    gemm(false, true, rows, f, d, dy, d, wd, d, dh, f, false);   // dh = dy·Wdᵀ
    if (err.empty()) err = cuda_swiglu_backward(t, rows * f, a, b, dh, h, da, db, stream);
    gemm(false, true, rows, d, f, da, f, wg, f, dx, d, false);   // dx = da·Wgᵀ
    gemm(false, true, rows, d, f, db, f, wu, f, dx, d, true);    //    + db·Wuᵀ
    gemm(true, false, d, f, rows, x, d, da, f, dwg, f, false);   // dWg = xᵀ·da
    gemm(true, false, d, f, rows, x, d, db, f, dwu, f, false);   // dWu = xᵀ·db
    gemm(true, false, f, d, rows, h, f, dy, d, dwd, d, false);   // dWd = hᵀ·dy
  };
  auto median_ms = [&](const auto& run) { return timing.median_ms(repeats, err, run); };
  if (err.empty()) {
    forward();  // warm-up: cuBLAS picks and loads its kernels
    backward();
    cudaStreamSynchronize(stream);
    out->fwd_ms = median_ms(forward);
    out->bwd_ms = median_ms(backward);
    if (err.empty() && cudaStreamSynchronize(stream) != cudaSuccess) err = cudaGetErrorString(cudaGetLastError());
  }
  if (handle_) api_->set_stream(handle_, nullptr);  // before `timing` destroys the stream
  for (void* p : allocs) cudaFree(p);
  return err;
}

std::string DenseCublas::time_gemm(CudaDType t, long long n, int repeats, double* median_ms, double* tflops) {
  if (!handle_) return why_;
  const size_t bytes = size_t(n) * size_t(n) * element_size(t);
  void *a = nullptr, *b = nullptr, *c = nullptr;
  std::string err;
  if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess || cudaMalloc(&c, bytes) != cudaSuccess)
    err = "cudaMalloc of three " + std::to_string(n) + "² matrices failed";
  // Random, not zeros: tensor cores draw less power (and clock higher) on zeros, which would inflate the peak.
  for (void* p : {a, b})
    if (err.empty()) {
      const std::string fill = cuda_fill_uniform(t, n * n, p == a ? 0x9e3779b9ull : 0x85ebca6bull, 1.f, p, nullptr);
      if (!fill.empty()) err = "random fill of the GEMM inputs: " + fill;
    }
  TimedStream timing(err);
  const cudaStream_t stream = timing.stream;
  if (err.empty()) api_->set_stream(handle_, stream);
  const float one = 1.f, zero = 0.f;
  const cudaDataType ct = cuda_type(t);
  auto gemm = [&] {
    if (!err.empty()) return;
    const int st = api_->gemm_ex(handle_, kOpN, kOpN, int(n), int(n), int(n), &one, a, ct, int(n), b, ct, int(n), &zero,
                                 c, ct, int(n), kCompute32F, kGemmDefault);
    if (st != 0) err = "cublasGemmEx failed with status " + std::to_string(st);
  };
  if (err.empty()) {
    for (int w = 0; w < 3; ++w) gemm();  // warm-up: kernel selection, clocks up
    cudaStreamSynchronize(stream);
    *median_ms = timing.median_ms(repeats, err, gemm);
    *tflops = *median_ms > 0 ? 2.0 * double(n) * double(n) * double(n) / (*median_ms * 1e-3) / 1e12 : 0;
    if (err.empty() && cudaStreamSynchronize(stream) != cudaSuccess) err = cudaGetErrorString(cudaGetLastError());
  }
  if (handle_) api_->set_stream(handle_, nullptr);  // before `timing` destroys the stream
  for (void* p : {a, b, c})
    if (p) cudaFree(p);
  return err;
}

}  // namespace lory
