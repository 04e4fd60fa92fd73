#include "session.h"

#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <utility>

#include "addon_data.h"
#include "dtype.h"
#include "ort_api.h"
#include "value.h"

namespace lory {

namespace {

// Owns an OrtSessionOptions for the duration of session creation.
struct OptionsGuard {
  OrtSessionOptions* options = nullptr;
  ~OptionsGuard() {
    if (options != nullptr) Api().ReleaseSessionOptions(options);
  }
};

GraphOptimizationLevel ParseOptLevel(const std::string& level) {
  if (level == "disable") return ORT_DISABLE_ALL;
  if (level == "basic") return ORT_ENABLE_BASIC;
  if (level == "extended") return ORT_ENABLE_EXTENDED;
  if (level == "all") return ORT_ENABLE_ALL;
  throw std::runtime_error("graphOptimizationLevel must be one of disable, basic, extended, all; got '" + level + "'");
}

// The CUDA provider through the V1 options struct: for ORT builds whose CreateCUDAProviderOptions is
// compiled out ("not enabled in this build") but that still load libonnxruntime_providers_cuda.so, such
// as the offline bundle's. V1 has no TF32 switch: NVIDIA_TF32_OVERRIDE=0 (read by cuBLAS and cuDNN when
// they start, unless the user set it) turns TF32 off for the process instead.
OrtStatus* AppendCudaV1(OrtSessionOptions* options, int device_id, bool tf32) {
  if (!tf32) setenv("NVIDIA_TF32_OVERRIDE", "0", 0);
  OrtCUDAProviderOptions cuda;
  cuda.device_id = device_id;
  return Api().SessionOptionsAppendExecutionProvider_CUDA(options, &cuda);
}

// TF32 is off unless asked for: ORT's default (on) rounds float32 GEMM inputs to 10 mantissa bits, which
// would make a float32 GPU run incomparable with the CPU's.
void AppendCuda(OrtSessionOptions* options, int device_id, bool tf32) {
  const OrtApi& api = Api();
  OrtCUDAProviderOptionsV2* cuda = nullptr;
  OrtStatus* status = api.CreateCUDAProviderOptions(&cuda);
  if (status != nullptr) {
    const std::string v2_error = TakeErrorMessage(status);
    status = AppendCudaV1(options, device_id, tf32);
    if (status == nullptr) return;
    throw std::runtime_error("CUDA execution provider is not available: " + TakeErrorMessage(status) + " (V2 options: " + v2_error + ")");
  }
  std::string device = std::to_string(device_id);
  const char* keys[] = {"device_id", "use_tf32"};
  const char* values[] = {device.c_str(), tf32 ? "1" : "0"};
  status = api.UpdateCUDAProviderOptions(cuda, keys, values, 2);
  if (status == nullptr) status = api.SessionOptionsAppendExecutionProvider_CUDA_V2(options, cuda);
  api.ReleaseCUDAProviderOptions(cuda);
  if (status != nullptr) {
    throw std::runtime_error("CUDA execution provider is not available: " + TakeErrorMessage(status));
  }
}

// Builds session options from the JS options object (main thread: it reads JS values).
OrtSessionOptions* BuildOptions(const Napi::Object& js, std::string* provider) {
  const OrtApi& api = Api();
  OptionsGuard guard;
  ThrowIfError(api.CreateSessionOptions(&guard.options), "CreateSessionOptions");
  OrtSessionOptions* options = guard.options;
  if (js.Has("intraOpThreads") && js.Get("intraOpThreads").IsNumber()) {
    ThrowIfError(api.SetIntraOpNumThreads(options, js.Get("intraOpThreads").As<Napi::Number>().Int32Value()), "intraOpThreads");
  }
  if (js.Has("interOpThreads") && js.Get("interOpThreads").IsNumber()) {
    ThrowIfError(api.SetInterOpNumThreads(options, js.Get("interOpThreads").As<Napi::Number>().Int32Value()), "interOpThreads");
  }
  if (js.Has("graphOptimizationLevel") && js.Get("graphOptimizationLevel").IsString()) {
    ThrowIfError(api.SetSessionGraphOptimizationLevel(options, ParseOptLevel(js.Get("graphOptimizationLevel").As<Napi::String>())),
                 "graphOptimizationLevel");
  }
  if (js.Has("allowSpinning") && js.Get("allowSpinning").IsBoolean()) {
    const char* spin = js.Get("allowSpinning").As<Napi::Boolean>().Value() ? "1" : "0";
    ThrowIfError(api.AddSessionConfigEntry(options, "session.intra_op.allow_spinning", spin), "allowSpinning");
    ThrowIfError(api.AddSessionConfigEntry(options, "session.inter_op.allow_spinning", spin), "allowSpinning");
  }
  if (js.Has("cpuMemArena") && js.Get("cpuMemArena").IsBoolean()) {
    ThrowIfError(js.Get("cpuMemArena").As<Napi::Boolean>().Value() ? api.EnableCpuMemArena(options) : api.DisableCpuMemArena(options),
                 "cpuMemArena");
  }
  if (js.Has("profileFilePrefix") && js.Get("profileFilePrefix").IsString()) {
    // ORT writes a Chrome-trace JSON (<prefix>_<date>.json) with one event per node run; Session.endProfiling
    // closes it and returns its path.
    std::string prefix = js.Get("profileFilePrefix").As<Napi::String>();
    ThrowIfError(api.EnableProfiling(options, prefix.c_str()), "profileFilePrefix");
  }
  if (js.Has("logId") && js.Get("logId").IsString()) {
    ThrowIfError(api.SetSessionLogId(options, js.Get("logId").As<Napi::String>().Utf8Value().c_str()), "logId");
  }
  if (js.Has("customOpLibraries") && js.Get("customOpLibraries").IsArray()) {
    auto libs = js.Get("customOpLibraries").As<Napi::Array>();
    for (uint32_t i = 0; i < libs.Length(); ++i) {
      std::string path = libs.Get(i).As<Napi::String>();
      OrtStatus* status = api.RegisterCustomOpsLibrary_V2(options, path.c_str());
      if (status != nullptr) throw std::runtime_error("cannot register custom-op library " + path + ": " + TakeErrorMessage(status));
    }
  }
  *provider = "cpu";
  if (js.Has("executionProvider") && js.Get("executionProvider").IsString()) {
    std::string ep = js.Get("executionProvider").As<Napi::String>();
    if (ep == "cuda") {
      int device = js.Has("deviceId") && js.Get("deviceId").IsNumber() ? js.Get("deviceId").As<Napi::Number>().Int32Value() : 0;
      const bool tf32 = js.Has("tf32") && js.Get("tf32").IsBoolean() && js.Get("tf32").As<Napi::Boolean>().Value();
      AppendCuda(options, device, tf32);
      *provider = "cuda";
    } else if (ep != "cpu") {
      throw std::runtime_error("executionProvider must be 'cpu' or 'cuda'; got '" + ep + "'");
    }
  }
  guard.options = nullptr;  // ownership passes to the caller
  return options;
}

std::vector<TensorMeta> ReadMeta(OrtSession* session, bool inputs) {
  const OrtApi& api = Api();
  OrtAllocator* allocator = nullptr;
  ThrowIfError(api.GetAllocatorWithDefaultOptions(&allocator), "GetAllocatorWithDefaultOptions");
  size_t count = 0;
  ThrowIfError(inputs ? api.SessionGetInputCount(session, &count) : api.SessionGetOutputCount(session, &count), "graph signature");
  std::vector<TensorMeta> metas;
  for (size_t i = 0; i < count; ++i) {
    TensorMeta meta;
    char* name = nullptr;
    ThrowIfError(inputs ? api.SessionGetInputName(session, i, allocator, &name) : api.SessionGetOutputName(session, i, allocator, &name),
                 "graph signature");
    meta.name = name;
    allocator->Free(allocator, name);
    OrtTypeInfo* type_info = nullptr;
    ThrowIfError(inputs ? api.SessionGetInputTypeInfo(session, i, &type_info) : api.SessionGetOutputTypeInfo(session, i, &type_info),
                 "graph signature");
    const OrtTensorTypeAndShapeInfo* tensor_info = nullptr;
    OrtStatus* status = api.CastTypeInfoToTensorInfo(type_info, &tensor_info);
    if (status == nullptr && tensor_info != nullptr) {
      ONNXTensorElementDataType type;
      size_t rank = 0;
      status = api.GetTensorElementType(tensor_info, &type);
      if (status == nullptr) status = api.GetDimensionsCount(tensor_info, &rank);
      meta.shape.assign(rank, 0);
      if (status == nullptr && rank > 0) status = api.GetDimensions(tensor_info, meta.shape.data(), rank);
      const DTypeInfo* dtype = DTypeByOrt(type);
      meta.dtype = dtype != nullptr ? dtype->name : "unsupported(" + std::to_string(type) + ")";
    } else {
      meta.dtype = "non-tensor";
    }
    api.ReleaseTypeInfo(type_info);
    ThrowIfError(status, "graph signature");
    metas.push_back(std::move(meta));
  }
  return metas;
}

Napi::Array MetaToJs(Napi::Env env, const std::vector<TensorMeta>& metas) {
  auto array = Napi::Array::New(env, metas.size());
  for (size_t i = 0; i < metas.size(); ++i) {
    auto object = Napi::Object::New(env);
    object.Set("name", metas[i].name);
    object.Set("dtype", metas[i].dtype);
    auto shape = Napi::Array::New(env, metas[i].shape.size());
    for (size_t j = 0; j < metas[i].shape.size(); ++j) shape.Set(static_cast<uint32_t>(j), static_cast<double>(metas[i].shape[j]));
    object.Set("shape", shape);
    array.Set(static_cast<uint32_t>(i), object);
  }
  return array;
}

// Creates the OrtSession off the main thread: graph optimisation of a large model takes seconds.
class CreateWorker : public Napi::AsyncWorker {
 public:
  CreateWorker(Napi::Env env, OrtSessionOptions* options, std::string provider, std::string path, std::vector<uint8_t> bytes)
      : Napi::AsyncWorker(env, "lory:createSession"),
        deferred_(Napi::Promise::Deferred::New(env)),
        options_(options),
        provider_(std::move(provider)),
        path_(std::move(path)),
        bytes_(std::move(bytes)) {}
  ~CreateWorker() override {
    if (options_ != nullptr) Api().ReleaseSessionOptions(options_);
    if (session_ != nullptr) Api().ReleaseSession(session_);
  }
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    const OrtApi& api = Api();
    OrtStatus* status = path_.empty() ? api.CreateSessionFromArray(lory::Env(), bytes_.data(), bytes_.size(), options_, &session_)
                                      : api.CreateSession(lory::Env(), path_.c_str(), options_, &session_);
    if (status != nullptr) {
      SetError(TakeErrorMessage(status));
      return;
    }
    try {
      inputs_ = ReadMeta(session_, true);
      outputs_ = ReadMeta(session_, false);
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = AsyncWorker::Env();
    Napi::Object js = Session::Wrap(env, session_, provider_, std::move(inputs_), std::move(outputs_));
    session_ = nullptr;
    deferred_.Resolve(js);
  }
  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  OrtSessionOptions* options_;
  std::string provider_;
  std::string path_;
  std::vector<uint8_t> bytes_;  // a copy: the caller's buffer may be detached while ORT parses
  OrtSession* session_ = nullptr;
  std::vector<TensorMeta> inputs_;
  std::vector<TensorMeta> outputs_;
};

// One Run() on the worker pool. Input and output Values are pinned (no dispose/write) and
// referenced (no GC) until it ends.
class RunWorker : public Napi::AsyncWorker {
 public:
  RunWorker(Napi::Env env, Session* session, Napi::Object session_js) : Napi::AsyncWorker(env, "lory:run"), deferred_(Napi::Promise::Deferred::New(env)), session_(session) {
    session_ref_ = Napi::Persistent(session_js);
    session_->BeginRun();
  }
  ~RunWorker() override {
    for (Value* v : read_pins_) v->UnpinRead();
    for (Value* v : write_pins_) v->UnpinWrite();
    session_->EndRun();
  }
  Napi::Promise Promise() { return deferred_.Promise(); }

