// Access to the ONNX Runtime C API, loaded with dlopen from a path given at run time.
#pragma once
#include <onnxruntime_c_api.h>
#include <napi.h>
#include <string>

namespace lory {

// The API table and process-wide environment; valid after LoadOrt succeeds.
const OrtApi& Api();
OrtEnv* Env();
bool OrtLoaded();
const std::string& OrtVersion();
const std::string& OrtLibraryPath();

// Loads the library (once per process) and creates the environment. Throws std::runtime_error.
void LoadOrt(const std::string& library_path, OrtLoggingLevel log_level);

// Converts a non-null OrtStatus into a std::runtime_error carrying ORT's own message (and frees it).
void ThrowIfError(OrtStatus* status, const char* context);

// Message of a status, freeing it; empty for success.
std::string TakeErrorMessage(OrtStatus* status);

}  // namespace lory
