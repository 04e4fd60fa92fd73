// ORT wrapper of the deterministic row scatter-add: ai.lory::ScatterAddRows(ids int64[n], updates T[n, W])
// → T[rows, W], attribute `rows`; T is float or double (one registration per type, same op name).
#include <exception>
#include <string>
#include <vector>

#include "lory/scatter_rows.h"
#include "ort_cpu_ops.h"
#include "ort_op_common.h"

namespace lory {
namespace {

struct ScatterRowsKernel {
  int64_t rows = 0;
};

OrtStatus* tensor_dims(const OrtValue* v, std::vector<int64_t>* dims) {
  OrtTensorTypeAndShapeInfo* info = nullptr;
  LORY_RETURN_IF_ERROR(g_ort->GetTensorTypeAndShape(v, &info));
  size_t rank = 0;
  OrtStatus* st = g_ort->GetDimensionsCount(info, &rank);
  if (!st) {
    dims->resize(rank);
    st = g_ort->GetDimensions(info, dims->data(), rank);
  }
  g_ort->ReleaseTensorTypeAndShapeInfo(info);
  return st;
}

template <typename T>
OrtStatus* compute(const ScatterRowsKernel& k, OrtKernelContext* ctx) {
  const OrtValue* ids_value = nullptr;
  const OrtValue* updates_value = nullptr;
  LORY_RETURN_IF_ERROR(g_ort->KernelContext_GetInput(ctx, 0, &ids_value));
  LORY_RETURN_IF_ERROR(g_ort->KernelContext_GetInput(ctx, 1, &updates_value));
  std::vector<int64_t> ids_dims, upd_dims;
  LORY_RETURN_IF_ERROR(tensor_dims(ids_value, &ids_dims));
  LORY_RETURN_IF_ERROR(tensor_dims(updates_value, &upd_dims));
  const std::string op = kScatterRowsOpName;
  if (ids_dims.size() != 1 || upd_dims.size() != 2 || upd_dims[0] != ids_dims[0])
    return make_error(op + ": expects ids [n] and updates [n, W]");
  const int64_t n = ids_dims[0], width = upd_dims[1];
  const void* ids = nullptr;
  const void* updates = nullptr;
  LORY_RETURN_IF_ERROR(g_ort->GetTensorData(ids_value, &ids));
  LORY_RETURN_IF_ERROR(g_ort->GetTensorData(updates_value, &updates));
  const int64_t* id = static_cast<const int64_t*>(ids);
  const int64_t bad = scatter_rows_bad_id(n, id, k.rows);
  if (bad >= 0)
    return make_error(op + ": id " + std::to_string(id[bad]) + " at position " + std::to_string(bad) +
                      " is outside [0, " + std::to_string(k.rows) + ")");
  void* out = nullptr;
  LORY_RETURN_IF_ERROR(make_output(ctx, 0, {k.rows, width}, &out));
  scatter_add_rows<T>(n, width, k.rows, id, static_cast<const T*>(updates), static_cast<T*>(out), ort_parallel_for(ctx));
  return nullptr;
}

template <typename T>
constexpr ONNXTensorElementDataType element_type() {
  return sizeof(T) == 8 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
}

template <typename T>
OrtCustomOp make_scatter_rows_op() {
  OrtCustomOp op;
  init_custom_op(&op);
  op.GetName = [](const OrtCustomOp*) { return kScatterRowsOpName; };
  op.GetExecutionProviderType = [](const OrtCustomOp*) { return "CPUExecutionProvider"; };
  op.GetInputType = [](const OrtCustomOp*, size_t i) { return i == 0 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64 : element_type<T>(); };
  op.GetOutputType = [](const OrtCustomOp*, size_t) { return element_type<T>(); };
  op.GetInputTypeCount = [](const OrtCustomOp*) -> size_t { return 2; };
  op.GetOutputTypeCount = [](const OrtCustomOp*) -> size_t { return 1; };
  op.CreateKernelV2 = [](const OrtCustomOp*, const OrtApi*, const OrtKernelInfo* info, void** out) -> OrtStatus* {
    *out = nullptr;
    int64_t rows = 0;
    LORY_RETURN_IF_ERROR(g_ort->KernelInfoGetAttribute_int64(info, "rows", &rows));
    if (rows < 1) return make_error(std::string(kScatterRowsOpName) + ": attribute rows must be >= 1, got " + std::to_string(rows));
    *out = new ScatterRowsKernel{rows};
    return nullptr;
  };
  op.KernelComputeV2 = [](void* kernel, OrtKernelContext* ctx) -> OrtStatus* {
    try {
      return compute<T>(*static_cast<ScatterRowsKernel*>(kernel), ctx);
    } catch (const std::exception& ex) {
      return g_ort->CreateStatus(ORT_RUNTIME_EXCEPTION, (std::string(kScatterRowsOpName) + " (CPU): " + ex.what()).c_str());
    }
  };
  op.KernelDestroy = [](void* kernel) { delete static_cast<ScatterRowsKernel*>(kernel); };
  return op;
}

const OrtCustomOp kScatterRowsFloat = make_scatter_rows_op<float>();
const OrtCustomOp kScatterRowsDouble = make_scatter_rows_op<double>();

}  // namespace

OrtStatus* add_cpu_scatter_rows_ops(OrtCustomOpDomain* domain) {
  LORY_RETURN_IF_ERROR(g_ort->CustomOpDomain_Add(domain, &kScatterRowsFloat));
  return g_ort->CustomOpDomain_Add(domain, &kScatterRowsDouble);
}

}  // namespace lory
