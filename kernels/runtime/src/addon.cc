// Module entry: loads ONNX Runtime, creates tensors and sessions, reports what this machine offers.
#include <napi.h>

#include <cstring>
#include <string>
#include <vector>

#include "addon_data.h"
#include "cuda_memory.h"
#include "cuda_probe.h"
#include "dtype.h"
#include "ort_api.h"
#include "session.h"
#include "value.h"

namespace lory {
namespace {

OrtLoggingLevel ParseLogLevel(const std::string& level) {
  if (level == "verbose") return ORT_LOGGING_LEVEL_VERBOSE;
  if (level == "info") return ORT_LOGGING_LEVEL_INFO;
  if (level == "warning") return ORT_LOGGING_LEVEL_WARNING;
  if (level == "error") return ORT_LOGGING_LEVEL_ERROR;
  return ORT_LOGGING_LEVEL_FATAL;
}

// init(libraryPath, logLevel) → { version, apiVersion, path }
Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "init(libraryPath, logLevel?)");
  std::string level = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "error";
  try {
    LoadOrt(info[0].As<Napi::String>(), ParseLogLevel(level));
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  auto result = Napi::Object::New(env);
  result.Set("version", OrtVersion());
  result.Set("apiVersion", ORT_API_VERSION);
  result.Set("path", OrtLibraryPath());
  return result;
}

Napi::Value AvailableProviders(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  char** providers = nullptr;
  int count = 0;
  OrtStatus* status = Api().GetAvailableProviders(&providers, &count);
  if (status != nullptr) throw Napi::Error::New(env, "GetAvailableProviders: " + TakeErrorMessage(status));
  auto array = Napi::Array::New(env, count);
  for (int i = 0; i < count; ++i) (void)array.Set(static_cast<uint32_t>(i), providers[i]);
  TakeErrorMessage(Api().ReleaseAvailableProviders(providers, count));
  return array;
}

Napi::Value ProbeCudaJs(const Napi::CallbackInfo& info) {
  CudaProbe probe = ProbeCuda();
  auto result = Napi::Object::New(info.Env());
  result.Set("driverLoaded", probe.driver_loaded);
  result.Set("deviceCount", probe.device_count);
  result.Set("detail", probe.detail);
  result.Set("runtime", CudaRuntimeStatus());
  auto devices = Napi::Array::New(info.Env(), probe.devices.size());
  for (size_t i = 0; i < probe.devices.size(); ++i) {
    auto d = Napi::Object::New(info.Env());
    d.Set("name", probe.devices[i].name);
    d.Set("totalBytes", static_cast<double>(probe.devices[i].total_bytes));
    devices.Set(static_cast<uint32_t>(i), d);
  }
  result.Set("devices", devices);
  return result;
}

std::vector<int64_t> ParseShape(Napi::Env env, Napi::Value value) {
  if (!value.IsArray()) throw Napi::TypeError::New(env, "shape must be an array of non-negative integers");
  auto array = value.As<Napi::Array>();
  std::vector<int64_t> shape;
  for (uint32_t i = 0; i < array.Length(); ++i) {
    Napi::Value d = array.Get(i);
    double x = d.IsNumber() ? d.As<Napi::Number>().DoubleValue() : -1;
    if (!(x >= 0) || x != static_cast<double>(static_cast<int64_t>(x))) {
      throw Napi::TypeError::New(env, "shape must be an array of non-negative integers; dimension " + std::to_string(i) + " is not");
    }
    shape.push_back(static_cast<int64_t>(x));
  }
  return shape;
}

// tensor(dtype, shape, data?, device?) → ResidentValue; without data the memory is zero-filled. device: -1 (the
// default) for host memory, else a CUDA device ordinal.
Napi::Value Tensor(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString()) throw Napi::TypeError::New(env, "tensor(dtype, shape, data?, device?)");
  std::string name = info[0].As<Napi::String>();
  const DTypeInfo* dtype = DTypeByName(name);
  if (dtype == nullptr) throw Napi::TypeError::New(env, "unknown dtype '" + name + "'; expected one of " + DTypeNames());
  std::vector<int64_t> shape = ParseShape(env, info[1]);
  const int device = info.Length() > 3 && info[3].IsNumber() ? info[3].As<Napi::Number>().Int32Value() : Value::kHost;
  if (device < Value::kHost) throw Napi::RangeError::New(env, "tensor(): device must be -1 (host) or a CUDA ordinal, got " + std::to_string(device));
  Value::Made made;
  if (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull()) {
    made = Value::FromTypedArray(env, *dtype, shape, info[2], device);
  } else {
    try {
      made = Value::Allocate(*dtype, shape, device);
      void* data = nullptr;
      ThrowIfError(Api().GetTensorMutableData(made.value, &data), "GetTensorMutableData");
      int64_t count = 1;
      for (int64_t d : shape) count *= d;
      const size_t bytes = static_cast<size_t>(count) * dtype->bytes;
      if (device != Value::kHost) CudaZero(device, data, bytes);
      else if (bytes > 0) std::memset(data, 0, bytes);
    } catch (const std::exception& e) {
      Value::Free(made);
      throw Napi::Error::New(env, e.what());
    }
  }
  return Value::Wrap(env, made.value, made.device_buffer);
}

Napi::Value LiveValues(const Napi::CallbackInfo& info) {
  auto result = Napi::Object::New(info.Env());
  result.Set("count", static_cast<double>(LiveValueCount()));
  result.Set("bytes", static_cast<double>(LiveValueBytes()));
  return result;
}

}  // namespace
}  // namespace lory

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  using namespace lory;
  auto* data = new AddonData();
  Napi::Function value_class = Value::Init(env);
  Napi::Function session_class = Session::Init(env);
  data->value_constructor = Napi::Persistent(value_class);
  data->session_constructor = Napi::Persistent(session_class);
  env.SetInstanceData(data);  // deleted with the environment
  exports.Set("ResidentValue", value_class);
  exports.Set("NativeSession", session_class);
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("availableProviders", Napi::Function::New(env, AvailableProviders));
  exports.Set("probeCuda", Napi::Function::New(env, ProbeCudaJs));
  exports.Set("tensor", Napi::Function::New(env, Tensor));
  exports.Set("createSession", Napi::Function::New(env, Session::CreateAsync));
  exports.Set("liveValues", Napi::Function::New(env, LiveValues));
  return exports;
}

NODE_API_MODULE(lory_runtime, InitModule)
