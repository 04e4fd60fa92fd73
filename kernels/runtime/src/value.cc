#include "value.h"

#include <sys/mman.h>

#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string>

#include "addon_data.h"
#include "cuda_memory.h"
#include "ort_api.h"

namespace lory {

namespace {
std::atomic<int64_t> g_live_bytes{0};
std::atomic<int64_t> g_live_count{0};

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

int64_t ElementCount(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

OrtAllocator* CpuAllocator() {
  OrtAllocator* allocator = nullptr;
  ThrowIfError(Api().GetAllocatorWithDefaultOptions(&allocator), "GetAllocatorWithDefaultOptions");
  return allocator;
}
}  // namespace

int64_t LiveValueBytes() { return g_live_bytes.load(); }
int64_t LiveValueCount() { return g_live_count.load(); }

Napi::Function Value::Init(Napi::Env env) {
  Napi::Function ctor = DefineClass(env, "ResidentValue",
                                    {
                                        InstanceAccessor<&Value::GetDType>("dtype"),
                                        InstanceAccessor<&Value::GetShape>("shape"),
                                        InstanceAccessor<&Value::GetSize>("size"),
                                        InstanceAccessor<&Value::GetDisposed>("disposed"),
                                        InstanceAccessor<&Value::GetDevice>("device"),
                                        InstanceMethod<&Value::Read>("read"),
                                        InstanceMethod<&Value::View>("view"),
                                        InstanceMethod<&Value::Write>("write"),
                                        InstanceMethod<&Value::Dispose>("dispose"),
                                    });
  return ctor;
}

Napi::Object Value::Wrap(Napi::Env env, OrtValue* value, void* device_buffer) {
  return Data(env).value_constructor.New({Napi::External<OrtValue>::New(env, value), Napi::External<void>::New(env, device_buffer)});
}

bool Value::IsValue(Napi::Value value) {
  return value.IsObject() && value.As<Napi::Object>().InstanceOf(Data(value.Env()).value_constructor.Value());
}

namespace {
// Large resident tensors (a trainer's parameters and optimizer moments) ask for transparent huge pages
// before their first touch. The optimizer and the merged-expert op stream through hundreds of MB of them
// with rows megabytes apart; with 4 KiB pages nearly every row is a TLB miss (measured on the tiny Lory
// train step: THP for the process made it 9% faster, dense 5%). Best effort: with THP off, or where
// madvise fails, the tensor simply keeps small pages.
void AdviseHugePages(void* data, size_t bytes) {
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  if (bytes < 2 * kHuge) return;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(kHuge - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}
}  // namespace

namespace {
// ORT's description of memory on CUDA device `device` (what its CUDA provider calls "Cuda").
OrtMemoryInfo* CudaMemoryInfo(int device) {
  OrtMemoryInfo* info = nullptr;
  ThrowIfError(Api().CreateMemoryInfo("Cuda", OrtDeviceAllocator, device, OrtMemTypeDefault, &info), "CreateMemoryInfo(Cuda)");
  return info;
}

// The device ordinal of a tensor's memory, or Value::kHost.
int DeviceOf(const OrtValue* value) {
  const OrtMemoryInfo* info = nullptr;
  const char* name = nullptr;
  int id = 0;
  if (OrtStatus* status = Api().GetTensorMemoryInfo(value, &info)) return Api().ReleaseStatus(status), Value::kHost;
  if (OrtStatus* status = Api().MemoryInfoGetName(info, &name)) return Api().ReleaseStatus(status), Value::kHost;
  if (OrtStatus* status = Api().MemoryInfoGetId(info, &id)) return Api().ReleaseStatus(status), Value::kHost;
  return std::strcmp(name, "Cuda") == 0 ? id : Value::kHost;
}
}  // namespace

Value::Made Value::Allocate(const DTypeInfo& dtype, const std::vector<int64_t>& shape, int device) {
  for (int64_t d : shape)
    if (d < 0) throw std::runtime_error("tensor shape " + ShapeString(shape) + " has a negative dimension");
  Made made;
  if (device == kHost) {
    ThrowIfError(Api().CreateTensorAsOrtValue(CpuAllocator(), shape.data(), shape.size(), dtype.ort, &made.value), "CreateTensorAsOrtValue");
    void* data = nullptr;
    if (OrtStatus* status = Api().GetTensorMutableData(made.value, &data)) Api().ReleaseStatus(status);
    else AdviseHugePages(data, static_cast<size_t>(ElementCount(shape)) * dtype.bytes);
    return made;
  }
  // Device memory lory owns (not ORT's arena): it outlives any session, and a run writes into it in place.
  const size_t bytes = static_cast<size_t>(ElementCount(shape)) * dtype.bytes;
  made.device_buffer = CudaAllocate(device, bytes);
  OrtMemoryInfo* info = nullptr;
  OrtStatus* status = nullptr;
  try {
    info = CudaMemoryInfo(device);
    status = Api().CreateTensorWithDataAsOrtValue(info, made.device_buffer, bytes, shape.data(), shape.size(), dtype.ort, &made.value);
  } catch (...) {
    CudaFree(device, made.device_buffer);
    throw;
  }
  Api().ReleaseMemoryInfo(info);
  if (status != nullptr) {
    CudaFree(device, made.device_buffer);
    throw std::runtime_error("CreateTensorWithDataAsOrtValue: " + TakeErrorMessage(status));
  }
  return made;
}

void Value::Free(const Made& made) {
  if (made.value == nullptr) return;
  const int device = made.device_buffer != nullptr ? DeviceOf(made.value) : kHost;
  Api().ReleaseValue(made.value);
  if (made.device_buffer != nullptr) CudaFree(device, made.device_buffer);
}

Value::Made Value::FromTypedArray(Napi::Env env, const DTypeInfo& dtype, const std::vector<int64_t>& shape, Napi::Value data, int device) {
  if (!data.IsTypedArray()) throw Napi::TypeError::New(env, std::string("tensor data must be a TypedArray for dtype ") + dtype.name);
  auto array = data.As<Napi::TypedArray>();
  if (!ArrayMatchesDType(array.TypedArrayType(), dtype)) {
    throw Napi::TypeError::New(env, std::string("dtype ") + dtype.name + " needs " + TypedArrayName(dtype.array) + " data, got " +
                                        TypedArrayName(array.TypedArrayType()));
  }
  int64_t count = ElementCount(shape);
  if (static_cast<int64_t>(array.ElementLength()) != count) {
    throw Napi::RangeError::New(env, "tensor shape " + ShapeString(shape) + " holds " + std::to_string(count) + " elements but data has " +
                                         std::to_string(array.ElementLength()));
  }
  Made made;
  try {
    made = Allocate(dtype, shape, device);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  void* dst = nullptr;
  OrtStatus* status = Api().GetTensorMutableData(made.value, &dst);
  if (status != nullptr) {
    Free(made);
    throw Napi::Error::New(env, "GetTensorMutableData: " + TakeErrorMessage(status));
  }
  const uint8_t* src = static_cast<const uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
  const size_t bytes = static_cast<size_t>(count) * dtype.bytes;
  try {
    if (device == kHost) {
      if (bytes > 0) std::memcpy(dst, src, bytes);
    } else {
      CudaCopyToDevice(device, dst, src, bytes);
    }
  } catch (const std::exception& e) {
    Free(made);
    throw Napi::Error::New(env, e.what());
  }
  return made;
}

Value::Value(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Value>(info) {
  if (info.Length() != 2 || !info[0].IsExternal() || !info[1].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "ResidentValue cannot be constructed directly; use runtime.tensor()");
  }
  device_buffer_ = info[1].As<Napi::External<void>>().Data();
  Adopt(info[0].As<Napi::External<OrtValue>>().Data());
}

void Value::Adopt(OrtValue* value) {
  const OrtApi& api = Api();
  OrtTensorTypeAndShapeInfo* info = nullptr;
  OrtStatus* shape_status = api.GetTensorTypeAndShape(value, &info);
  if (shape_status != nullptr) {
    Free({value, device_buffer_});
    throw Napi::Error::New(Env(), "output is not a tensor: " + TakeErrorMessage(shape_status));
  }
  ONNXTensorElementDataType type;
  size_t rank = 0;
  OrtStatus* status = api.GetTensorElementType(info, &type);
  if (status == nullptr) status = api.GetDimensionsCount(info, &rank);
  shape_.assign(rank, 0);
  if (status == nullptr && rank > 0) status = api.GetDimensions(info, shape_.data(), rank);
  api.ReleaseTensorTypeAndShapeInfo(info);
  if (status != nullptr) {
    Free({value, device_buffer_});
    throw Napi::Error::New(Env(), "reading tensor shape: " + TakeErrorMessage(status));
  }
  dtype_ = DTypeByOrt(type);
  if (dtype_ == nullptr) {
    Free({value, device_buffer_});
    throw Napi::Error::New(Env(), "tensor element type " + std::to_string(type) + " is not supported by lory");
  }
  value_ = value;
  device_ = DeviceOf(value);
  g_live_bytes += size() * static_cast<int64_t>(dtype_->bytes);
  ++g_live_count;
}

Value::~Value() { Release(); }

int64_t Value::size() const { return ElementCount(shape_); }

void Value::CheckUsable(Napi::Env env, const char* action) const {
  if (disposed()) throw Napi::Error::New(env, std::string("cannot ") + action + " a disposed ResidentValue");
}

Napi::Value Value::GetDType(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), dtype_->name); }

Napi::Value Value::GetShape(const Napi::CallbackInfo& info) {
  auto array = Napi::Array::New(info.Env(), shape_.size());
  for (size_t i = 0; i < shape_.size(); ++i) array.Set(static_cast<uint32_t>(i), Napi::Number::New(info.Env(), static_cast<double>(shape_[i])));
  return array;
}

Napi::Value Value::GetSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(size())); }

