// Module entry of lory's MPI binding: start-up, identity, shutdown. src/parallel/mpi.ts owns its use.
#include <dlfcn.h>
#include <mpi.h>
#include <napi.h>

#include <string>

#include "collectives.h"

namespace lory_mpi {

namespace {

bool g_initialized = false;

// Open MPI loads its transports as plugins that resolve symbols of libmpi; a Node addon is loaded
// RTLD_LOCAL, hiding them, so libmpi is reopened RTLD_GLOBAL before MPI_Init.
void ExposeLibmpi() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&MPI_Init_thread), &info) != 0 && info.dli_fname != nullptr) {
    dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
  }
}

// init() → { rank, size, threadLevel }: MPI_Init_thread asking for MPI_THREAD_SERIALIZED.
Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int already = 0;
  MPI_Initialized(&already);
  if (!already) {
    ExposeLibmpi();
    int provided = 0;
    int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
    if (rc != MPI_SUCCESS) throw Napi::Error::New(env, "MPI_Init_thread: " + ErrorString(rc));
    if (provided < MPI_THREAD_SERIALIZED) {
      throw Napi::Error::New(env, "this MPI library provides thread level " + std::to_string(provided) + "; lory needs MPI_THREAD_SERIALIZED (collectives run off the main thread)");
    }
    // Errors come back as return codes (a rejected Promise naming the call), not an abort inside MPI.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    g_initialized = true;
  }
  int rank = 0, size = 0, level = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Query_thread(&level);
  auto out = Napi::Object::New(env);
  out.Set("rank", rank);
  out.Set("size", size);
  out.Set("threadLevel", level);
  return out;
}

// finalize(): MPI_Finalize, once; later calls do nothing.
Napi::Value Finalize(const Napi::CallbackInfo& info) {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (g_initialized && !finalized) MPI_Finalize();
  return info.Env().Undefined();
}

// abort(code): ends every rank of the job now (a rank that cannot go on alone).
Napi::Value Abort(const Napi::CallbackInfo& info) {
  int code = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 1;
  MPI_Abort(MPI_COMM_WORLD, code);
  return info.Env().Undefined();
}

Napi::Value Version(const Napi::CallbackInfo& info) {
  char text[MPI_MAX_LIBRARY_VERSION_STRING];
  int length = 0;
  MPI_Get_library_version(text, &length);
  std::string version(text, static_cast<size_t>(length));
  while (!version.empty() && (version.back() == '\n' || version.back() == '\0')) version.pop_back();
  return Napi::String::New(info.Env(), version);
}

}  // namespace

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, Init, "init"));
  exports.Set("finalize", Napi::Function::New(env, Finalize, "finalize"));
  exports.Set("abort", Napi::Function::New(env, Abort, "abort"));
  exports.Set("libraryVersion", Napi::Function::New(env, Version, "libraryVersion"));
  exports.Set("allreduce", Napi::Function::New(env, Allreduce, "allreduce"));
  exports.Set("broadcast", Napi::Function::New(env, Broadcast, "broadcast"));
  exports.Set("allgather", Napi::Function::New(env, Allgather, "allgather"));
  exports.Set("barrier", Napi::Function::New(env, Barrier, "barrier"));
  return exports;
}

NODE_API_MODULE(lory_mpi, InitModule)

}  // namespace lory_mpi
