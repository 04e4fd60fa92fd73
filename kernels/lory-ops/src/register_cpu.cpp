// Entry point of liblory_ops.so: ORT calls RegisterCustomOps when the session options register it.
#include "ort_cpu_ops.h"
#include "ort_op_common.h"

extern "C" __attribute__((visibility("default"))) OrtStatus* ORT_API_CALL
RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api_base) {
  lory::g_ort = api_base->GetApi(ORT_API_VERSION);
  if (!lory::g_ort) {
    const OrtApi* v1 = api_base->GetApi(1);  // CreateStatus exists in every version
    return v1 ? v1->CreateStatus(ORT_FAIL, "lory ops need ONNX Runtime with API version >= 29 (1.29+)") : nullptr;
  }
  OrtCustomOpDomain* domain = nullptr;  // lives as long as the process: sessions keep pointers into it
  LORY_RETURN_IF_ERROR(lory::g_ort->CreateCustomOpDomain(lory::kDomain, &domain));
  LORY_RETURN_IF_ERROR(lory::add_cpu_ops(domain));
  return lory::g_ort->AddCustomOpDomain(options, domain);
}