  void AddInput(std::string name, Napi::Object value_js) {
    Value* value = Value::Unwrap(value_js);
    if (value->being_written()) {
      throw Napi::Error::New(AsyncWorker::Env(), "input '" + name + "' is being written by another run in flight");
    }
    value->PinRead();
    read_pins_.push_back(value);
    refs_.push_back(Napi::Persistent(value_js));
    input_names_.push_back(std::move(name));
    inputs_.push_back(value->ort());
  }
  void AddOutput(std::string name, Napi::Object into_js) {
    output_names_.push_back(std::move(name));
    if (into_js.IsEmpty()) {
      outputs_.push_back(nullptr);
      into_.push_back(Napi::ObjectReference());
    } else {
      Value* value = Value::Unwrap(into_js);
      if (value->pinned()) {
        throw Napi::Error::New(AsyncWorker::Env(), "output target for '" + name + "' is in use by a run in flight (or named twice)");
      }
      value->PinWrite();
      write_pins_.push_back(value);
      refs_.push_back(Napi::Persistent(into_js));
      outputs_.push_back(value->ort());
      into_.push_back(Napi::Persistent(into_js));
    }
  }

  // Runs through an I/O binding: inputs are used where they live (host or device), output targets are
  // written in place, and every other output is placed in host memory (the scalars and diagnostics a
  // caller reads), so on a GPU only those cross to the host.
  void Execute() override {
    const OrtApi& api = Api();
    OrtIoBinding* binding = nullptr;
    const OrtMemoryInfo* host = HostMemory();
    OrtValue** bound = nullptr;
    size_t bound_count = 0;
    OrtAllocator* allocator = nullptr;
    OrtStatus* status = host != nullptr ? api.CreateIoBinding(session_->ort(), &binding) : api.CreateStatus(ORT_FAIL, "CreateCpuMemoryInfo failed");
    for (size_t i = 0; status == nullptr && i < inputs_.size(); ++i) status = api.BindInput(binding, input_names_[i].c_str(), inputs_[i]);
    for (size_t i = 0; status == nullptr && i < outputs_.size(); ++i) {
      const char* name = output_names_[i].c_str();
      status = outputs_[i] != nullptr ? api.BindOutput(binding, name, outputs_[i]) : api.BindOutputToDevice(binding, name, host);
    }
    if (status == nullptr) status = api.RunWithBinding(session_->ort(), nullptr, binding);
    if (status == nullptr) status = api.SynchronizeBoundOutputs(binding);
    if (status == nullptr) status = api.GetAllocatorWithDefaultOptions(&allocator);
    if (status == nullptr) status = api.GetBoundOutputValues(binding, allocator, &bound, &bound_count);
    if (status == nullptr && bound_count != outputs_.size()) {
      error_ = "ORT returned " + std::to_string(bound_count) + " outputs for " + std::to_string(outputs_.size()) + " bound";
    }
    for (size_t i = 0; i < bound_count; ++i) {
      if (outputs_[i] == nullptr && error_.empty() && status == nullptr) {
        outputs_[i] = bound[i];  // ours now: wrapped in OnOK or freed by ReleaseUnwrapped
        continue;
      }
      if (outputs_[i] != nullptr && error_.empty() && status == nullptr && !SameMemory(bound[i], outputs_[i])) {
        error_ = "output '" + output_names_[i] + "' was not written in place into its target";
      }
      api.ReleaseValue(bound[i]);
    }
    if (bound != nullptr) allocator->Free(allocator, bound);
    if (binding != nullptr) api.ReleaseIoBinding(binding);
    if (status != nullptr) error_ = TakeErrorMessage(status);
    if (!error_.empty()) SetError(error_);
  }
  // Host memory, where outputs without a target go; made once (it never changes), never released.
  static const OrtMemoryInfo* HostMemory() {
    static OrtMemoryInfo* host = [] {
      OrtMemoryInfo* info = nullptr;
      OrtStatus* status = Api().CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &info);
      TakeErrorMessage(status);
      return info;
    }();
    return host;
  }
  static bool SameMemory(const OrtValue* a, OrtValue* b) {
    void* pa = nullptr;
    void* pb = nullptr;
    OrtStatus* s1 = Api().GetTensorMutableData(const_cast<OrtValue*>(a), &pa);
    OrtStatus* s2 = Api().GetTensorMutableData(b, &pb);
    TakeErrorMessage(s1);
    TakeErrorMessage(s2);
    return pa == pb;
  }
  // Runs on the calling (main) thread and settles the promise at once; for graphs so small that the
  // hop to the worker pool costs more than the run. Deletes itself, as the queue would.
  static void RunBlocking(std::unique_ptr<RunWorker> worker) {
    worker->Execute();
    Napi::Env env = worker->AsyncWorker::Env();
    if (worker->error_.empty()) worker->OnOK();
    else worker->OnError(Napi::Error::New(env, worker->error_));
  }
  void OnOK() override {
    Napi::Env env = AsyncWorker::Env();
    auto result = Napi::Object::New(env);
    try {
      for (size_t i = 0; i < outputs_.size(); ++i) {
        if (!into_[i].IsEmpty()) {
          result.Set(output_names_[i], into_[i].Value());
        } else {
          OrtValue* output = outputs_[i];
          outputs_[i] = nullptr;  // Wrap owns it now, and releases it if wrapping fails
          result.Set(output_names_[i], Value::Wrap(env, output));
        }
      }
    } catch (const Napi::Error& error) {
      ReleaseUnwrapped();
      deferred_.Reject(error.Value());
      return;
    }
    deferred_.Resolve(result);
  }
  void OnError(const Napi::Error& error) override {
    ReleaseUnwrapped();
    deferred_.Reject(error.Value());
  }
  // Outputs ORT allocated that no JS object owns yet are ours to free.
  void ReleaseUnwrapped() {
    for (size_t i = 0; i < outputs_.size(); ++i) {
      if (into_[i].IsEmpty() && outputs_[i] != nullptr) Api().ReleaseValue(outputs_[i]);
      outputs_[i] = nullptr;
    }
  }

