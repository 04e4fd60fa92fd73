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
  using GetFn = int (*)(int*, int);
  using NameFn = int (*)(char*, int, int);
  using TotalMemFn = int (*)(size_t*, int);
  auto cu_get = reinterpret_cast<GetFn>(dlsym(driver, "cuDeviceGet"));
  auto cu_name = reinterpret_cast<NameFn>(dlsym(driver, "cuDeviceGetName"));
  auto cu_total = reinterpret_cast<TotalMemFn>(dlsym(driver, "cuDeviceTotalMem_v2"));
  for (int i = 0; i < count && cu_get && cu_name && cu_total; ++i) {
    int handle = 0;  // CUdevice is an int
    CudaProbe::Device device;
    char name[256] = {0};
    size_t total = 0;
    if (cu_get(&handle, i) == 0) {
      if (cu_name(name, sizeof name - 1, handle) == 0) device.name = name;
      if (cu_total(&total, handle) == 0) device.total_bytes = static_cast<int64_t>(total);
    }
    probe.devices.push_back(device);
  }
  int version = 0;
  if (cu_version != nullptr && cu_version(&version) == 0) {
    probe.detail = "driver API " + std::to_string(version / 1000) + "." + std::to_string((version % 1000) / 10);
  }
  // The driver stays loaded: unloading it after cuInit is not supported.
  return probe;
}

}  // namespace lory
