#pragma once
#include <onnxruntime_c_api.h>

#include "lory/moe_cpu.h"

namespace lory {
// LoryMoEFFN, LoryMoEFFNGrad and AdamWUpdate for the CPU execution provider, float32.
OrtStatus* add_cpu_ops(OrtCustomOpDomain* domain);
// AdamWUpdate alone (ort_adamw_op.cpp).
OrtStatus* add_cpu_adamw_op(OrtCustomOpDomain* domain);
// Runs tasks on the session's intra-op pool (KernelContext_ParallelFor); serially when there is none.
ParallelFor ort_parallel_for(OrtKernelContext* ctx);
}  // namespace lory
