// Collectives on the libuv thread pool: the main thread stays free (progress, signals) while a
// reduction runs. The JS side (src/parallel/mpi.ts) issues one at a time, as MPI_THREAD_SERIALIZED asks.
#include "collectives.h"

#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace lory_mpi {

std::string ErrorString(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(text, static_cast<size_t>(length));
}

namespace {

struct Buffer {
  void* data;
  int64_t count;
  MPI_Datatype type;
  size_t bytes_per;
};

MPI_Datatype TypeOf(napi_typedarray_type type, size_t* bytes_per) {
  switch (type) {
    case napi_float32_array: *bytes_per = 4; return MPI_FLOAT;
    case napi_float64_array: *bytes_per = 8; return MPI_DOUBLE;
    case napi_int32_array: *bytes_per = 4; return MPI_INT32_T;
    case napi_uint32_array: *bytes_per = 4; return MPI_UINT32_T;
    case napi_bigint64_array: *bytes_per = 8; return MPI_INT64_T;
    case napi_uint8_array: *bytes_per = 1; return MPI_UINT8_T;
    default: return MPI_DATATYPE_NULL;
  }
}

Buffer BufferOf(Napi::Env env, Napi::Value value, const char* what) {
  if (!value.IsTypedArray()) throw Napi::TypeError::New(env, std::string(what) + ": expected a TypedArray");
  auto array = value.As<Napi::TypedArray>();
  size_t bytes_per = 0;
  MPI_Datatype type = TypeOf(array.TypedArrayType(), &bytes_per);
  if (type == MPI_DATATYPE_NULL) throw Napi::TypeError::New(env, std::string(what) + ": unsupported TypedArray type");
  auto* data = static_cast<uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
  return {data, static_cast<int64_t>(array.ElementLength()), type, bytes_per};
}

// MPI counts are ints: long buffers go in slices of at most 2^30 elements.
constexpr int64_t kSlice = int64_t(1) << 30;

template <typename Call>
int Sliced(const Buffer& b, Call call) {
  for (int64_t at = 0; at < b.count; at += kSlice) {
    const int n = static_cast<int>(std::min(kSlice, b.count - at));
    int rc = call(static_cast<uint8_t*>(b.data) + at * static_cast<int64_t>(b.bytes_per), n);
    if (rc != MPI_SUCCESS) return rc;
  }
  return MPI_SUCCESS;
}

// Runs `work` off the main thread; resolves the Promise, or rejects it with "<name>: <MPI message>".
// Holds the buffers' JS objects so they outlive the call.
class Collective : public Napi::AsyncWorker {
 public:
  Collective(Napi::Env env, const char* name, std::vector<Napi::Value> keep, std::function<int()> work)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)), name_(name), work_(std::move(work)) {
    for (auto& v : keep) keep_.push_back(Napi::Persistent(v.As<Napi::Object>()));
  }
  Napi::Promise Start() {
    Queue();
    return deferred_.Promise();
  }

 protected:
  void Execute() override {
    int rc = work_();
    if (rc != MPI_SUCCESS) SetError(name_ + ": " + ErrorString(rc));
  }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::string name_;
  std::function<int()> work_;
  std::vector<Napi::ObjectReference> keep_;
};

std::vector<Buffer> BuffersOf(Napi::Env env, Napi::Value list, std::vector<Napi::Value>* keep) {
  if (!list.IsArray()) throw Napi::TypeError::New(env, "expected an array of TypedArrays");
  auto array = list.As<Napi::Array>();
  std::vector<Buffer> out;
  for (uint32_t i = 0; i < array.Length(); ++i) {
    Napi::Value v = array.Get(i);
    out.push_back(BufferOf(env, v, "buffer"));
    keep->push_back(v);
  }
  return out;
}

MPI_Op OpOf(Napi::Env env, Napi::Value name) {
  const std::string op = name.IsString() ? name.As<Napi::String>().Utf8Value() : "";
  if (op == "sum") return MPI_SUM;
  if (op == "max") return MPI_MAX;
  if (op == "min") return MPI_MIN;
  throw Napi::TypeError::New(env, "allreduce: op must be 'sum', 'max' or 'min'");
}

}  // namespace

Napi::Value Allreduce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<Napi::Value> keep;
  auto buffers = BuffersOf(env, info[0], &keep);
  MPI_Op op = OpOf(env, info[1]);
  auto* worker = new Collective(env, "MPI_Allreduce", keep, [buffers, op]() {
    for (const auto& b : buffers) {
      int rc = Sliced(b, [&](void* p, int n) { return MPI_Allreduce(MPI_IN_PLACE, p, n, b.type, op, MPI_COMM_WORLD); });
      if (rc != MPI_SUCCESS) return rc;
    }
    return MPI_SUCCESS;
  });
  return worker->Start();
}

Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<Napi::Value> keep;
  auto buffers = BuffersOf(env, info[0], &keep);
  if (!info[1].IsNumber()) throw Napi::TypeError::New(env, "broadcast: root must be a rank number");
  const int root = info[1].As<Napi::Number>().Int32Value();
  auto* worker = new Collective(env, "MPI_Bcast", keep, [buffers, root]() {
    for (const auto& b : buffers) {
      int rc = Sliced(b, [&](void* p, int n) { return MPI_Bcast(p, n, b.type, root, MPI_COMM_WORLD); });
      if (rc != MPI_SUCCESS) return rc;
    }
    return MPI_SUCCESS;
  });
  return worker->Start();
}

Napi::Value Allgather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Buffer send = BufferOf(env, info[0], "allgather send");
  Buffer recv = BufferOf(env, info[1], "allgather recv");
  int size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (send.type != recv.type || recv.count != send.count * size) {
    throw Napi::RangeError::New(env, "allgather: recv must be the send type with " + std::to_string(size) + " × " + std::to_string(send.count) + " elements");
  }
  if (send.count > kSlice) throw Napi::RangeError::New(env, "allgather: send buffer over 2^30 elements");
  auto* worker = new Collective(env, "MPI_Allgather", {info[0], info[1]}, [send, recv]() {
    return MPI_Allgather(send.data, static_cast<int>(send.count), send.type, recv.data, static_cast<int>(send.count), recv.type, MPI_COMM_WORLD);
  });
  return worker->Start();
}

Napi::Value Barrier(const Napi::CallbackInfo& info) {
  auto* worker = new Collective(info.Env(), "MPI_Barrier", {}, []() { return MPI_Barrier(MPI_COMM_WORLD); });
  return worker->Start();
}

}  // namespace lory_mpi
