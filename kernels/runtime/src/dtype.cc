#include "dtype.h"

namespace lory {
namespace {
const DTypeInfo kDTypes[] = {
    {"float32", ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, 4, napi_float32_array},
    {"float64", ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE, 8, napi_float64_array},
    {"float16", ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16, 2, napi_uint16_array},
    {"bfloat16", ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16, 2, napi_uint16_array},
    {"int64", ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, 8, napi_bigint64_array},
    {"int32", ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32, 4, napi_int32_array},
    {"uint16", ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16, 2, napi_uint16_array},
    {"uint8", ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, 1, napi_uint8_array},
    {"int8", ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8, 1, napi_int8_array},
    {"bool", ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL, 1, napi_uint8_array},
};
}  // namespace

const DTypeInfo* DTypeByName(const std::string& name) {
  for (const auto& d : kDTypes)
    if (name == d.name) return &d;
  return nullptr;
}

const DTypeInfo* DTypeByOrt(ONNXTensorElementDataType type) {
  for (const auto& d : kDTypes)
    if (d.ort == type) return &d;
  return nullptr;
}

std::string DTypeNames() {
  std::string names;
  for (const auto& d : kDTypes) {
    if (!names.empty()) names += ", ";
    names += d.name;
  }
  return names;
}

bool ArrayMatchesDType(napi_typedarray_type array, const DTypeInfo& dtype) {
  if (array == dtype.array) return true;
  return dtype.ort == ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL && array == napi_uint8_clamped_array;
}

const char* TypedArrayName(napi_typedarray_type array) {
  switch (array) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
    default: return "TypedArray";
  }
}

}  // namespace lory
