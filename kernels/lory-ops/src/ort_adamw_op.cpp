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

OrtCustomOp make_adamw_op() {
  OrtCustomOp op;
  init_custom_op(&op);
  op.GetName = [](const OrtCustomOp*) { return kAdamWOpName; };
  op.GetExecutionProviderType = [](const OrtCustomOp*) { return "CPUExecutionProvider"; };
  op.GetInputType = [](const OrtCustomOp*, size_t) { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; };
  op.GetOutputType = [](const OrtCustomOp*, size_t) { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; };
  op.GetInputTypeCount = [](const OrtCustomOp*) -> size_t { return 5; };
  op.GetOutputTypeCount = [](const OrtCustomOp*) -> size_t { return 3; };
  op.CreateKernelV2 = [](const OrtCustomOp*, const OrtApi*, const OrtKernelInfo*, void** k) -> OrtStatus* {
    *k = nullptr;  // stateless
    return nullptr;
  };
  op.KernelComputeV2 = [](void*, OrtKernelContext* ctx) -> OrtStatus* {
    try {
      return compute_adamw(ctx);
    } catch (const std::exception& ex) {
      return g_ort->CreateStatus(ORT_RUNTIME_EXCEPTION, (std::string("AdamWUpdate (CPU): ") + ex.what()).c_str());
    }
  };
  op.KernelDestroy = [](void*) {};
  return op;
}

const OrtCustomOp kAdamWOp = make_adamw_op();

}  // namespace

OrtStatus* add_cpu_adamw_op(OrtCustomOpDomain* domain) { return g_ort->CustomOpDomain_Add(domain, &kAdamWOp); }

}  // namespace lory
