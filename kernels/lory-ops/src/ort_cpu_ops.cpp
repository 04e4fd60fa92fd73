// Thin ORT wrapper around moe_forward / moe_backward: validate, allocate outputs and arena scratch,
// run on the session's intra-op pool (KernelContext_ParallelFor), so thread settings are respected and
// no second pool competes for the cores.
#include "ort_cpu_ops.h"

#include <exception>
#include <memory>

#include "lory/moe_cpu.h"
#include "ort_op_common.h"

namespace lory {
namespace {

struct CpuKernel {
  bool grad;
};

struct ParallelCall {
  const std::function<void(size_t)>* body;
};

void run_index(void* data, size_t i) { (*static_cast<ParallelCall*>(data)->body)(i); }

// Scratch from the session's CPU allocator (an arena: reused across runs, no page faults per step).
struct Scratch {
  OrtAllocator* allocator = nullptr;
  void* data = nullptr;
  ~Scratch() {
    if (data)
      if (OrtStatus* st = g_ort->AllocatorFree(allocator, data)) g_ort->ReleaseStatus(st);
    if (allocator) g_ort->ReleaseAllocator(allocator);
  }
};

OrtStatus* allocate_scratch(OrtKernelContext* ctx, size_t floats, Scratch* scratch) {
  OrtMemoryInfo* info = nullptr;
  LORY_RETURN_IF_ERROR(g_ort->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &info));
  OrtStatus* st = g_ort->KernelContext_GetAllocator(ctx, info, &scratch->allocator);
  g_ort->ReleaseMemoryInfo(info);
  if (st) return st;
  return g_ort->AllocatorAlloc(scratch->allocator, floats * sizeof(float), &scratch->data);
}

OrtStatus* compute(CpuKernel* kernel, OrtKernelContext* ctx) {
  const char* op_name = kernel->grad ? kGradOpName : kForwardOpName;
  OpInputs in;
  MoeShape s;
  LORY_RETURN_IF_ERROR(read_moe_inputs(ctx, op_name, &in, &s));
  if (in.types[0] != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT)
    return make_error(std::string(op_name) + ": the CPU kernel supports float32 only");
  auto data = [&](size_t i) {
    const void* p = nullptr;
    OrtStatus* st = g_ort->GetTensorData(in.values[i], &p);
    if (st) g_ort->ReleaseStatus(st);
    return static_cast<const float*>(p);
  };
  const ParallelFor parallel = ort_parallel_for(ctx);
  Scratch scratch;
  if (!kernel->grad) {
    void* y = nullptr;
    LORY_RETURN_IF_ERROR(make_output(ctx, 0, in.dims[0], &y));
    LORY_RETURN_IF_ERROR(allocate_scratch(ctx, moe_forward_scratch_floats(s), &scratch));
    moe_forward(s, data(0), data(1), data(2), data(3), data(4), static_cast<float*>(y),
                static_cast<float*>(scratch.data), parallel);
    return nullptr;
  }
  void* out[5] = {};
  for (size_t i = 0; i < 5; ++i) LORY_RETURN_IF_ERROR(make_output(ctx, i, in.dims[i], &out[i]));
  LORY_RETURN_IF_ERROR(allocate_scratch(ctx, moe_backward_scratch_floats(s), &scratch));
  moe_backward(s, data(0), data(1), data(2), data(3), data(4), data(5), static_cast<float*>(out[0]),
               static_cast<float*>(out[1]), static_cast<float*>(out[2]), static_cast<float*>(out[3]),
               static_cast<float*>(out[4]), static_cast<float*>(scratch.data), parallel);
  return nullptr;
}

OrtCustomOp make_op(bool grad) {
  OrtCustomOp op;
  init_custom_op(&op);
  op.GetName = grad ? [](const OrtCustomOp*) { return kGradOpName; } : [](const OrtCustomOp*) { return kForwardOpName; };
  op.GetExecutionProviderType = [](const OrtCustomOp*) { return "CPUExecutionProvider"; };
  op.GetInputType = [](const OrtCustomOp*, size_t) { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; };
  op.GetOutputType = [](const OrtCustomOp*, size_t) { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; };
  op.GetInputTypeCount = grad ? [](const OrtCustomOp*) -> size_t { return 6; }
                              : [](const OrtCustomOp*) -> size_t { return 5; };
  op.GetOutputTypeCount = grad ? [](const OrtCustomOp*) -> size_t { return 5; }
                               : [](const OrtCustomOp*) -> size_t { return 1; };
  op.CreateKernelV2 = grad ? [](const OrtCustomOp*, const OrtApi*, const OrtKernelInfo*, void** k) -> OrtStatus* {
    *k = new CpuKernel{true};
    return nullptr;
  }
                           : [](const OrtCustomOp*, const OrtApi*, const OrtKernelInfo*, void** k) -> OrtStatus* {
    *k = new CpuKernel{false};
    return nullptr;
  };
  op.KernelComputeV2 = [](void* k, OrtKernelContext* ctx) -> OrtStatus* {
    try {
      return compute(static_cast<CpuKernel*>(k), ctx);
    } catch (const std::exception& ex) {
      return g_ort->CreateStatus(ORT_RUNTIME_EXCEPTION, (std::string("LoryMoEFFN (CPU): ") + ex.what()).c_str());
    }
  };
  op.KernelDestroy = [](void* k) { delete static_cast<CpuKernel*>(k); };
  return op;
}

const OrtCustomOp kForwardOp = make_op(false);
const OrtCustomOp kGradOp = make_op(true);

}  // namespace

ParallelFor ort_parallel_for(OrtKernelContext* ctx) {
  return [ctx](size_t n, const std::function<void(size_t)>& body) {
    ParallelCall call{&body};
    if (OrtStatus* st = g_ort->KernelContext_ParallelFor(ctx, run_index, n, 0, &call)) {
      g_ort->ReleaseStatus(st);  // no pool available: same work, one thread
      for (size_t i = 0; i < n; ++i) body(i);
    }
  };
}

OrtStatus* add_cpu_ops(OrtCustomOpDomain* domain) {
  LORY_RETURN_IF_ERROR(g_ort->CustomOpDomain_Add(domain, &kForwardOp));
  LORY_RETURN_IF_ERROR(g_ort->CustomOpDomain_Add(domain, &kGradOp));
  return add_cpu_adamw_op(domain);
}

}  // namespace lory
