#pragma once
#include <onnxruntime_c_api.h>

namespace lory {
// LoryMoEFFN and LoryMoEFFNGrad for the CPU execution provider, float32.
OrtStatus* add_cpu_ops(OrtCustomOpDomain* domain);
}
