// Which micro-kernel family the CPU GEMMs use. Chosen once from the CPU's features (the best it has),
// overridable with the environment variable LORY_GEMM_PATH=portable|avx2|avx512 (benchmark A/B) or
// set_gemm_path (tests force every path the machine can run, whatever it would pick).
#pragma once
#include <cstdint>

namespace lory {

enum class GemmPath { kPortable = 0, kAvx2 = 1, kAvx512 = 2 };

const char* gemm_path_name(GemmPath path);
bool gemm_path_supported(GemmPath path);
// The best path this CPU runs: avx512 (avx512f + avx2/fma), else avx2 (avx2 + fma), else portable.
GemmPath best_gemm_path();
// The path in use (LORY_GEMM_PATH when set and supported, else the best).
GemmPath gemm_path();
// Forces a path; false (and no change) when this CPU cannot run it. Not for use while kernels run.
bool set_gemm_path(GemmPath path);
// Rows per AVX-512 tile for row-major A (1…kMaxRowsAvx512); tests and benchmarks may change it.
int64_t avx512_tile_rows();
void set_avx512_tile_rows(int64_t rows);

}  // namespace lory
