#include "lory/scatter_rows.h"

#include <algorithm>
#include <cstring>

namespace lory {
namespace {

// Below this many elements moved, one task: waking the pool costs more than the work.
constexpr int64_t kSerialBelow = int64_t(1) << 16;
// Row classes (id mod kClasses) handed to the pool: enough for dynamic balancing on a few threads
// when one frequent token makes its class heavier than the rest.
constexpr int64_t kClasses = 8;

}  // namespace

int64_t scatter_rows_bad_id(int64_t n, const int64_t* ids, int64_t rows) {
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= rows) return i;
  return -1;
}

template <typename T>
void scatter_add_rows(int64_t n, int64_t width, int64_t rows, const int64_t* ids, const T* updates, T* out,
                      const ParallelFor& parallel) {
  if (width <= 0 || rows <= 0) return;
  // Task k owns the rows r with r mod tasks == k: it zeroes them, then walks every id in order and adds
  // the updates of its own rows. Whole rows stay contiguous (prefetch-friendly), no two tasks write one
  // row, and each element's sum runs in increasing i whatever the number of tasks or threads.
  const int64_t tasks = (n + rows) * width < kSerialBelow ? 1 : std::min(kClasses, rows);
  parallel(static_cast<size_t>(tasks), [&](size_t task) {
    const int64_t k = static_cast<int64_t>(task);
    for (int64_t r = k; r < rows; r += tasks) std::memset(out + r * width, 0, sizeof(T) * width);
    for (int64_t i = 0; i < n; ++i) {
      if (ids[i] % tasks != k) continue;
      T* dst = out + ids[i] * width;
      const T* src = updates + i * width;
      for (int64_t c = 0; c < width; ++c) dst[c] += src[c];
    }
  });
}

template <typename T>
void scatter_add_rows_reference(int64_t n, int64_t width, int64_t rows, const int64_t* ids, const T* updates,
                                double* out) {
  std::fill(out, out + rows * width, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < width; ++c) out[ids[i] * width + c] += static_cast<double>(updates[i * width + c]);
}

template void scatter_add_rows<float>(int64_t, int64_t, int64_t, const int64_t*, const float*, float*,
                                      const ParallelFor&);
template void scatter_add_rows<double>(int64_t, int64_t, int64_t, const int64_t*, const double*, double*,
                                       const ParallelFor&);
template void scatter_add_rows_reference<float>(int64_t, int64_t, int64_t, const int64_t*, const float*, double*);
template void scatter_add_rows_reference<double>(int64_t, int64_t, int64_t, const int64_t*, const double*, double*);

}  // namespace lory
