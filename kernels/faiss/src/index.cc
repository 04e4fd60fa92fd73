#include "index.h"

#include <functional>
#include <string>
#include <vector>

#include <faiss/AutoTune.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>

#include "blas.h"

namespace lory_faiss {

Napi::FunctionReference* IndexWrap::constructor = nullptr;

namespace {

// Runs `work` on a libuv worker thread; resolves with `done()`'s value on the main thread, or
// rejects with the text of any C++ exception (FAISS throws faiss::FaissException). `keep` holds the
// index object and the TypedArrays the work reads or writes, so the GC cannot take them meanwhile.
class Work : public Napi::AsyncWorker {
 public:
  Work(Napi::Env env, int threads, std::vector<Napi::Object> keep, std::function<void()> work,
       std::function<Napi::Value(Napi::Env)> done, IndexWrap* owner = nullptr)
      : Napi::AsyncWorker(env, "lory-faiss"),
        owner_(owner),
        deferred_(Napi::Promise::Deferred::New(env)),
        threads_(threads),
        work_(std::move(work)),
        done_(std::move(done)) {
    for (auto& o : keep) keep_.push_back(Napi::Persistent(o));
    if (owner_ != nullptr) owner_->BeginCall();
  }
  ~Work() override {
    if (owner_ != nullptr) owner_->EndCall();
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      // OpenMP's thread count is a per-thread setting: set it on this worker before every call.
      ApplyThreads(threads_);
      work_();
    } catch (const std::exception& e) {
      SetError(e.what());
    } catch (...) {
      SetError("unknown error inside FAISS");
    }
  }
  void OnOK() override {
    Napi::Value value = done_ ? done_(Env()) : Env().Undefined();
    deferred_.Resolve(value);
  }
  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  IndexWrap* owner_;
  Napi::Promise::Deferred deferred_;
  int threads_;
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> done_;
  std::vector<Napi::ObjectReference> keep_;
};

Napi::Float32Array FloatArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a Float32Array");
  }
  return info[i].As<Napi::Float32Array>();
}

int64_t CountArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  int64_t n = info[i].As<Napi::Number>().Int64Value();
  if (n < 0) throw Napi::RangeError::New(info.Env(), std::string(what) + " must not be negative");
  return n;
}

faiss::MetricType MetricArg(const Napi::Env& env, const std::string& metric) {
  if (metric == "ip") return faiss::METRIC_INNER_PRODUCT;
  if (metric == "l2") return faiss::METRIC_L2;
  throw Napi::TypeError::New(env, "metric must be 'ip' or 'l2', got '" + metric + "'");
}

}  // namespace

Napi::Function IndexWrap::Define(Napi::Env env) {
  Napi::Function fn = DefineClass(
      env, "Index",
      {
          InstanceAccessor<&IndexWrap::Dim>("d"),
          InstanceAccessor<&IndexWrap::Ntotal>("ntotal"),
          InstanceAccessor<&IndexWrap::IsTrained>("isTrained"),
          InstanceAccessor<&IndexWrap::MetricType>("metric"),
          InstanceAccessor<&IndexWrap::Disposed>("disposed"),
          InstanceMethod<&IndexWrap::SetThreads>("setThreads"),
          InstanceMethod<&IndexWrap::SetParameter>("setParameter"),
          InstanceMethod<&IndexWrap::Train>("train"),
          InstanceMethod<&IndexWrap::Add>("add"),
          InstanceMethod<&IndexWrap::Search>("search"),
          InstanceMethod<&IndexWrap::Write>("write"),
          InstanceMethod<&IndexWrap::Dispose>("dispose"),
      });
  constructor = new Napi::FunctionReference(Napi::Persistent(fn));
  return fn;
}

IndexWrap::IndexWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<IndexWrap>(info) {}

faiss::Index* IndexWrap::Live(const Napi::Env& env) {
  if (!index_) throw Napi::Error::New(env, "the FAISS index has been disposed");
  return index_.get();
}

Napi::Value IndexWrap::Dim(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), Live(info.Env())->d); }
Napi::Value IndexWrap::Ntotal(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(Live(info.Env())->ntotal));
}
Napi::Value IndexWrap::IsTrained(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), Live(info.Env())->is_trained); }
Napi::Value IndexWrap::MetricType(const Napi::CallbackInfo& info) {
  auto m = Live(info.Env())->metric_type;
  return Napi::String::New(info.Env(), m == faiss::METRIC_INNER_PRODUCT ? "ip" : m == faiss::METRIC_L2 ? "l2" : "other");
}
Napi::Value IndexWrap::Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !index_); }

Napi::Value IndexWrap::SetThreads(const Napi::CallbackInfo& info) {
  threads_ = static_cast<int>(CountArg(info, 0, "threads"));
  return info.Env().Undefined();
}

