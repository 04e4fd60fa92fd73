// An ONNX Runtime inference session. Creation and runs execute on libuv's worker pool, so the JS
// event loop (and a progress spinner) keeps turning during long graphs.
#pragma once
#include <napi.h>
#include <onnxruntime_c_api.h>

#include <string>
#include <vector>

namespace lory {

struct TensorMeta {
  std::string name;
  std::string dtype;  // lory dtype name, or "unsupported(<code>)"
  std::vector<int64_t> shape;
};

class Session : public Napi::ObjectWrap<Session> {
 public:
  static Napi::Function Init(Napi::Env env);
  // createSession(model: Uint8Array | string, options) → Promise<Session>
  static Napi::Value CreateAsync(const Napi::CallbackInfo& info);

  explicit Session(const Napi::CallbackInfo& info);
  ~Session() override;

  // Wraps a freshly created OrtSession (taking ownership) into a JS session object.
  static Napi::Object Wrap(Napi::Env env, OrtSession* session, std::string provider, std::vector<TensorMeta> inputs,
                           std::vector<TensorMeta> outputs);

  OrtSession* ort() const { return session_; }
  void BeginRun() { ++runs_in_flight_; }
  void EndRun() { --runs_in_flight_; }

 private:
  Napi::Value GetInputs(const Napi::CallbackInfo& info);
  Napi::Value GetOutputs(const Napi::CallbackInfo& info);
  Napi::Value GetProvider(const Napi::CallbackInfo& info);
  Napi::Value Run(const Napi::CallbackInfo& info);
  Napi::Value EndProfiling(const Napi::CallbackInfo& info);
  void Dispose(const Napi::CallbackInfo& info);

  OrtSession* session_ = nullptr;
  std::string provider_;
  std::vector<TensorMeta> inputs_;
  std::vector<TensorMeta> outputs_;
  int runs_in_flight_ = 0;
};

}  // namespace lory
