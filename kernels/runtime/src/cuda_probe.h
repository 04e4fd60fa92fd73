// Asks the CUDA driver (if installed) how many devices it sees, without linking CUDA.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lory {
struct CudaProbe {
  bool driver_loaded = false;
  int device_count = 0;
  std::string detail;  // why there is no device, or the driver version
  struct Device {
    std::string name;
    int64_t total_bytes = 0;
  };
  std::vector<Device> devices;  // what the driver says of each device
};
CudaProbe ProbeCuda();
}  // namespace lory
