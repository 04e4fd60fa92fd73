#include "gemm_path.h"

#include <atomic>
#include <initializer_list>
#include <cstdlib>
#include <cstring>

#include "micro_avx512.h"

namespace lory {
namespace {

GemmPath parse_env_path() {
  const char* env = std::getenv("LORY_GEMM_PATH");
  if (env == nullptr || *env == '\0') return best_gemm_path();
  for (GemmPath p : {GemmPath::kPortable, GemmPath::kAvx2, GemmPath::kAvx512})
    if (std::strcmp(env, gemm_path_name(p)) == 0 && gemm_path_supported(p)) return p;
  return best_gemm_path();  // unknown or unsupported here: fall back rather than crash on SIGILL
}

std::atomic<int>& current_path() {
  static std::atomic<int> path{int(parse_env_path())};
  return path;
}

int64_t env_int(const char* name, int64_t fallback) {
  const char* env = std::getenv(name);
  return env != nullptr && *env != '\0' ? std::atoll(env) : fallback;
}

// Rows per AVX-512 tile (LORY_AVX512_ROWS overrides it for benchmark sweeps; see docs/kernels.md).
std::atomic<int64_t> tile_rows{env_int("LORY_AVX512_ROWS", kDefaultRowsAvx512)};

}  // namespace

const char* gemm_path_name(GemmPath path) {
  switch (path) {
    case GemmPath::kAvx512: return "avx512";
    case GemmPath::kAvx2: return "avx2";
    default: return "portable";
  }
}

bool gemm_path_supported(GemmPath path) {
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  static const bool avx512 = avx2 && __builtin_cpu_supports("avx512f");
  switch (path) {
    case GemmPath::kAvx512: return avx512;
    case GemmPath::kAvx2: return avx2;
    default: return true;
  }
}

GemmPath best_gemm_path() {
  if (gemm_path_supported(GemmPath::kAvx512)) return GemmPath::kAvx512;
  if (gemm_path_supported(GemmPath::kAvx2)) return GemmPath::kAvx2;
  return GemmPath::kPortable;
}

GemmPath gemm_path() { return GemmPath(current_path().load(std::memory_order_relaxed)); }

bool set_gemm_path(GemmPath path) {
  if (!gemm_path_supported(path)) return false;
  current_path().store(int(path), std::memory_order_relaxed);
  return true;
}

int64_t avx512_tile_rows() { return tile_rows.load(std::memory_order_relaxed); }
void set_avx512_tile_rows(int64_t rows) {
  tile_rows.store(rows < 1 ? 1 : rows > kMaxRowsAvx512 ? kMaxRowsAvx512 : rows, std::memory_order_relaxed);
}

}  // namespace lory
