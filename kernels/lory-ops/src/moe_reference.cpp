// Naive float64 loops that follow the math line by line; no blocking, no threads.
#include "lory/moe_reference.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace lory {
namespace {

double sigmoid(double a) { return 1.0 / (1.0 + std::exp(-a)); }

// W̄[r,c] = Σᵢ e[g,i]·W[i,r,c] for one segment g.
template <typename In>
void merge(const MoeShape& s, const In* e_g, const In* w, int64_t rows, int64_t cols, std::vector<double>& out) {
  out.assign(rows * cols, 0.0);
  for (int64_t i = 0; i < s.E; ++i)
    for (int64_t k = 0; k < rows * cols; ++k) out[k] += double(e_g[i]) * double(w[i * rows * cols + k]);
}

// a = x·W̄g, b = x·W̄u for one segment: [T,f] each.
template <typename In>
void gate_and_up(const MoeShape& s, const In* x_g, const std::vector<double>& wg, const std::vector<double>& wu,
                 std::vector<double>& a, std::vector<double>& b) {
  a.assign(s.T * s.f, 0.0);
  b.assign(s.T * s.f, 0.0);
  for (int64_t t = 0; t < s.T; ++t)
    for (int64_t j = 0; j < s.f; ++j) {
      double sa = 0, sb = 0;
      for (int64_t c = 0; c < s.d; ++c) {
        sa += double(x_g[t * s.d + c]) * wg[c * s.f + j];
        sb += double(x_g[t * s.d + c]) * wu[c * s.f + j];
      }
      a[t * s.f + j] = sa;
      b[t * s.f + j] = sb;
    }
}

template <typename In>
void forward(const MoeShape& s, const In* x, const In* e, const In* w_gate, const In* w_up, const In* w_down,
             double* y) {
  std::vector<double> wg, wu, wd, a, b;
  for (int64_t g = 0; g < s.G; ++g) {
    merge(s, e + g * s.E, w_gate, s.d, s.f, wg);
    merge(s, e + g * s.E, w_up, s.d, s.f, wu);
    merge(s, e + g * s.E, w_down, s.f, s.d, wd);
    const In* x_g = x + g * s.T * s.d;
    gate_and_up(s, x_g, wg, wu, a, b);
    for (int64_t t = 0; t < s.T; ++t)
      for (int64_t c = 0; c < s.d; ++c) {
        double acc = 0;
        for (int64_t j = 0; j < s.f; ++j) {
          const double av = a[t * s.f + j];
          acc += av * sigmoid(av) * b[t * s.f + j] * wd[j * s.d + c];
        }
        y[(g * s.T + t) * s.d + c] = acc;
      }
  }
}

}  // namespace

void moe_forward_reference(const MoeShape& s, const float* x, const float* e, const float* w_gate,
                           const float* w_up, const float* w_down, double* y) {
  forward(s, x, e, w_gate, w_up, w_down, y);
}

void moe_saved_reference(const MoeShape& s, const float* x, const float* e, const float* w_gate, const float* w_up,
                         double* ab) {
  std::vector<double> wg, wu, a, b;
  const int64_t per = s.T * s.f;
  for (int64_t g = 0; g < s.G; ++g) {
    merge(s, e + g * s.E, w_gate, s.d, s.f, wg);
    merge(s, e + g * s.E, w_up, s.d, s.f, wu);
    gate_and_up(s, x + g * s.T * s.d, wg, wu, a, b);
    std::copy(a.begin(), a.end(), ab + g * per);
    std::copy(b.begin(), b.end(), ab + (s.G + g) * per);
  }
}

void moe_forward_reference_f64(const MoeShape& s, const double* x, const double* e, const double* w_gate,
                               const double* w_up, const double* w_down, double* y) {
  forward(s, x, e, w_gate, w_up, w_down, y);
}

void moe_backward_reference(const MoeShape& s, const float* x, const float* e, const float* w_gate,
                            const float* w_up, const float* w_down, const float* dy, double* dx, double* de,
                            double* dw_gate, double* dw_up, double* dw_down) {
  const int64_t T = s.T, d = s.d, f = s.f, E = s.E;
  for (int64_t k = 0; k < s.w_elems(); ++k) dw_gate[k] = dw_up[k] = dw_down[k] = 0.0;
  std::vector<double> wg, wu, wd, a, b, h(T * f), da(T * f), db(T * f);
  std::vector<double> grad_g(d * f), grad_u(d * f), grad_d(f * d);  // G_s of the three merged matrices
  for (int64_t g = 0; g < s.G; ++g) {
    const float* e_g = e + g * E;
    const float* x_g = x + g * T * d;
    const float* dy_g = dy + g * T * d;
    merge(s, e_g, w_gate, d, f, wg);
    merge(s, e_g, w_up, d, f, wu);
    merge(s, e_g, w_down, f, d, wd);
    gate_and_up(s, x_g, wg, wu, a, b);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < f; ++j) {
        double dh = 0;  // dh = dy·W̄dᵀ
        for (int64_t c = 0; c < d; ++c) dh += double(dy_g[t * d + c]) * wd[j * d + c];
        const double av = a[t * f + j], bv = b[t * f + j], sg = sigmoid(av);
        h[t * f + j] = av * sg * bv;
        da[t * f + j] = dh * bv * sg * (1.0 + av * (1.0 - sg));  // silu'(a) = σ(a)(1 + a(1-σ(a)))
        db[t * f + j] = dh * av * sg;
      }
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < d; ++c) {
        double acc = 0;  // dx = da·W̄gᵀ + db·W̄uᵀ
        for (int64_t j = 0; j < f; ++j) acc += da[t * f + j] * wg[c * f + j] + db[t * f + j] * wu[c * f + j];
        dx[(g * T + t) * d + c] = acc;
      }
    for (int64_t c = 0; c < d; ++c)
      for (int64_t j = 0; j < f; ++j) {
        double sg_ = 0, su = 0, sd = 0;
        for (int64_t t = 0; t < T; ++t) {
          sg_ += double(x_g[t * d + c]) * da[t * f + j];  // G_gate = xᵀ·da
          su += double(x_g[t * d + c]) * db[t * f + j];   // G_up = xᵀ·db
          sd += h[t * f + j] * double(dy_g[t * d + c]);   // G_down = hᵀ·dy
        }
        grad_g[c * f + j] = sg_;
        grad_u[c * f + j] = su;
        grad_d[j * d + c] = sd;
      }
    for (int64_t i = 0; i < E; ++i) {
      double dot = 0;  // de[g,i] = ⟨G_s, Wᵢ⟩ summed over the three matrices
      for (int64_t k = 0; k < d * f; ++k) {
        const int64_t ik = i * d * f + k;
        dot += grad_g[k] * w_gate[ik] + grad_u[k] * w_up[ik] + grad_d[k] * w_down[ik];
        dw_gate[ik] += double(e_g[i]) * grad_g[k];  // dWᵢ = Σ_s e[s,i]·G_s
        dw_up[ik] += double(e_g[i]) * grad_u[k];
        dw_down[ik] += double(e_g[i]) * grad_d[k];
      }
      de[g * E + i] = dot;
    }
  }
}

}  // namespace lory
