#include "cuda_memory.h"

#include <dlfcn.h>

#include <mutex>
#include <stdexcept>

namespace lory {

namespace {

// cudaError_t is an int enum; 0 is cudaSuccess. cudaMemcpyKind: 1 host→device, 2 device→host.
using SetDeviceFn = int (*)(int);
using MallocFn = int (*)(void**, size_t);
using FreeFn = int (*)(void*);
using MemsetFn = int (*)(void*, int, size_t);
using MemcpyFn = int (*)(void*, const void*, size_t, int);
using ErrorStringFn = const char* (*)(int);

struct CudaRuntime {
  SetDeviceFn set_device = nullptr;
  MallocFn malloc = nullptr;
  FreeFn free = nullptr;
  MemsetFn memset = nullptr;
  MemcpyFn memcpy = nullptr;
  ErrorStringFn error_string = nullptr;
  std::string status;  // the library loaded, or why none could be
  bool loaded = false;
};

// The CUDA runtime ORT's CUDA provider links (CUDA 13), then older or unversioned names.
const CudaRuntime& Runtime() {
  static CudaRuntime rt;
  static std::once_flag once;
  std::call_once(once, [] {
    for (const char* name : {"libcudart.so.13", "libcudart.so.12", "libcudart.so"}) {
      void* lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (lib == nullptr) continue;
      rt.set_device = reinterpret_cast<SetDeviceFn>(dlsym(lib, "cudaSetDevice"));
      rt.malloc = reinterpret_cast<MallocFn>(dlsym(lib, "cudaMalloc"));
      rt.free = reinterpret_cast<FreeFn>(dlsym(lib, "cudaFree"));
      rt.memset = reinterpret_cast<MemsetFn>(dlsym(lib, "cudaMemset"));
      rt.memcpy = reinterpret_cast<MemcpyFn>(dlsym(lib, "cudaMemcpy"));
      rt.error_string = reinterpret_cast<ErrorStringFn>(dlsym(lib, "cudaGetErrorString"));
      rt.loaded = rt.set_device && rt.malloc && rt.free && rt.memset && rt.memcpy && rt.error_string;
      rt.status = rt.loaded ? name : std::string(name) + " lacks the memory functions lory uses";
      return;
    }
    rt.status = "no CUDA runtime library (libcudart.so.13) on the loader path";
  });
  return rt;
}

const CudaRuntime& Loaded() {
  const CudaRuntime& rt = Runtime();
  if (!rt.loaded) throw std::runtime_error("device memory needs the CUDA runtime: " + rt.status);
  return rt;
}

void Check(const CudaRuntime& rt, int code, const std::string& what) {
  if (code != 0) throw std::runtime_error(what + " failed: " + rt.error_string(code));
}

const CudaRuntime& OnDevice(int device) {
  const CudaRuntime& rt = Loaded();
  Check(rt, rt.set_device(device), "cudaSetDevice(" + std::to_string(device) + ")");
  return rt;
}

}  // namespace

void* CudaAllocate(int device, size_t bytes) {
  const CudaRuntime& rt = OnDevice(device);
  void* pointer = nullptr;
  // A zero-byte tensor still needs a distinct non-null address for ORT; one byte is enough.
  Check(rt, rt.malloc(&pointer, bytes > 0 ? bytes : 1), "cudaMalloc of " + std::to_string(bytes) + " bytes on cuda:" + std::to_string(device));
  return pointer;
}

void CudaFree(int device, void* pointer) noexcept {
  if (pointer == nullptr) return;
  const CudaRuntime& rt = Runtime();
  if (!rt.loaded) return;
  rt.set_device(device);
  rt.free(pointer);
}

void CudaZero(int device, void* pointer, size_t bytes) {
  if (bytes == 0) return;
  const CudaRuntime& rt = OnDevice(device);
  Check(rt, rt.memset(pointer, 0, bytes), "cudaMemset");
}

void CudaCopyToDevice(int device, void* device_dst, const void* host_src, size_t bytes) {
  if (bytes == 0) return;
  const CudaRuntime& rt = OnDevice(device);
  Check(rt, rt.memcpy(device_dst, host_src, bytes, 1), "cudaMemcpy host→device");
}

void CudaCopyToHost(int device, void* host_dst, const void* device_src, size_t bytes) {
  if (bytes == 0) return;
  const CudaRuntime& rt = OnDevice(device);
  Check(rt, rt.memcpy(host_dst, device_src, bytes, 2), "cudaMemcpy device→host");
}

std::string CudaRuntimeStatus() { return Runtime().status; }

}  // namespace lory
