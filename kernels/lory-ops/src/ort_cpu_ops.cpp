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
  MoeOpKind kind;
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

OrtStatus* compute(const MoeOpKind& kind, OrtKernelContext* ctx) {
  const char* op_name = kind.name();
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
  if (!kind.grad) {
    void* y = nullptr;
    void* saved = nullptr;
    LORY_RETURN_IF_ERROR(make_output(ctx, 0, in.dims[0], &y));
    if (kind.saves) LORY_RETURN_IF_ERROR(make_output(ctx, 1, {2, s.G, s.T, s.f}, &saved));
    LORY_RETURN_IF_ERROR(allocate_scratch(ctx, moe_forward_scratch_floats(s, {}, kind.saves), &scratch));
    moe_forward(s, data(0), data(1), data(2), data(3), data(4), static_cast<float*>(y), static_cast<float*>(saved),
                static_cast<float*>(scratch.data), parallel);
    return nullptr;
  }
  void* out[5] = {};
  for (size_t i = 0; i < 5; ++i) LORY_RETURN_IF_ERROR(make_output(ctx, i, in.dims[i], &out[i]));
  LORY_RETURN_IF_ERROR(allocate_scratch(ctx, moe_backward_scratch_floats(s), &scratch));
  moe_backward(s, data(0), data(1), data(2), data(3), data(4), data(5), kind.saves ? data(6) : nullptr,
               static_cast<float*>(out[0]), static_cast<float*>(out[1]), static_cast<float*>(out[2]),
               static_cast<float*>(out[3]), static_cast<float*>(out[4]), static_cast<float*>(scratch.data), parallel);
  return nullptr;
}

// ORT calls these through plain function pointers, so each op's kind is a template argument.
template <bool Grad, bool Saves>
OrtCustomOp make_op() {
  static constexpr MoeOpKind kKind{Grad, Saves};
  OrtCustomOp op;
  init_custom_op(&op);
  op.GetName = [](const OrtCustomOp*) { return kKind.name(); };
  op.GetExecutionProviderType = [](const OrtCustomOp*) { return "CPUExecutionProvider"; };
  op.GetInputType = [](const OrtCustomOp*, size_t) { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; };
  op.GetOutputType = [](const OrtCustomOp*, size_t) { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; };
  op.GetInputTypeCount = [](const OrtCustomOp*) { return kKind.inputs(); };
  op.GetOutputTypeCount = [](const OrtCustomOp*) { return kKind.outputs(); };
  op.CreateKernelV2 = [](const OrtCustomOp*, const OrtApi*, const OrtKernelInfo*, void** k) -> OrtStatus* {
    *k = new CpuKernel{kKind};
    return nullptr;
  };
  op.KernelComputeV2 = [](void* k, OrtKernelContext* ctx) -> OrtStatus* {
    const MoeOpKind& kind = static_cast<CpuKernel*>(k)->kind;
    try {
      return compute(kind, ctx);
    } catch (const std::exception& ex) {
      return g_ort->CreateStatus(ORT_RUNTIME_EXCEPTION, (std::string(kind.name()) + " (CPU): " + ex.what()).c_str());
    }
  };
  op.KernelDestroy = [](void* k) { delete static_cast<CpuKernel*>(k); };
  return op;
}

const OrtCustomOp kOps[4] = {make_op<false, false>(), make_op<true, false>(), make_op<false, true>(),
                             make_op<true, true>()};

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
  for (const OrtCustomOp& op : kOps) LORY_RETURN_IF_ERROR(g_ort->CustomOpDomain_Add(domain, &op));
  LORY_RETURN_IF_ERROR(add_cpu_adamw_op(domain));
  return add_cpu_scatter_rows_ops(domain);
}

}  // namespace lory
