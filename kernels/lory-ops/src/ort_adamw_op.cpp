// ORT wrapper of the fused AdamW update: ai.lory::AdamWUpdate(p, g, m, v, hyper[7]) → (p', m', v'), float32,
// CPU. p, g, m, v share one shape; hyper = (decay, step_size, bc2_sqrt, grad_scale, β₁, β₂, ε).
#include <exception>
#include <string>
#include <vector>

#include "lory/adamw.h"
#include "ort_cpu_ops.h"
#include "ort_op_common.h"

namespace lory {
namespace {

const char* const kInputNames[5] = {"p", "g", "m", "v", "hyper"};

std::string dims_text(const std::vector<int64_t>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "," : "") + std::to_string(d[i]);
  return s + "]";
}

OrtStatus* compute_adamw(OrtKernelContext* ctx) {
  const OrtValue* in[5] = {};
  std::vector<int64_t> dims[5];
  for (size_t i = 0; i < 5; ++i) {
    LORY_RETURN_IF_ERROR(g_ort->KernelContext_GetInput(ctx, i, &in[i]));
    if (!in[i]) return make_error(std::string(kAdamWOpName) + ": input '" + kInputNames[i] + "' is missing");
    OrtTensorTypeAndShapeInfo* info = nullptr;
    LORY_RETURN_IF_ERROR(g_ort->GetTensorTypeAndShape(in[i], &info));
    size_t rank = 0;
    OrtStatus* st = g_ort->GetDimensionsCount(info, &rank);
    if (!st) {
      dims[i].resize(rank);
      st = g_ort->GetDimensions(info, dims[i].data(), rank);
    }
    g_ort->ReleaseTensorTypeAndShapeInfo(info);
    if (st) return st;
  }
  for (size_t i = 1; i < 4; ++i)
    if (dims[i] != dims[0])
      return make_error(std::string(kAdamWOpName) + ": input '" + kInputNames[i] + "' has shape " + dims_text(dims[i]) +
                        ", expected the shape of 'p' " + dims_text(dims[0]));
  int64_t n = 1, hyper_n = 1;
  for (int64_t d : dims[0]) n *= d;
  for (int64_t d : dims[4]) hyper_n *= d;
  if (hyper_n != kAdamWHyperCount)
    return make_error(std::string(kAdamWOpName) + ": input 'hyper' has shape " + dims_text(dims[4]) + ", expected " +
                      std::to_string(kAdamWHyperCount) + " values (decay, step_size, bc2_sqrt, grad_scale, beta1, beta2, eps)");
  const float* data[5] = {};
  for (size_t i = 0; i < 5; ++i) {
    const void* p = nullptr;
    LORY_RETURN_IF_ERROR(g_ort->GetTensorData(in[i], &p));
    data[i] = static_cast<const float*>(p);
  }
  const float* hp = data[4];
  const AdamWHyper h{hp[0], hp[1], hp[2], hp[3], hp[4], hp[5], hp[6]};
  void* out[3] = {};
  for (size_t i = 0; i < 3; ++i) LORY_RETURN_IF_ERROR(make_output(ctx, i, dims[0], &out[i]));
  adamw_update(n, data[0], data[1], data[2], data[3], h, static_cast<float*>(out[0]), static_cast<float*>(out[1]),
               static_cast<float*>(out[2]), ort_parallel_for(ctx));
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
