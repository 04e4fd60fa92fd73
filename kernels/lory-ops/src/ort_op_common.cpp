#include "ort_op_common.h"

#include <cstring>

#include "lory/adamw.h"

namespace lory {

const OrtApi* g_ort = nullptr;

static std::string dims_text(const std::vector<int64_t>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "," : "") + std::to_string(d[i]);
  return s + "]";
}

static std::string type_name(ONNXTensorElementDataType t) {
  switch (t) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return "float32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return "float16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16: return "bfloat16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: return "float64";
    default: return "ONNX type " + std::to_string(int(t));
  }
}

OrtStatus* read_moe_inputs(OrtKernelContext* ctx, const char* op_name, OpInputs* in, MoeShape* shape) {
  size_t count = 0;
  LORY_RETURN_IF_ERROR(g_ort->KernelContext_GetInputCount(ctx, &count));
  in->values.resize(count);
  in->dims.resize(count);
  in->types.resize(count);
  for (size_t i = 0; i < count; ++i) {
    LORY_RETURN_IF_ERROR(g_ort->KernelContext_GetInput(ctx, i, &in->values[i]));
    if (!in->values[i]) return make_error(std::string(op_name) + ": input " + std::to_string(i) + " is missing");
    OrtTensorTypeAndShapeInfo* info = nullptr;
    LORY_RETURN_IF_ERROR(g_ort->GetTensorTypeAndShape(in->values[i], &info));
    size_t rank = 0;
    OrtStatus* st = g_ort->GetDimensionsCount(info, &rank);
    if (!st) {
      in->dims[i].resize(rank);
      st = g_ort->GetDimensions(info, in->dims[i].data(), rank);
    }
    if (!st) st = g_ort->GetTensorElementType(info, &in->types[i]);
    g_ort->ReleaseTensorTypeAndShapeInfo(info);
    if (st) return st;
  }
  for (size_t i = 1; i < count; ++i)
    if (in->types[i] != in->types[0])
      return make_error(std::string(op_name) + ": input '" + kMoeInputNames[i < 7 ? i : 0] +
                        "' has element type " + type_name(in->types[i]) + " but 'x' has " +
                        type_name(in->types[0]) + "; all inputs must share one type");
  const std::string problem = infer_moe_shape(op_name, in->dims, shape);
  return problem.empty() ? nullptr : make_error(problem);
}

OrtStatus* read_adamw_inputs(OrtKernelContext* ctx, AdamWInputs* out) {
  static const char* const kNames[5] = {"p", "g", "m", "v", "hyper"};
  const OrtValue* in[5] = {};
  std::vector<int64_t> dims[5];
  for (size_t i = 0; i < 5; ++i) {
    LORY_RETURN_IF_ERROR(g_ort->KernelContext_GetInput(ctx, i, &in[i]));
    if (!in[i]) return make_error(std::string(kAdamWOpName) + ": input '" + kNames[i] + "' is missing");
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
      return make_error(std::string(kAdamWOpName) + ": input '" + kNames[i] + "' has shape " + dims_text(dims[i]) +
                        ", expected the shape of 'p' " + dims_text(dims[0]));
  int64_t n = 1, hyper_n = 1;
  for (int64_t d : dims[0]) n *= d;
  for (int64_t d : dims[4]) hyper_n *= d;
  if (hyper_n != kAdamWHyperCount)
    return make_error(std::string(kAdamWOpName) + ": input 'hyper' has shape " + dims_text(dims[4]) + ", expected " +
                      std::to_string(kAdamWHyperCount) + " values (decay, step_size, bc2_sqrt, grad_scale, beta1, beta2, eps)");
  for (size_t i = 0; i < 5; ++i) {
    const void* p = nullptr;
    LORY_RETURN_IF_ERROR(g_ort->GetTensorData(in[i], &p));
    out->data[i] = static_cast<const float*>(p);
  }
  out->dims = dims[0];
  out->n = n;
  return nullptr;
}

OrtStatus* make_output(OrtKernelContext* ctx, size_t index, const std::vector<int64_t>& dims, void** data) {
  OrtValue* value = nullptr;
  LORY_RETURN_IF_ERROR(g_ort->KernelContext_GetOutput(ctx, index, dims.data(), dims.size(), &value));
  return g_ort->GetTensorMutableData(value, data);
}

void init_custom_op(OrtCustomOp* op) {
  std::memset(op, 0, sizeof *op);
  op->version = ORT_API_VERSION;
  op->GetInputCharacteristic = [](const OrtCustomOp*, size_t) { return INPUT_OUTPUT_REQUIRED; };
  op->GetOutputCharacteristic = [](const OrtCustomOp*, size_t) { return INPUT_OUTPUT_REQUIRED; };
  op->GetInputMemoryType = [](const OrtCustomOp*, size_t) { return OrtMemTypeDefault; };
  op->GetVariadicInputMinArity = [](const OrtCustomOp*) { return 1; };
  op->GetVariadicInputHomogeneity = [](const OrtCustomOp*) { return 1; };
  op->GetVariadicOutputMinArity = [](const OrtCustomOp*) { return 1; };
  op->GetVariadicOutputHomogeneity = [](const OrtCustomOp*) { return 1; };
  op->GetStartVersion = [](const OrtCustomOp*) { return 1; };
  op->GetEndVersion = [](const OrtCustomOp*) { return 2147483647; };
}

}  // namespace lory
