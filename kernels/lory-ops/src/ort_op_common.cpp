#include "ort_op_common.h"

#include <cstring>

namespace lory {

const OrtApi* g_ort = nullptr;

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
