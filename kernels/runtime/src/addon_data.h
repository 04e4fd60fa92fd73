// Per-environment state of the addon. Node may load it in several environments (worker threads);
// each keeps its own class constructors, so no JS handle crosses environments.
#pragma once
#include <napi.h>

namespace lory {
struct AddonData {
  Napi::FunctionReference value_constructor;
  Napi::FunctionReference session_constructor;
};
inline AddonData& Data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }
}  // namespace lory
