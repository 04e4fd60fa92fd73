// ORT wrapper of the fused AdamW update: ai.lory::AdamWUpdate(p, g, m, v, hyper[7]) → (p', m', v'), float32,
// CPU. p, g, m, v share one shape; hyper = (decay, step_size, bc2_sqrt, grad_scale, β₁, β₂, ε).
#include <exception>
#include <string>

#include "lory/adamw.h"
#include "ort_cpu_ops.h"
#include "ort_op_common.h"

namespace lory {
namespace {

OrtStatus* compute_adamw(OrtKernelContext* ctx) {
  AdamWInputs in;
  LORY_RETURN_IF_ERROR(read_adamw_inputs(ctx, &in));
  const float* hp = in.data[4];
  const AdamWHyper h{hp[0], hp[1], hp[2], hp[3], hp[4], hp[5], hp[6]};
  void* out[3] = {};
  for (size_t i = 0; i < 3; ++i) LORY_RETURN_IF_ERROR(make_output(ctx, i, in.dims, &out[i]));
  adamw_update(in.n, in.data[0], in.data[1], in.data[2], in.data[3], h, static_cast<float*>(out[0]),
               static_cast<float*>(out[1]), static_cast<float*>(out[2]), ort_parallel_for(ctx));
  return nullptr;
}

const OrtCustomOp kAdamWOp = make_adamw_custom_op<compute_adamw, kCpuProvider>();

}  // namespace

OrtStatus* add_cpu_adamw_op(OrtCustomOpDomain* domain) { return g_ort->CustomOpDomain_Add(domain, &kAdamWOp); }

}  // namespace lory
