#include "value.h"

#include <sys/mman.h>

#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string>

#include "addon_data.h"
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
                                        InstanceMethod<&Value::Read>("read"),
                                        InstanceMethod<&Value::View>("view"),
                                        InstanceMethod<&Value::Write>("write"),
                                        InstanceMethod<&Value::Dispose>("dispose"),
                                    });
  return ctor;
}

Napi::Object Value::Wrap(Napi::Env env, OrtValue* value) {
  return Data(env).value_constructor.New({Napi::External<OrtValue>::New(env, value)});
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

OrtValue* Value::Allocate(const DTypeInfo& dtype, const std::vector<int64_t>& shape) {
  for (int64_t d : shape)
    if (d < 0) throw std::runtime_error("tensor shape " + ShapeString(shape) + " has a negative dimension");
  OrtValue* value = nullptr;
  ThrowIfError(Api().CreateTensorAsOrtValue(CpuAllocator(), shape.data(), shape.size(), dtype.ort, &value), "CreateTensorAsOrtValue");
  void* data = nullptr;
  if (OrtStatus* status = Api().GetTensorMutableData(value, &data)) Api().ReleaseStatus(status);
  else AdviseHugePages(data, static_cast<size_t>(ElementCount(shape)) * dtype.bytes);
  return value;
}

OrtValue* Value::FromTypedArray(Napi::Env env, const DTypeInfo& dtype, const std::vector<int64_t>& shape, Napi::Value data) {
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
  OrtValue* value = nullptr;
  try {
    value = Allocate(dtype, shape);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  void* dst = nullptr;
  OrtStatus* status = Api().GetTensorMutableData(value, &dst);
  if (status != nullptr) {
    Api().ReleaseValue(value);
    throw Napi::Error::New(env, "GetTensorMutableData: " + TakeErrorMessage(status));
  }
  const uint8_t* src = static_cast<const uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
  if (count > 0) std::memcpy(dst, src, static_cast<size_t>(count) * dtype.bytes);
  return value;
}

Value::Value(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Value>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "ResidentValue cannot be constructed directly; use runtime.tensor()");
  }
  Adopt(info[0].As<Napi::External<OrtValue>>().Data());
}

void Value::Adopt(OrtValue* value) {
  const OrtApi& api = Api();
  OrtTensorTypeAndShapeInfo* info = nullptr;
  OrtStatus* shape_status = api.GetTensorTypeAndShape(value, &info);
  if (shape_status != nullptr) {
    api.ReleaseValue(value);
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
    api.ReleaseValue(value);
    throw Napi::Error::New(Env(), "reading tensor shape: " + TakeErrorMessage(status));
  }
  dtype_ = DTypeByOrt(type);
  if (dtype_ == nullptr) {
    api.ReleaseValue(value);
    throw Napi::Error::New(Env(), "tensor element type " + std::to_string(type) + " is not supported by lory");
  }
  value_ = value;
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

Napi::Value Value::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "read");
  if (being_written()) throw Napi::Error::New(env, "cannot read a ResidentValue while a run is writing into it");
  void* src = nullptr;
  OrtStatus* status = Api().GetTensorMutableData(value_, &src);
  if (status != nullptr) throw Napi::Error::New(env, "GetTensorMutableData: " + TakeErrorMessage(status));
  size_t count = static_cast<size_t>(size());
  auto buffer = Napi::ArrayBuffer::New(env, count * dtype_->bytes);
  if (count > 0) std::memcpy(buffer.Data(), src, count * dtype_->bytes);
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
  void* dst = nullptr;
  OrtStatus* status = Api().GetTensorMutableData(value_, &dst);
  if (status != nullptr) throw Napi::Error::New(env, "GetTensorMutableData: " + TakeErrorMessage(status));
  const uint8_t* src = static_cast<const uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
  if (size() > 0) std::memcpy(dst, src, static_cast<size_t>(size()) * dtype_->bytes);
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
  value_ = nullptr;
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
  void* data = nullptr;
  OrtStatus* status = Api().GetTensorMutableData(value_, &data);
  if (status != nullptr) throw Napi::Error::New(env, "GetTensorMutableData: " + TakeErrorMessage(status));
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
