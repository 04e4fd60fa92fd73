#include "blas.h"

#include <omp.h>

extern "C" {
// Declared by OpenBLAS's cblas.h; declared here to avoid pulling the whole CBLAS header in.
char* openblas_get_corename(void);
char* openblas_get_config(void);
void openblas_set_num_threads(int);
}

namespace lory_faiss {

std::string BlasCoreName() { return openblas_get_corename(); }
std::string BlasConfig() { return openblas_get_config(); }

void ApplyThreads(int threads) {
  // OpenMP's count is per calling thread and libuv reuses its workers: always set it, so a call that
  // asked for all cores (0) does not inherit a smaller count left by an earlier call on this worker.
  if (threads <= 0) threads = omp_get_num_procs();
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
}

int MaxThreads() { return omp_get_max_threads(); }

}  // namespace lory_faiss
