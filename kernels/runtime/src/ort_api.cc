#include "ort_api.h"

#include <dlfcn.h>

#include <stdexcept>

namespace lory {
namespace {
const OrtApi* g_api = nullptr;
OrtEnv* g_env = nullptr;
std::string g_version;
std::string g_path;
}  // namespace

const OrtApi& Api() {
  if (g_api == nullptr) throw std::runtime_error("ONNX Runtime is not loaded");
  return *g_api;
}
OrtEnv* Env() { return g_env; }
bool OrtLoaded() { return g_api != nullptr; }
const std::string& OrtVersion() { return g_version; }
const std::string& OrtLibraryPath() { return g_path; }

void LoadOrt(const std::string& library_path, OrtLoggingLevel log_level) {
  if (g_api != nullptr) {
    if (library_path != g_path) {
      throw std::runtime_error("ONNX Runtime already loaded from " + g_path + "; cannot load a second copy from " + library_path);
    }
    return;
  }
  // RTLD_GLOBAL so custom-op libraries and provider libraries resolve ORT symbols against this copy.
  void* handle = dlopen(library_path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (handle == nullptr) throw std::runtime_error(std::string("cannot load ONNX Runtime: ") + dlerror());
  using GetApiBaseFn = const OrtApiBase* (*)();
  auto get_api_base = reinterpret_cast<GetApiBaseFn>(dlsym(handle, "OrtGetApiBase"));
  if (get_api_base == nullptr) throw std::runtime_error("not an ONNX Runtime library (no OrtGetApiBase): " + library_path);
  const OrtApiBase* base = get_api_base();
  const OrtApi* api = base->GetApi(ORT_API_VERSION);
  std::string version = base->GetVersionString();
  if (api == nullptr) {
    throw std::runtime_error("ONNX Runtime " + version + " does not provide API version " + std::to_string(ORT_API_VERSION) +
                             " (lory was built against headers for that version; the runtime must be as new or newer)");
  }
  OrtEnv* env = nullptr;
  OrtStatus* status = api->CreateEnv(log_level, "lory", &env);
  if (status != nullptr) {
    std::string message = api->GetErrorMessage(status);
    api->ReleaseStatus(status);
    throw std::runtime_error("cannot create ONNX Runtime environment: " + message);
  }
  g_api = api;
  g_env = env;
  g_version = version;
  g_path = library_path;
}

std::string TakeErrorMessage(OrtStatus* status) {
  if (status == nullptr) return {};
  std::string message = g_api->GetErrorMessage(status);
  g_api->ReleaseStatus(status);
  return message;
}

void ThrowIfError(OrtStatus* status, const char* context) {
  if (status == nullptr) return;
  std::string message = TakeErrorMessage(status);
  throw std::runtime_error(std::string(context) + ": " + message);
}

}  // namespace lory
