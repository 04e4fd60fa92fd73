// Thread and CPU facts of the BLAS and OpenMP underneath FAISS.
#pragma once
#include <string>

namespace lory_faiss {

// The OpenBLAS kernel family in use (e.g. "Haswell", "SkylakeX", or "Prescott" when misdetected).
std::string BlasCoreName();
std::string BlasConfig();
// Threads FAISS and OpenBLAS use from now on, on the calling thread (OpenMP settings are per thread).
void ApplyThreads(int threads);
int MaxThreads();

}  // namespace lory_faiss