 private:
  Napi::Promise::Deferred deferred_;
  Session* session_;
  Napi::ObjectReference session_ref_;
  std::vector<std::string> input_names_, output_names_;
  std::vector<OrtValue*> inputs_, outputs_;
  std::vector<Napi::ObjectReference> into_;
  std::vector<Napi::ObjectReference> refs_;
  std::vector<Value*> read_pins_, write_pins_;
  std::string error_;
};

}  // namespace

Napi::Object Session::Wrap(Napi::Env env, OrtSession* ort, std::string provider, std::vector<TensorMeta> inputs,
                           std::vector<TensorMeta> outputs) {
  Napi::Object js = Data(env).session_constructor.New({Napi::External<OrtSession>::New(env, ort)});
  Session* session = Napi::ObjectWrap<Session>::Unwrap(js);
  session->provider_ = std::move(provider);
  session->inputs_ = std::move(inputs);
  session->outputs_ = std::move(outputs);
  return js;
}

Napi::Function Session::Init(Napi::Env env) {
  Napi::Function ctor = DefineClass(env, "NativeSession",
                                    {
                                        InstanceAccessor<&Session::GetInputs>("inputs"),
                                        InstanceAccessor<&Session::GetOutputs>("outputs"),
                                        InstanceAccessor<&Session::GetProvider>("executionProvider"),
                                        InstanceMethod<&Session::Run>("run"),
                                        InstanceMethod<&Session::EndProfiling>("endProfiling"),
                                        InstanceMethod<&Session::Dispose>("dispose"),
                                    });
  return ctor;
}

