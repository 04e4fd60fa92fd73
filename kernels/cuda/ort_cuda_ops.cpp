// ORT wrapper of the CUDA kernels for CUDAExecutionProvider: the merged-expert FFN pairs LoryMoEFFN /
// LoryMoEFFNGrad and the training pair LoryMoEFFNTrain / LoryMoEFFNTrainGrad in float32, float16 and
// bfloat16 (one registered op per type), and AdamWUpdate in float32 — the CPU ops' inputs, outputs and
// semantics (kernels/lory-ops/src/ort_cpu_ops.cpp, ort_adamw_op.cpp). Work is queued on the stream ORT
// hands the kernel (KernelContext_GetGPUComputeStream); scratch comes from ORT's CUDA allocator for the
// inputs' device. LORY_CUDA_MOE_KERNEL=tile|segment|group|group-wide picks the GEMM kernel (default tile,
// docs/kernels.md); it is read once per kernel instance, so a bad value fails the session's first run with
// a message naming it.
#include <cstdlib>
#include <exception>
#include <string>

#include "adamw_cuda.h"
#include "moe_cuda.h"
#include "ort_op_common.h"

namespace lory {
namespace {

struct CudaOpKernel {
  MoeOpKind kind;
  CudaDType dtype;
  MoeCudaOptions options;
  std::string config_error;  // non-empty: LORY_CUDA_MOE_KERNEL or LORY_CUDA_MOE_WGRAD holds an unknown value
};

CudaOpKernel* make_kernel(MoeOpKind kind, CudaDType dtype) {
  auto* k = new CudaOpKernel{kind, dtype, {}, {}};
  if (const char* v = std::getenv("LORY_CUDA_MOE_KERNEL"); v && *v && !parse_kernel_name(v, &k->options.kernel))
    k->config_error = std::string("LORY_CUDA_MOE_KERNEL='") + v + "': expected 'tile', 'segment', 'group' or 'group-wide'";
  if (const char* v = std::getenv("LORY_CUDA_MOE_WGRAD"); v && *v && !parse_wgrad_name(v, &k->options.wgrad) &&
      k->config_error.empty())
    k->config_error = std::string("LORY_CUDA_MOE_WGRAD='") + v + "': expected 'tile' or 'shared'";
  return k;
}

ONNXTensorElementDataType onnx_type(CudaDType t) {
  return t == CudaDType::f32   ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT
         : t == CudaDType::f16 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16
                               : ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16;
}

struct DeviceScratch {
  OrtAllocator* allocator = nullptr;
  void* data = nullptr;
  ~DeviceScratch() {
    if (data)
      if (OrtStatus* st = g_ort->AllocatorFree(allocator, data)) g_ort->ReleaseStatus(st);
    if (allocator) g_ort->ReleaseAllocator(allocator);
  }
};

OrtStatus* allocate_device_scratch(OrtKernelContext* ctx, const OrtValue* on_device, size_t bytes,
                                   DeviceScratch* out) {
  // The input's own memory info (device, vendor, id) rather than a hand-built "Cuda" one. The block comes from
  // KernelContext_GetScratchBuffer, which allocates on the kernel's compute stream: a stream-aware arena then
  // hands it to another stream (concurrent Run) only after our kernels are done. A plain AllocatorAlloc is
  // stream-less, so the block could be reused by another stream while this op's kernels still read it.
  const OrtMemoryInfo* info = nullptr;
  LORY_RETURN_IF_ERROR(g_ort->GetTensorMemoryInfo(on_device, &info));
  LORY_RETURN_IF_ERROR(g_ort->KernelContext_GetAllocator(ctx, info, &out->allocator));  // frees the block
  return g_ort->KernelContext_GetScratchBuffer(ctx, info, bytes, &out->data);
}

OrtStatus* run_error(const std::string& err) {
  return err.empty() ? nullptr : g_ort->CreateStatus(ORT_RUNTIME_EXCEPTION, err.c_str());
}

OrtStatus* compute(CudaOpKernel* kernel, OrtKernelContext* ctx) {
  const MoeOpKind& kind = kernel->kind;
  const char* op_name = kind.name();
  if (!kernel->config_error.empty())
    return g_ort->CreateStatus(ORT_INVALID_ARGUMENT, (std::string(op_name) + " (CUDA): " + kernel->config_error).c_str());
  OpInputs in;
  MoeShape s;
  LORY_RETURN_IF_ERROR(read_moe_inputs(ctx, op_name, &in, &s));
  void* stream = nullptr;
  LORY_RETURN_IF_ERROR(g_ort->KernelContext_GetGPUComputeStream(ctx, &stream));
  const void* data[7] = {};
  for (size_t i = 0; i < in.values.size() && i < 7; ++i)
    LORY_RETURN_IF_ERROR(g_ort->GetTensorData(in.values[i], &data[i]));
  // Freed (to the arena, tagged with ORT's stream) when `scratch` goes out of scope, before the kernels finish.
  DeviceScratch scratch;
  if (!kind.grad) {
    void* y = nullptr;
    void* saved = nullptr;
    LORY_RETURN_IF_ERROR(make_output(ctx, 0, in.dims[0], &y));
    if (kind.saves) LORY_RETURN_IF_ERROR(make_output(ctx, 1, {2, s.G, s.T, s.f}, &saved));
    LORY_RETURN_IF_ERROR(allocate_device_scratch(
        ctx, in.values[0], moe_cuda_forward_scratch_bytes(s, kernel->dtype, kernel->options), &scratch));
    return run_error(moe_cuda_forward(s, kernel->dtype, data[0], data[1], data[2], data[3], data[4], y, saved,
                                      scratch.data, stream, kernel->options));
  }
  void* out[5] = {};
  for (size_t i = 0; i < 5; ++i) LORY_RETURN_IF_ERROR(make_output(ctx, i, in.dims[i], &out[i]));
  LORY_RETURN_IF_ERROR(allocate_device_scratch(
      ctx, in.values[0], moe_cuda_backward_scratch_bytes(s, kernel->dtype, kernel->options), &scratch));
  return run_error(moe_cuda_backward(s, kernel->dtype, data[0], data[1], data[2], data[3], data[4], data[5],
                                     kind.saves ? data[6] : nullptr, out[0], out[1], out[2], out[3], out[4],
                                     scratch.data, stream, kernel->options));
}

struct TypedOp {
  OrtCustomOp op;  // first member: ORT passes &op back to the callbacks
  MoeOpKind kind;
  CudaDType dtype;
};

const TypedOp* typed(const OrtCustomOp* op) { return reinterpret_cast<const TypedOp*>(op); }

TypedOp make_op(MoeOpKind kind, CudaDType dtype) {
  TypedOp t;
  init_custom_op(&t.op);
  t.kind = kind;
  t.dtype = dtype;
  t.op.GetName = [](const OrtCustomOp* op) { return typed(op)->kind.name(); };
  t.op.GetExecutionProviderType = [](const OrtCustomOp*) { return "CUDAExecutionProvider"; };
  t.op.GetInputType = [](const OrtCustomOp* op, size_t) { return onnx_type(typed(op)->dtype); };
  t.op.GetOutputType = [](const OrtCustomOp* op, size_t) { return onnx_type(typed(op)->dtype); };
  t.op.GetInputTypeCount = [](const OrtCustomOp* op) { return typed(op)->kind.inputs(); };
  t.op.GetOutputTypeCount = [](const OrtCustomOp* op) { return typed(op)->kind.outputs(); };
  t.op.CreateKernelV2 = [](const OrtCustomOp* op, const OrtApi*, const OrtKernelInfo*, void** k) -> OrtStatus* {
    *k = make_kernel(typed(op)->kind, typed(op)->dtype);
    return nullptr;
  };
  t.op.KernelComputeV2 = [](void* k, OrtKernelContext* ctx) -> OrtStatus* {
    auto* kernel = static_cast<CudaOpKernel*>(k);
    try {
      return compute(kernel, ctx);
    } catch (const std::exception& ex) {
      return g_ort->CreateStatus(ORT_RUNTIME_EXCEPTION, (std::string(kernel->kind.name()) + " (CUDA): " + ex.what()).c_str());
    }
  };
  t.op.KernelDestroy = [](void* k) { delete static_cast<CudaOpKernel*>(k); };
  return t;
}

// Every kind in every type: the plain pair, then the training pair.
const TypedOp kOps[12] = {
    make_op({false, false}, CudaDType::f32), make_op({false, false}, CudaDType::f16), make_op({false, false}, CudaDType::bf16),
    make_op({true, false}, CudaDType::f32),  make_op({true, false}, CudaDType::f16),  make_op({true, false}, CudaDType::bf16),
    make_op({false, true}, CudaDType::f32),  make_op({false, true}, CudaDType::f16),  make_op({false, true}, CudaDType::bf16),
    make_op({true, true}, CudaDType::f32),   make_op({true, true}, CudaDType::f16),   make_op({true, true}, CudaDType::bf16)};

// AdamWUpdate: p, g, m, v and hyper all in device memory (hyper is computed in the graph from the step and
// the learning rate; reading it on the device needs no copy to the host and no sync).
OrtStatus* compute_adamw(OrtKernelContext* ctx) {
  AdamWInputs in;
  LORY_RETURN_IF_ERROR(read_adamw_inputs(ctx, &in));
  void* stream = nullptr;
  LORY_RETURN_IF_ERROR(g_ort->KernelContext_GetGPUComputeStream(ctx, &stream));
  void* out[3] = {};
  for (size_t i = 0; i < 3; ++i) LORY_RETURN_IF_ERROR(make_output(ctx, i, in.dims, &out[i]));
  return run_error(cuda_adamw_update(in.n, in.data[0], in.data[1], in.data[2], in.data[3], in.data[4],
                                     static_cast<float*>(out[0]), static_cast<float*>(out[1]),
                                     static_cast<float*>(out[2]), stream));
}

const OrtCustomOp kAdamWOp = make_adamw_custom_op<compute_adamw, kCudaProvider>();

}  // namespace

OrtStatus* add_cuda_ops(OrtCustomOpDomain* domain) {
  for (const TypedOp& t : kOps) LORY_RETURN_IF_ERROR(g_ort->CustomOpDomain_Add(domain, &t.op));
  return g_ort->CustomOpDomain_Add(domain, &kAdamWOp);
}

}  // namespace lory