Napi::Value Value::GetDisposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), disposed()); }

Napi::Value Value::GetDevice(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), device_ == kHost ? "cpu" : "cuda:" + std::to_string(device_));
}

void* Value::TensorData(Napi::Env env) const {
  void* data = nullptr;
  OrtStatus* status = Api().GetTensorMutableData(value_, &data);
  if (status != nullptr) throw Napi::Error::New(env, "GetTensorMutableData: " + TakeErrorMessage(status));
  return data;
}

Napi::Value Value::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "read");
  if (being_written()) throw Napi::Error::New(env, "cannot read a ResidentValue while a run is writing into it");
  const void* src = TensorData(env);
  size_t count = static_cast<size_t>(size());
  auto buffer = Napi::ArrayBuffer::New(env, bytes());
  try {
    if (device_ != kHost) CudaCopyToHost(device_, buffer.Data(), src, bytes());
    else if (count > 0) std::memcpy(buffer.Data(), src, bytes());
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  napi_value array;
  napi_status made = napi_create_typedarray(env, dtype_->array, count, buffer, 0, &array);
  NAPI_THROW_IF_FAILED(env, made, Napi::Value());
  return Napi::Value(env, array);
}

void Value::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "write");
  if (pinned()) throw Napi::Error::New(env, "cannot write a ResidentValue while a run that uses it is in flight");
  if (info.Length() < 1 || !info[0].IsTypedArray()) throw Napi::TypeError::New(env, "write() needs a TypedArray");
  auto array = info[0].As<Napi::TypedArray>();
  if (!ArrayMatchesDType(array.TypedArrayType(), *dtype_)) {
    throw Napi::TypeError::New(env, std::string("dtype ") + dtype_->name + " needs " + TypedArrayName(dtype_->array) + " data, got " +
                                        TypedArrayName(array.TypedArrayType()));
  }
  if (static_cast<int64_t>(array.ElementLength()) != size()) {
    throw Napi::RangeError::New(env, "write(): value has " + std::to_string(size()) + " elements, data has " + std::to_string(array.ElementLength()));
  }
  void* dst = TensorData(env);
  const uint8_t* src = static_cast<const uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
  try {
    if (device_ != kHost) CudaCopyToDevice(device_, dst, src, bytes());
    else if (size() > 0) std::memcpy(dst, src, bytes());
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

void Value::Dispose(const Napi::CallbackInfo& info) {
  if (disposed()) return;  // idempotent, like most dispose() methods
  if (pinned()) throw Napi::Error::New(info.Env(), "cannot dispose a ResidentValue while a run that uses it is in flight");
  disposed_ = true;
  if (views_ == 0) Release();
}

void Value::Release() {
  if (value_ == nullptr) return;
  g_live_bytes -= size() * static_cast<int64_t>(dtype_->bytes);
  --g_live_count;
  Api().ReleaseValue(value_);
  if (device_buffer_ != nullptr) CudaFree(device_, device_buffer_);
  value_ = nullptr;
  device_buffer_ = nullptr;
}

void Value::DropView() {
  if (--views_ == 0 && disposed_) Release();
}

namespace {
// What a view's ArrayBuffer holds: the Value it shows, kept alive (a strong reference to its JS
// object) until the buffer is collected.
struct ViewHold {
  Value* value;
  napi_ref object;
};

void ReleaseView(napi_env env, void* /*data*/, void* hint) {
  auto* hold = static_cast<ViewHold*>(hint);
  hold->value->DropView();
  napi_delete_reference(env, hold->object);
  delete hold;
}
}  // namespace

// A TypedArray over the tensor's own memory, without a copy: for native code outside this addon
// (MPI collectives) to work on resident values in place. Valid for as long as it is reachable.
Napi::Value Value::View(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "view");
  if (device_ != kHost) {
    throw Napi::Error::New(env, "view() shows host memory, and this value lives on cuda:" + std::to_string(device_) + "; use read() and write()");
  }
  void* data = TensorData(env);
  const size_t count = static_cast<size_t>(size());
  if (count == 0) {
    // Nothing to share: an empty array of the value's type, not a view.
    napi_value empty;
    napi_status made = napi_create_typedarray(env, dtype_->array, 0, Napi::ArrayBuffer::New(env, 0), 0, &empty);
    NAPI_THROW_IF_FAILED(env, made, Napi::Value());
    return Napi::Value(env, empty);
  }
  auto* hold = new ViewHold{this, nullptr};
  napi_status made = napi_create_reference(env, info.This(), 1, &hold->object);
  napi_value buffer = nullptr;
  if (made == napi_ok) made = napi_create_external_arraybuffer(env, data, count * dtype_->bytes, ReleaseView, hold, &buffer);
  if (made != napi_ok) {
    if (hold->object != nullptr) napi_delete_reference(env, hold->object);
    delete hold;
    NAPI_THROW_IF_FAILED(env, made, Napi::Value());
  }
  AddView();
  napi_value array;
  made = napi_create_typedarray(env, dtype_->array, count, buffer, 0, &array);
  NAPI_THROW_IF_FAILED(env, made, Napi::Value());
  return Napi::Value(env, array);
}

}  // namespace lory
