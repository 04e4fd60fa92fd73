// The error metric of the CUDA kernel's checks (check_main.cpp, moe_cuda_orchestrate_test.cpp):
// max|got − ref| / max|ref|, taken within each segment of an output and maximised over the segments.
// y and dx ([G, T·d]) and de ([G, E]) have a segment axis; dW ([E, d, f]) sums over segments and is one
// block. A metric over the whole output would hide an error confined to a segment whose values are
// orders of magnitude below the largest (peaked routing, small activations); per segment it cannot
// hide, and it is never below the whole-output figure (the segment holding the largest error has a
// max|ref| no larger than the whole output's).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>

namespace lory {

// max|got − ref| / max|ref| over n elements; a NaN in got gives infinity; an all-zero ref divides by 1e-30,
// so any nonzero error there is huge.
template <typename G, typename R>
double relative_error(const G* got, const R* ref, size_t n) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = std::abs(double(got[i]) - double(ref[i]));
    err = std::isnan(d) ? INFINITY : std::max(err, d);
    scale = std::max(scale, std::abs(double(ref[i])));
  }
  return err / std::max(scale, 1e-30);
}

// The worst relative_error over `segments` consecutive blocks of n / segments elements (one block when
// segments ≤ 1; 0 for an empty output).
template <typename G, typename R>
double segment_relative_error(const G* got, const R* ref, size_t n, size_t segments) {
  if (n == 0) return 0;
  if (segments <= 1) return relative_error(got, ref, n);
  const size_t per = n / segments;
  double worst = 0;
  for (size_t s = 0; s < segments; ++s) worst = std::max(worst, relative_error(got + s * per, ref + s * per, per));
  return worst;
}

}  // namespace lory
