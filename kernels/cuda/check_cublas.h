// The check program's dense baseline: a SwiGLU FFN of the same d, f over all G·T tokens through cuBLAS,
// loaded at run time with dlopen (the build machines have no cuBLAS; no cuBLAS header is used: the few
// entry points are declared here from the documented C API).
#pragma once
#include <string>
#include <vector>

#include "moe_cuda_plan.h"

namespace lory {

// Where the baseline looks for cuBLAS, in order: the loader's own search by name (LD_LIBRARY_PATH,
// ld.so.cache: libcublas.so, .so.13, .so.12), then those files where they exist in $CUDA_HOME/lib64,
// $CUDA_PATH/lib64, /usr/local/cuda/lib64, /usr/local/cuda-*/lib64 (newest first), and Python's
// nvidia/cublas/lib (pip's nvidia-cublas wheels) under $PYTHONPATH, the site-/dist-packages of
// $VIRTUAL_ENV, $CONDA_PREFIX, ~/.local, /usr/local, /usr, and /usr/lib/python3/dist-packages.
std::vector<std::string> cublas_candidates();

struct DenseTimes {
  double fwd_ms = 0, bwd_ms = 0;
};

class DenseCublas {
 public:
  // Loads the first of cublas_candidates() that dlopen accepts; on failure available() is false and why()
  // says why.
  DenseCublas();
  ~DenseCublas();
  bool available() const { return handle_ != nullptr; }
  const std::string& why() const { return why_; }
  const std::string& library() const { return library_; }

  // Median times over `repeats` of the dense forward (3 GEMMs + SwiGLU) and backward (a, b recomputed
  // like the fused op: 8 GEMMs + SwiGLU backward) on rows = G·T tokens. Inputs are random device data
  // of type t allocated here (uniform, at the fused op's scales). Returns "" or an error message.
  std::string time_ffn(CudaDType t, long long rows, long long d, long long f, int repeats, DenseTimes* out);

  // The measured matmul peak (bin/gpu-check's MFU denominator): median time over `repeats` of one n×n×n
  // GEMM of type t (float32 accumulation) on random device data; *tflops = 2n³ / median. "" or an error.
  std::string time_gemm(CudaDType t, long long n, int repeats, double* median_ms, double* tflops);

 private:
  void* lib_ = nullptr;
  void* handle_ = nullptr;  // cublasHandle_t
  std::string why_, library_;
  struct Api;
  Api* api_ = nullptr;
};

}  // namespace lory
