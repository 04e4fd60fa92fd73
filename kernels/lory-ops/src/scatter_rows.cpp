#include "lory/scatter_rows.h"

#include <algorithm>
#include <cstring>

namespace lory {
namespace {

// Columns per task: at least one 64-byte line (no two tasks write one cache line when the output is
// aligned), and few enough tasks that re-reading the ids stays negligible next to the row traffic.
template <typename T>
int64_t column_block(int64_t width) {
  const int64_t line = 64 / sizeof(T);
  const int64_t max_tasks = 16;
  const int64_t per_task = (width + max_tasks - 1) / max_tasks;
  return std::max(line, (per_task + line - 1) / line * line);
}

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
  const int64_t block = column_block<T>(width);
  const int64_t tasks = (width + block - 1) / block;
  parallel(static_cast<size_t>(tasks), [&](size_t task) {
    const int64_t c0 = static_cast<int64_t>(task) * block;
    const int64_t cols = std::min(block, width - c0);
    for (int64_t r = 0; r < rows; ++r) std::memset(out + r * width + c0, 0, sizeof(T) * cols);
    for (int64_t i = 0; i < n; ++i) {
      T* dst = out + ids[i] * width + c0;
      const T* src = updates + i * width + c0;
      for (int64_t c = 0; c < cols; ++c) dst[c] += src[c];
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
