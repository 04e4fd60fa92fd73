// lory's dtype names ↔ ONNX Runtime element types ↔ JS TypedArray kinds.
#pragma once
#include <napi.h>
#include <onnxruntime_c_api.h>

#include <cstddef>
#include <string>

namespace lory {

struct DTypeInfo {
  const char* name;
  ONNXTensorElementDataType ort;
  size_t bytes;
  napi_typedarray_type array;
};

// nullptr when the name is not a dtype lory supports.
const DTypeInfo* DTypeByName(const std::string& name);
const DTypeInfo* DTypeByOrt(ONNXTensorElementDataType type);
std::string DTypeNames();
// TypedArray kinds that may carry a dtype's bytes (uint16 arrays carry float16/bfloat16 bits).
bool ArrayMatchesDType(napi_typedarray_type array, const DTypeInfo& dtype);
const char* TypedArrayName(napi_typedarray_type array);

}  // namespace lory
