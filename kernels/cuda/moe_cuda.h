// CUDA kernel of the merged-expert SwiGLU FFN (Lory): plain C++ interface, no ORT.
// Expert merge happens on the fly inside the GEMM tiles: while a tile of B is staged into shared memory
// it is built as Σᵢ e[s,i]·Wᵢ from the expert weights, so merged weights never reach global memory and
// no cuBLAS is needed. float32 runs on CUDA cores (exact fp32 FMA); float16/bfloat16 run on tensor cores
// (fp32 accumulation). Segments run in chunks sized by moe_cuda_plan.h so scratch stays under a budget.
#pragma once
#include <cstddef>
#include <string>

#include "lory/moe_shape.h"
#include "moe_cuda_plan.h"

namespace lory {

// Device scratch (bytes) the caller provides for these options: at most opt.scratch_budget_bytes
// whenever one segment fits in it (moe_cuda_plan.h), never G·d·f.
size_t moe_cuda_forward_scratch_bytes(const MoeShape& s, CudaDType t, const MoeCudaOptions& opt = {});
size_t moe_cuda_backward_scratch_bytes(const MoeShape& s, CudaDType t, const MoeCudaOptions& opt = {});

// All pointers are device pointers of element type t; stream is a cudaStream_t. Returns "" on success,
// otherwise the CUDA error text. Asynchronous: nothing waits for the stream. The scratch must have the
// size the matching *_scratch_bytes returns for the same options (the same with or without `saved`).
// `saved` [2, G, T, f] (a = x·W̄g, then b = x·W̄u, in type t), as the CPU kernel's moe_forward /
// moe_backward: null for the plain pair (LoryMoEFFN / LoryMoEFFNGrad), where the backward recomputes
// a and b; the training pair (LoryMoEFFNTrain / LoryMoEFFNTrainGrad) has the forward write them there
// and the backward read them instead of running those two GEMMs.
std::string moe_cuda_forward(const MoeShape& s, CudaDType t, const void* x, const void* e, const void* w_gate,
                             const void* w_up, const void* w_down, void* y, void* saved, void* scratch, void* stream,
                             const MoeCudaOptions& opt = {});

// Deterministic: the same inputs give the same bits (no float atomics; fixed reduction orders).
std::string moe_cuda_backward(const MoeShape& s, CudaDType t, const void* x, const void* e, const void* w_gate,
                              const void* w_up, const void* w_down, const void* dy, const void* saved, void* dx,
                              void* de, void* dw_gate, void* dw_up, void* dw_down, void* scratch, void* stream,
                              const MoeCudaOptions& opt = {});

// Every call above first reports an error already pending on the calling thread (cudaPeekAtLastError,
// left by earlier work) without launching anything and without clearing it.

// n values of type t, uniform in [-scale, scale) from a hash of (seed, index) (the check program's
// dense cuBLAS baseline runs on random data: tensor cores are faster on zeros).
std::string cuda_fill_uniform(CudaDType t, long long n, unsigned long long seed, float scale, void* p, void* stream);

// Pointwise SwiGLU on n elements of type t (the check program's dense cuBLAS baseline):
// h = silu(a)·b; and its backward from dh: h, da, db.
std::string cuda_swiglu_forward(CudaDType t, long long n, const void* a, const void* b, void* h, void* stream);
std::string cuda_swiglu_backward(CudaDType t, long long n, const void* a, const void* b, const void* dh, void* h,
                                 void* da, void* db, void* stream);

}  // namespace lory
