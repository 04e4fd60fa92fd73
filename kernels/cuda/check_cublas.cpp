// Dense cuBLAS baseline of the check program: see check_cublas.h.
#include "check_cublas.h"

#include <cuda_runtime.h>
#include <dlfcn.h>
#include <library_types.h>

#include <algorithm>
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

DenseCublas::DenseCublas() {
  for (const char* name : {"libcublas.so", "libcublas.so.13", "libcublas.so.12"}) {
    lib_ = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (lib_) {
      library_ = name;
      break;
    }
  }
  if (!lib_) {
    const char* e = dlerror();
    why_ = std::string("libcublas.so not found (") + (e ? e : "dlopen failed") + ")";
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

}  // namespace

std::string DenseCublas::time_ffn(CudaDType t, long long rows, long long d, long long f, int repeats,
                                  DenseTimes* out) {
  if (!handle_) return why_;
  const size_t es = element_size(t);
  std::vector<void*> allocs;
  auto alloc = [&](long long n) {
    void* p = nullptr;
    if (cudaMalloc(&p, size_t(n) * es) != cudaSuccess) return static_cast<void*>(nullptr);
    cudaMemset(p, 0, size_t(n) * es);  // zeros: finite; speed does not depend on the values
    allocs.push_back(p);
    return p;
  };
  void *x = alloc(rows * d), *dy = alloc(rows * d), *y = alloc(rows * d), *dx = alloc(rows * d);
  void *wg = alloc(d * f), *wu = alloc(d * f), *wd = alloc(f * d);
  void *dwg = alloc(d * f), *dwu = alloc(d * f), *dwd = alloc(f * d);
  void *a = alloc(rows * f), *b = alloc(rows * f), *h = alloc(rows * f), *dh = alloc(rows * f);
  void *da = alloc(rows * f), *db = alloc(rows * f);
  std::string err;
  if (allocs.size() != 16) err = "cudaMalloc failed for the dense baseline";
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  if (err.empty() && (cudaStreamCreate(&stream) != cudaSuccess || cudaEventCreate(&start) != cudaSuccess ||
                      cudaEventCreate(&stop) != cudaSuccess))
    err = "cudaStreamCreate/cudaEventCreate failed";
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
  auto median_ms = [&](const auto& run) {
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
  };
  if (err.empty()) {
    forward();  // warm-up: cuBLAS picks and loads its kernels
    backward();
    cudaStreamSynchronize(stream);
    out->fwd_ms = median_ms(forward);
    out->bwd_ms = median_ms(backward);
    if (err.empty() && cudaStreamSynchronize(stream) != cudaSuccess) err = cudaGetErrorString(cudaGetLastError());
  }
  if (start) cudaEventDestroy(start);
  if (stop) cudaEventDestroy(stop);
  if (handle_) api_->set_stream(handle_, nullptr);
  if (stream) cudaStreamDestroy(stream);
  for (void* p : allocs) cudaFree(p);
  return err;
}

}  // namespace lory
