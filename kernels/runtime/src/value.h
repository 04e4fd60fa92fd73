// A tensor resident in native memory (an OrtValue), wrapped as a JS object. It outlives runs, so a
// training loop feeds step N's outputs to step N+1 without copying through JS.
#pragma once
#include <napi.h>
#include <onnxruntime_c_api.h>

#include <cstdint>
#include <vector>

#include "dtype.h"

namespace lory {

class Value : public Napi::ObjectWrap<Value> {
 public:
  static Napi::Function Init(Napi::Env env);
  // Where a tensor's memory lives: host memory (kHost) or the CUDA device with this ordinal.
  static constexpr int kHost = -1;
  // A tensor and the device memory it owns (nullptr for host tensors, whose memory the OrtValue owns).
  struct Made {
    OrtValue* value = nullptr;
    void* device_buffer = nullptr;
  };
  // Wraps a tensor (taking ownership of it and of its device buffer) into a new JS Value object.
  static Napi::Object Wrap(Napi::Env env, OrtValue* value, void* device_buffer = nullptr);
  // Allocates an uninitialised tensor on the host or a CUDA device (throws std::runtime_error).
  static Made Allocate(const DTypeInfo& dtype, const std::vector<int64_t>& shape, int device = kHost);
  // Copies a JS TypedArray of the right kind and length into a new tensor (throws Napi::Error).
  static Made FromTypedArray(Napi::Env env, const DTypeInfo& dtype, const std::vector<int64_t>& shape, Napi::Value data, int device = kHost);
  // Frees a tensor that was never wrapped.
  static void Free(const Made& made);
  static bool IsValue(Napi::Value value);
  static Value* Unwrap(Napi::Object object) { return Napi::ObjectWrap<Value>::Unwrap(object); }

  explicit Value(const Napi::CallbackInfo& info);
  ~Value() override;

  OrtValue* ort() const { return value_; }
  bool disposed() const { return value_ == nullptr || disposed_; }
  const DTypeInfo& dtype() const { return *dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t size() const;
  int device() const { return device_; }
  size_t bytes() const { return static_cast<size_t>(size()) * dtype_->bytes; }
  // Runs in flight that read (inputs) or write (output targets) this value. A value being written
  // is exclusive: nothing else may read, write, feed or dispose it until the run ends.
  void PinRead() { ++readers_; }
  void PinWrite() { ++writers_; }
  void UnpinRead() { --readers_; }
  void UnpinWrite() { --writers_; }
  bool pinned() const { return readers_ > 0 || writers_ > 0; }
  bool being_written() const { return writers_ > 0; }
  // Zero-copy views (view()) still reachable from JS: a disposed value frees its memory only once
  // the last one is collected, so no view ever points at freed memory.
  void AddView() { ++views_; }
  void DropView();

 private:
  void Adopt(OrtValue* value);
  Napi::Value GetDType(const Napi::CallbackInfo& info);
  Napi::Value GetShape(const Napi::CallbackInfo& info);
  Napi::Value GetSize(const Napi::CallbackInfo& info);
  Napi::Value GetDisposed(const Napi::CallbackInfo& info);
  Napi::Value GetDevice(const Napi::CallbackInfo& info);
  void* TensorData(Napi::Env env) const;
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value View(const Napi::CallbackInfo& info);
  void Release();
  void Write(const Napi::CallbackInfo& info);
  void Dispose(const Napi::CallbackInfo& info);
  void CheckUsable(Napi::Env env, const char* action) const;

  OrtValue* value_ = nullptr;
  void* device_buffer_ = nullptr;  // cudaMalloc'd memory this value owns (device tensors)
  int device_ = kHost;
  const DTypeInfo* dtype_ = nullptr;
  std::vector<int64_t> shape_;
  int readers_ = 0;
  int writers_ = 0;
  int views_ = 0;
  bool disposed_ = false;
};

// Bytes of native tensor memory currently held by live Values (for leak checks).
int64_t LiveValueBytes();
int64_t LiveValueCount();

}  // namespace lory
