// CUDA kernel of the merged-expert SwiGLU FFN (Lory): plain C++ interface, no ORT.
// Expert merge happens on the fly inside the GEMM tiles: while a 32×64 tile of B is staged into shared
// memory it is built as Σᵢ e[s,i]·Wᵢ from the (L2-resident) expert weights, so merged weights never
// reach global memory and no cuBLAS is needed. float32 runs on CUDA cores (exact fp32 FMA);
// float16/bfloat16 run on tensor cores (WMMA 16×16×16, fp32 accumulation).
#pragma once
#include <cstddef>

#include "lory/moe_shape.h"

namespace lory {

enum class CudaDType { f32, f16, bf16 };
const char* dtype_name(CudaDType t);

// Device scratch (bytes) the caller provides: activation-sized (G·T·f), never G·d·f.
size_t moe_cuda_forward_scratch_bytes(const MoeShape& s, CudaDType t);
size_t moe_cuda_backward_scratch_bytes(const MoeShape& s, CudaDType t);

// All pointers are device pointers of element type t; stream is a cudaStream_t. Returns "" on success,
// otherwise the CUDA error text. Asynchronous: nothing waits for the stream.
std::string moe_cuda_forward(const MoeShape& s, CudaDType t, const void* x, const void* e, const void* w_gate,
                             const void* w_up, const void* w_down, void* y, void* scratch, void* stream);

// Recomputes a = x·W̄g and b = x·W̄u (as the CPU kernel does) instead of saving them in the forward.
std::string moe_cuda_backward(const MoeShape& s, CudaDType t, const void* x, const void* e, const void* w_gate,
                              const void* w_up, const void* w_down, const void* dy, void* dx, void* de,
                              void* dw_gate, void* dw_up, void* dw_down, void* scratch, void* stream);

}  // namespace lory
