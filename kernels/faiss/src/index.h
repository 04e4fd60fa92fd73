// A FAISS index as a JS object. Every call that computes runs on a libuv worker thread, reads and
// writes the caller's TypedArrays in place (no copies), and turns FAISS exceptions into rejected
// promises. The JS wrapper (src/batching/faiss.ts) validates shapes and serialises calls per index.
#pragma once
#include <napi.h>

#include <memory>

#include <faiss/Index.h>

namespace lory_faiss {

class IndexWrap : public Napi::ObjectWrap<IndexWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::FunctionReference* constructor;
  explicit IndexWrap(const Napi::CallbackInfo& info);

  faiss::Index* index() const { return index_.get(); }
  void Adopt(faiss::Index* index) { index_.reset(index); }
  int threads() const { return threads_; }
  // Calls queued or running on the worker pool; dispose() refuses while any is in flight.
  void BeginCall() { ++inflight_; }
  void EndCall() { --inflight_; }

 private:
  Napi::Value Dim(const Napi::CallbackInfo& info);
  Napi::Value Ntotal(const Napi::CallbackInfo& info);
  Napi::Value IsTrained(const Napi::CallbackInfo& info);
  Napi::Value MetricType(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);
  Napi::Value SetThreads(const Napi::CallbackInfo& info);
  Napi::Value SetParameter(const Napi::CallbackInfo& info);
  Napi::Value Train(const Napi::CallbackInfo& info);
  Napi::Value Add(const Napi::CallbackInfo& info);
  Napi::Value Search(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  faiss::Index* Live(const Napi::Env& env);

  std::unique_ptr<faiss::Index> index_;
  int threads_ = 0;
  int inflight_ = 0;
};

// Module functions: factory(dim, description, metric), read(path) -> Promise<Index>.
Napi::Value Factory(const Napi::CallbackInfo& info);
Napi::Value Read(const Napi::CallbackInfo& info);

}  // namespace lory_faiss
