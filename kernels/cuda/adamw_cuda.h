// CUDA kernel of the fused AdamW update (ai.lory::AdamWUpdate on CUDAExecutionProvider): the CPU op's
// arithmetic (kernels/lory-ops/include/lory/adamw.h), float32, one pass that reads p, g, m, v and writes
// p', m', v'. Every operation is a separately rounded IEEE float32 operation in the CPU kernel's order
// (no FMA contraction; division and square root correctly rounded), so on the same inputs it gives the
// CPU kernel's bits (the check program compares them).
#pragma once
#include <string>

namespace lory {

// n elements; every pointer is device memory, `hyper` the op's 7 values (decay, step_size, bc2_sqrt,
// grad_scale, β₁, β₂, ε), read on the device so no host sync is needed. Outputs may not alias inputs.
// Queued on `stream` (a cudaStream_t). Returns "" or the error text; first reports an error already
// pending on the thread (as moe_cuda.h's entry points do).
std::string cuda_adamw_update(long long n, const float* p, const float* g, const float* m, const float* v,
                              const float* hyper, float* p_out, float* m_out, float* v_out, void* stream);

}  // namespace lory
