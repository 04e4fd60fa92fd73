// A tiny custom-op library used by lory's runtime tests: it proves that libraries registered through
// the binding load, that ops read their attributes, and that ORT reports their errors.
//   ai.lory.test::ScaleShift(x: float[...]) -> y = alpha * x + beta   (attributes: alpha, beta: float)
//   ai.lory.test::Fail(x) -> always fails with a message (error-path test)
#define ORT_API_MANUAL_INIT
#include <onnxruntime_cxx_api.h>
#include <onnxruntime_lite_custom_op.h>

#include <memory>
#include <mutex>

namespace {

struct ScaleShift {
  ScaleShift(const OrtApi*, const OrtKernelInfo* info) {
    Ort::ConstKernelInfo kernel_info(info);
    alpha = kernel_info.GetAttribute<float>("alpha");
    beta = kernel_info.GetAttribute<float>("beta");
  }
  Ort::Status Compute(const Ort::Custom::Tensor<float>& x, Ort::Custom::Tensor<float>& y) {
    const float* in = x.Data();
    float* out = y.Allocate(x.Shape());
    const int64_t n = x.NumberOfElement();
    for (int64_t i = 0; i < n; ++i) out[i] = alpha * in[i] + beta;
    return Ort::Status{nullptr};
  }
  float alpha;
  float beta;
};

Ort::Status FailAlways(const Ort::Custom::Tensor<float>&, Ort::Custom::Tensor<float>&) {
  return Ort::Status("Fail op was asked to fail", ORT_INVALID_ARGUMENT);
}

// ORT keeps raw pointers to the domain and ops, so they live as long as the process.
std::unique_ptr<Ort::CustomOpDomain> g_domain;
std::unique_ptr<Ort::Custom::OrtLiteCustomOp> g_scale_shift;
std::unique_ptr<Ort::Custom::OrtLiteCustomOp> g_fail;
std::once_flag g_once;

}  // namespace

extern "C" __attribute__((visibility("default"))) OrtStatus* ORT_API_CALL RegisterCustomOps(OrtSessionOptions* options,
                                                                                            const OrtApiBase* api_base) {
  Ort::InitApi(api_base->GetApi(ORT_API_VERSION));
  try {
    std::call_once(g_once, [] {
      g_domain = std::make_unique<Ort::CustomOpDomain>("ai.lory.test");
      g_scale_shift.reset(Ort::Custom::CreateLiteCustomOp<ScaleShift>("ScaleShift", "CPUExecutionProvider"));
      g_fail.reset(Ort::Custom::CreateLiteCustomOp("Fail", "CPUExecutionProvider", FailAlways));
      g_domain->Add(g_scale_shift.get());
      g_domain->Add(g_fail.get());
    });
    Ort::UnownedSessionOptions(options).Add(*g_domain);
  } catch (const Ort::Exception& e) {
    return Ort::GetApi().CreateStatus(e.GetOrtErrorCode(), e.what());
  }
  return nullptr;
}
