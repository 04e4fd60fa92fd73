// Helpers shared by the CPU and CUDA custom-op wrappers: reading input shapes from an OrtKernelContext,
// creating outputs, turning messages into OrtStatus. Only the C API is used (no C++ wrapper), and the
// OrtApi comes from the OrtApiBase handed to RegisterCustomOps: this library never links onnxruntime.
#pragma once
#include <onnxruntime_c_api.h>

#include <exception>
#include <string>
#include <vector>

#include "lory/moe_shape.h"

namespace lory {

extern const OrtApi* g_ort;  // set once by RegisterCustomOps
constexpr const char* kDomain = "ai.lory";
constexpr const char* kForwardOpName = "LoryMoEFFN";
constexpr const char* kGradOpName = "LoryMoEFFNGrad";
// The training pair: the forward also returns a, b [2,G,T,f]; the gradient takes them instead of
// recomputing them.
constexpr const char* kTrainForwardOpName = "LoryMoEFFNTrain";
constexpr const char* kTrainGradOpName = "LoryMoEFFNTrainGrad";
constexpr const char* kAdamWOpName = "AdamWUpdate";
constexpr const char* kScatterRowsOpName = "ScatterAddRows";

// Evaluates an OrtStatus*-returning call and returns it from the enclosing function on error.
#define LORY_RETURN_IF_ERROR(expr)           \
  do {                                       \
    OrtStatus* lory_status_ = (expr);        \
    if (lory_status_) return lory_status_;   \
  } while (0)

inline OrtStatus* make_error(const std::string& message) {
  return g_ort->CreateStatus(ORT_INVALID_ARGUMENT, message.c_str());
}

// The four merged-FFN ops: forward or gradient, each plain or in the training variant that passes a, b
// along (its forward has the second output ab [2,G,T,f], its gradient the seventh input ab).
struct MoeOpKind {
  bool grad, saves;
  const char* name() const {
    return grad ? (saves ? kTrainGradOpName : kGradOpName) : (saves ? kTrainForwardOpName : kForwardOpName);
  }
  size_t inputs() const { return grad ? (saves ? 7 : 6) : 5; }
  size_t outputs() const { return grad ? 5 : (saves ? 2 : 1); }
};

struct OpInputs {
  std::vector<const OrtValue*> values;
  std::vector<std::vector<int64_t>> dims;
  std::vector<ONNXTensorElementDataType> types;
};

// Reads all inputs, checks they share one element type, and derives the MoE shape.
OrtStatus* read_moe_inputs(OrtKernelContext* ctx, const char* op_name, OpInputs* in, MoeShape* shape);

// AdamWUpdate's inputs (p, g, m, v, hyper; float32, which ORT checks against the registration), with
// p, g, m, v of one shape of n elements and hyper of 7 values. Pointers are where the op's provider keeps
// its inputs (host memory on CPU, device memory on CUDA).
struct AdamWInputs {
  std::vector<int64_t> dims;  // of p
  int64_t n = 0;
  const float* data[5] = {};
};
OrtStatus* read_adamw_inputs(OrtKernelContext* ctx, AdamWInputs* in);

// Allocates output `index` with `dims` and returns its data pointer.
OrtStatus* make_output(OrtKernelContext* ctx, size_t index, const std::vector<int64_t>& dims, void** data);

// Fills the parts of an OrtCustomOp that are the same for every lory op; the caller sets the rest.
void init_custom_op(OrtCustomOp* op);

inline constexpr char kCpuProvider[] = "CPUExecutionProvider";
inline constexpr char kCudaProvider[] = "CUDAExecutionProvider";

// AdamWUpdate's registration on one execution provider (the CPU and CUDA libraries differ only in
// `Compute`): float32 p, g, m, v, hyper → p', m', v', stateless; errors name the op and `Provider`.
template <OrtStatus* (*Compute)(OrtKernelContext*), const char* Provider>
OrtCustomOp make_adamw_custom_op() {
  OrtCustomOp op;
  init_custom_op(&op);
  op.GetName = [](const OrtCustomOp*) { return kAdamWOpName; };
  op.GetExecutionProviderType = [](const OrtCustomOp*) { return Provider; };
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
      return Compute(ctx);
    } catch (const std::exception& ex) {
      return g_ort->CreateStatus(ORT_RUNTIME_EXCEPTION, (std::string(kAdamWOpName) + " (" + Provider + "): " + ex.what()).c_str());
    }
  };
  op.KernelDestroy = [](void*) {};
  return op;
}

}  // namespace lory