// Search-time parameters by name (nprobe, efSearch, ...), applied the way FAISS's autotuner does,
// which also reaches through wrappers such as IndexPreTransform and IndexIDMap.
Napi::Value IndexWrap::SetParameter(const Napi::CallbackInfo& info) {
  faiss::Index* index = Live(info.Env());
  if (!info[0].IsString() || !info[1].IsNumber()) throw Napi::TypeError::New(info.Env(), "setParameter(name: string, value: number)");
  try {
    faiss::ParameterSpace().set_index_parameter(index, info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::Number>().DoubleValue());
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
  return info.Env().Undefined();
}

// The native side trusts no count from JS: a short array would be read or written out of bounds.
static void RequireLength(Napi::Env env, const Napi::TypedArray& array, int64_t needed, const char* what) {
  if (needed < 0 || static_cast<int64_t>(array.ElementLength()) < needed) {
    throw Napi::RangeError::New(env, std::string(what) + " holds " + std::to_string(array.ElementLength()) + " values; the call needs " +
                                         std::to_string(needed));
  }
}

Napi::Value IndexWrap::Train(const Napi::CallbackInfo& info) {
  faiss::Index* index = Live(info.Env());
  Napi::Float32Array x = FloatArg(info, 0, "vectors");
  int64_t n = CountArg(info, 1, "n");
  RequireLength(info.Env(), x, n * index->d, "vectors");
  const float* data = x.Data();
  auto* work = new Work(info.Env(), threads_, {info.This().As<Napi::Object>(), x}, [=] { index->train(n, data); }, nullptr, this);
  work->Queue();
  return work->Promise();
}

Napi::Value IndexWrap::Add(const Napi::CallbackInfo& info) {
  faiss::Index* index = Live(info.Env());
  Napi::Float32Array x = FloatArg(info, 0, "vectors");
  int64_t n = CountArg(info, 1, "n");
  RequireLength(info.Env(), x, n * index->d, "vectors");
  const float* data = x.Data();
  auto* work = new Work(info.Env(), threads_, {info.This().As<Napi::Object>(), x}, [=] { index->add(n, data); }, nullptr, this);
  work->Queue();
  return work->Promise();
}

// search(queries, n, k, distances, labels): fills the caller's distances (Float32Array n*k) and
// labels (BigInt64Array n*k) in place.
Napi::Value IndexWrap::Search(const Napi::CallbackInfo& info) {
  faiss::Index* index = Live(info.Env());
  Napi::Float32Array q = FloatArg(info, 0, "queries");
  int64_t n = CountArg(info, 1, "n");
  int64_t k = CountArg(info, 2, "k");
  Napi::Float32Array distances = FloatArg(info, 3, "distances");
  if (!info[4].IsTypedArray() || info[4].As<Napi::TypedArray>().TypedArrayType() != napi_bigint64_array) {
    throw Napi::TypeError::New(info.Env(), "labels must be a BigInt64Array");
  }
  Napi::TypedArray labels = info[4].As<Napi::TypedArray>();
  RequireLength(info.Env(), q, n * index->d, "queries");
  RequireLength(info.Env(), distances, n * k, "distances");
  RequireLength(info.Env(), labels, n * k, "labels");
  const float* qd = q.Data();
  float* dd = distances.Data();
  auto* ld = reinterpret_cast<faiss::Index::idx_t*>(static_cast<uint8_t*>(labels.ArrayBuffer().Data()) + labels.ByteOffset());
  auto* work = new Work(info.Env(), threads_, {info.This().As<Napi::Object>(), q, distances, labels},
                        [=] { index->search(n, qd, k, dd, ld); }, nullptr, this);
  work->Queue();
  return work->Promise();
}

Napi::Value IndexWrap::Write(const Napi::CallbackInfo& info) {
  faiss::Index* index = Live(info.Env());
  if (!info[0].IsString()) throw Napi::TypeError::New(info.Env(), "write(path: string)");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  auto* work = new Work(info.Env(), threads_, {info.This().As<Napi::Object>()}, [=] { faiss::write_index(index, path.c_str()); }, nullptr, this);
  work->Queue();
  return work->Promise();
}

Napi::Value IndexWrap::Dispose(const Napi::CallbackInfo& info) {
  if (inflight_ > 0) throw Napi::Error::New(info.Env(), "cannot dispose an index while a call on it is in flight");
  index_.reset();
  return info.Env().Undefined();
}

Napi::Value Factory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsString() || !info[2].IsString()) {
    throw Napi::TypeError::New(env, "factory(dim: number, description: string, metric: 'ip' | 'l2')");
  }
  int d = info[0].As<Napi::Number>().Int32Value();
  if (d <= 0) throw Napi::RangeError::New(env, "dimension must be positive");
  std::string description = info[1].As<Napi::String>().Utf8Value();
  faiss::MetricType metric = MetricArg(env, info[2].As<Napi::String>().Utf8Value());
  faiss::Index* index = nullptr;
  try {
    index = faiss::index_factory(d, description.c_str(), metric);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  Napi::Object obj = IndexWrap::constructor->New({});
  IndexWrap::Unwrap(obj)->Adopt(index);
  return obj;
}

Napi::Value Read(const Napi::CallbackInfo& info) {
  if (!info[0].IsString()) throw Napi::TypeError::New(info.Env(), "read(path: string)");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  auto loaded = std::make_shared<faiss::Index*>(nullptr);
  auto* work = new Work(
      info.Env(), 0, {}, [=] { *loaded = faiss::read_index(path.c_str()); },
      [=](Napi::Env) -> Napi::Value {
        Napi::Object obj = IndexWrap::constructor->New({});
        IndexWrap::Unwrap(obj)->Adopt(*loaded);
        return obj;
      });
  work->Queue();
  return work->Promise();
}

}  // namespace lory_faiss
