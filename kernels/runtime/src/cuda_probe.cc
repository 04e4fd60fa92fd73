#include "cuda_probe.h"

#include <dlfcn.h>

namespace lory {

CudaProbe ProbeCuda() {
  CudaProbe probe;
  void* driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (driver == nullptr) {
    probe.detail = "no CUDA driver (libcuda.so.1 not found)";
    return probe;
  }
  probe.driver_loaded = true;
  // Driver API entry points with int results (CUresult); 0 is CUDA_SUCCESS.
  using InitFn = int (*)(unsigned int);
  using CountFn = int (*)(int*);
  using VersionFn = int (*)(int*);
  auto cu_init = reinterpret_cast<InitFn>(dlsym(driver, "cuInit"));
  auto cu_count = reinterpret_cast<CountFn>(dlsym(driver, "cuDeviceGetCount"));
  auto cu_version = reinterpret_cast<VersionFn>(dlsym(driver, "cuDriverGetVersion"));
  if (cu_init == nullptr || cu_count == nullptr) {
    probe.detail = "libcuda.so.1 lacks cuInit/cuDeviceGetCount";
    return probe;
  }
  int rc = cu_init(0);
  if (rc != 0) {
    probe.detail = "cuInit failed with CUresult " + std::to_string(rc) + " (no usable GPU)";
    return probe;
  }
  int count = 0;
  if (cu_count(&count) != 0) count = 0;
  probe.device_count = count;
  int version = 0;
  if (cu_version != nullptr && cu_version(&version) == 0) {
    probe.detail = "driver API " + std::to_string(version / 1000) + "." + std::to_string((version % 1000) / 10);
  }
  // The driver stays loaded: unloading it after cuInit is not supported.
  return probe;
}

}  // namespace lory