Session::Session(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Session>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "use createSession() to make a session");
  session_ = info[0].As<Napi::External<OrtSession>>().Data();
}

Session::~Session() {
  if (session_ != nullptr) Api().ReleaseSession(session_);
}

Napi::Value Session::CreateAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!OrtLoaded()) throw Napi::Error::New(env, "ONNX Runtime is not loaded; call init() first");
  if (info.Length() < 2 || !info[1].IsObject()) throw Napi::TypeError::New(env, "createSession(model, options)");
  std::string provider;
  OrtSessionOptions* options = nullptr;
  try {
    options = BuildOptions(info[1].As<Napi::Object>(), &provider);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  CreateWorker* worker;
  if (info[0].IsString()) {
    worker = new CreateWorker(env, options, provider, info[0].As<Napi::String>(), {});
  } else if (info[0].IsTypedArray() && info[0].As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
    auto bytes = info[0].As<Napi::Uint8Array>();
    worker = new CreateWorker(env, options, provider, "", std::vector<uint8_t>(bytes.Data(), bytes.Data() + bytes.ByteLength()));
  } else {
    Api().ReleaseSessionOptions(options);
    throw Napi::TypeError::New(env, "model must be a file path or a Uint8Array of ONNX bytes");
  }
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Value Session::GetInputs(const Napi::CallbackInfo& info) { return MetaToJs(info.Env(), inputs_); }
Napi::Value Session::GetOutputs(const Napi::CallbackInfo& info) { return MetaToJs(info.Env(), outputs_); }
Napi::Value Session::GetProvider(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), provider_); }

