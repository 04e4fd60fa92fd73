// Module entry of lory's FAISS binding. OPENBLAS_CORETYPE must be in the environment before this
// module loads (OpenBLAS reads it in its load-time constructor, which runs before any code here);
// src/batching/faiss.ts sets it.
#include <napi.h>

#include <faiss/Index.h>

#include <string>

#include "blas.h"
#include "index.h"

namespace lory_faiss {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Index", IndexWrap::Define(env));
  exports.Set("factory", Napi::Function::New(env, Factory, "factory"));
  exports.Set("read", Napi::Function::New(env, Read, "read"));
  exports.Set("blasCoreName", Napi::Function::New(env, [](const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), BlasCoreName()); }));
  exports.Set("blasConfig", Napi::Function::New(env, [](const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), BlasConfig()); }));
  exports.Set("maxThreads", Napi::Function::New(env, [](const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), MaxThreads()); }));
  exports.Set("faissVersion", Napi::String::New(env, std::to_string(FAISS_VERSION_MAJOR) + "." + std::to_string(FAISS_VERSION_MINOR) + "." + std::to_string(FAISS_VERSION_PATCH)));
  return exports;
}

NODE_API_MODULE(lory_faiss, Init)

}  // namespace lory_faiss
