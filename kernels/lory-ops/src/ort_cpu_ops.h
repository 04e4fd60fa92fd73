#pragma once
#include <onnxruntime_c_api.h>

#include "lory/moe_cpu.h"

namespace lory {
// LoryMoEFFN, LoryMoEFFNGrad, AdamWUpdate (float32) and ScatterAddRows (float32, float64), CPU.
OrtStatus* add_cpu_ops(OrtCustomOpDomain* domain);
// AdamWUpdate alone (ort_adamw_op.cpp).
OrtStatus* add_cpu_adamw_op(OrtCustomOpDomain* domain);
// ScatterAddRows, float and double (ort_scatter_rows_op.cpp).
OrtStatus* add_cpu_scatter_rows_ops(OrtCustomOpDomain* domain);
// Runs tasks on the session's intra-op pool (KernelContext_ParallelFor); serially when there is none.
ParallelFor ort_parallel_for(OrtKernelContext* ctx);
}  // namespace lory
