// Asks the CUDA driver (if installed) how many devices it sees, without linking CUDA.
#pragma once
#include <string>

namespace lory {
struct CudaProbe {
  bool driver_loaded = false;
  int device_count = 0;
  std::string detail;  // why there is no device, or the driver version
};
CudaProbe ProbeCuda();
}  // namespace lory
