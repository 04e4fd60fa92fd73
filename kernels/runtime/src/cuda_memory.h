// Device memory for resident values on a CUDA device: allocation, zeroing and copies through the CUDA
// runtime, dlopen'ed on first use (the addon links no CUDA library, so it loads on machines without one).
// Every call throws std::runtime_error with the CUDA runtime's own message.
#pragma once
#include <cstddef>
#include <string>

namespace lory {

void* CudaAllocate(int device, size_t bytes);
void CudaFree(int device, void* pointer) noexcept;
void CudaZero(int device, void* pointer, size_t bytes);
void CudaCopyToDevice(int device, void* device_dst, const void* host_src, size_t bytes);
void CudaCopyToHost(int device, void* host_dst, const void* device_src, size_t bytes);
// Where the CUDA runtime was loaded from, or why it could not be ("" until the first use).
std::string CudaRuntimeStatus();

}  // namespace lory