// run(inputNames: string[], inputs: ResidentValue[], outputNames: string[], into: (ResidentValue|null)[], blocking?: boolean)
Napi::Value Session::Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (session_ == nullptr) throw Napi::Error::New(env, "session has been disposed");
  if (info.Length() < 4 || !info[0].IsArray() || !info[1].IsArray() || !info[2].IsArray() || !info[3].IsArray()) {
    throw Napi::TypeError::New(env, "run(inputNames, inputs, outputNames, into)");
  }
  auto in_names = info[0].As<Napi::Array>();
  auto in_values = info[1].As<Napi::Array>();
  auto out_names = info[2].As<Napi::Array>();
  auto into = info[3].As<Napi::Array>();
  if (in_names.Length() != in_values.Length() || out_names.Length() != into.Length()) throw Napi::TypeError::New(env, "run(): array lengths differ");
  auto* worker = new RunWorker(env, this, info.This().As<Napi::Object>());
  try {
    for (uint32_t i = 0; i < in_names.Length(); ++i) {
      Napi::Value v = in_values.Get(i);
      if (!Value::IsValue(v)) throw Napi::TypeError::New(env, "input '" + in_names.Get(i).As<Napi::String>().Utf8Value() + "' is not a ResidentValue");
      if (Value::Unwrap(v.As<Napi::Object>())->disposed()) {
        throw Napi::Error::New(env, "input '" + in_names.Get(i).As<Napi::String>().Utf8Value() + "' has been disposed");
      }
      worker->AddInput(in_names.Get(i).As<Napi::String>(), v.As<Napi::Object>());
    }
    for (uint32_t i = 0; i < out_names.Length(); ++i) {
      Napi::Value v = into.Get(i);
      Napi::Object target;
      if (!v.IsNull() && !v.IsUndefined()) {
        if (!Value::IsValue(v) || Value::Unwrap(v.As<Napi::Object>())->disposed()) {
          throw Napi::TypeError::New(env, "output target for '" + out_names.Get(i).As<Napi::String>().Utf8Value() + "' is not a live ResidentValue");
        }
        target = v.As<Napi::Object>();
      }
      worker->AddOutput(out_names.Get(i).As<Napi::String>(), target);
    }
  } catch (...) {
    delete worker;
    throw;
  }
  Napi::Promise promise = worker->Promise();
  if (info.Length() > 4 && info[4].IsBoolean() && info[4].As<Napi::Boolean>().Value()) RunWorker::RunBlocking(std::unique_ptr<RunWorker>(worker));
  else worker->Queue();
  return promise;
}

// endProfiling() → path of the profile file ORT wrote ("" when profiling was not enabled).
Napi::Value Session::EndProfiling(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (session_ == nullptr) throw Napi::Error::New(env, "session has been disposed");
  if (runs_in_flight_ > 0) throw Napi::Error::New(env, "cannot end profiling while a run is in flight");
  OrtAllocator* allocator = nullptr;
  OrtStatus* status = Api().GetAllocatorWithDefaultOptions(&allocator);
  char* path = nullptr;
  if (status == nullptr) status = Api().SessionEndProfiling(session_, allocator, &path);
  if (status != nullptr) throw Napi::Error::New(env, "endProfiling: " + TakeErrorMessage(status));
  std::string result = path != nullptr ? path : "";
  if (path != nullptr) allocator->Free(allocator, path);
  return Napi::String::New(env, result);
}

void Session::Dispose(const Napi::CallbackInfo& info) {
  if (session_ == nullptr) return;
  if (runs_in_flight_ > 0) throw Napi::Error::New(info.Env(), "cannot dispose a session while a run is in flight");
  Api().ReleaseSession(session_);
  session_ = nullptr;
}

}  // namespace lory
