// The passes of the CUDA merged-expert FFN over chunks of segments (docs/kernels.md, "CUDA kernel"):
// which GEMM jobs, weight-gradient and `de` reductions run, on which slices of the inputs and of the
// planned scratch. Host code over a Backend, so the same orchestration drives the GPU kernels
// (moe_cuda.cu) and a host emulation in the test (moe_cuda_orchestrate_test.cpp). A Backend provides:
//   std::string gemm(const SegmentJob<T>& job, long long segments);
//   std::string weight_grad(const Phase<T>& prod, long long segments, int M, int N, int E, const T* e,
//                           const T* w, T* dw, float* acc, bool first, bool last, float* de_partial,
//                           long long tile_offset);
//   std::string de_reduce(const float* de_partial, long long tiles, long long segments, int E, T* de);
//   std::string zero(T* p, long long n);
// each returning "" or an error text. The orchestration calls gemm and weight_grad only with M, N, K,
// E and segments ≥ 1 (a CUDA grid has no empty dimension); when T, d, f or E is 0 (or G is) it calls
// only zero: every output that has elements is then exactly 0 (sums over no tokens, no experts, no
// segments or an empty width). weight_grad: for its [E, M, N] tensor and the chunk's segments
// s: G_s = prodₛ (one [M,N] product, K = T); dWᵢ = (first ? 0 : previous) + Σ_s e[s,i]·G_s, kept in
// `acc` (float32) when given and written to dw when `last`, else written to dw; and
// de_partial[(tile_offset + tile)·segments·E + s·E + i] = ⟨G_s, Wᵢ⟩ over each 64×64 tile (tiles
// numbered row-major over the [M,N] tile grid). de_reduce: de[s,i] = Σ_tiles in order.
#pragma once
#include <initializer_list>
#include <string>
#include <utility>

#include "lory/moe_shape.h"
#include "moe_cuda_job.h"
#include "moe_cuda_plan.h"

namespace lory {

// Operand B̄ = Σᵢ e[s,i]·W_i, W_i(k,n) = w[i*stride + k*rs + n*cs].
template <typename T>
MergedOperand<T> merged_operand(const T* w, long long stride, long long rs, long long cs, const T* e, int E,
                                int slot) {
  return MergedOperand<T>{w, stride, rs, cs, 0, e, E, E, slot};
}

// True when a dimension other than G is 0: the GEMMs would have an empty M, N, K or expert sum.
inline bool degenerate(const MoeShape& s) { return s.T == 0 || s.d == 0 || s.f == 0 || s.E == 0; }

// Zeroes each output (pointer, element count); empty ones are skipped.
template <typename T, typename Backend>
std::string zero_outputs(Backend& be, std::initializer_list<std::pair<T*, long long>> outs) {
  for (const auto& o : outs)
    if (o.second > 0)
      if (std::string err = be.zero(o.first, o.second); !err.empty()) return err;
  return "";
}

// The saved pre-activations ab [2, G, T, f] of the training pair: a of segment `first`, and b of it.
template <typename T>
struct SavedAt {
  T* a;
  T* b;
};
template <typename T>
SavedAt<T> saved_at(T* ab, const MoeShape& sh, long long first) {
  const long long per = sh.T * sh.f;
  return SavedAt<T>{ab + first * per, ab + (sh.G + first) * per};
}

// y = W̄d(silu(x·W̄g) ⊙ x·W̄u) per segment; with `saved` (the training forward, LoryMoEFFNTrain) also
// a = x·W̄g, b = x·W̄u into saved [2, G, T, f], written by the same epilogue that computes h.
template <typename T, typename Backend>
std::string orchestrate_forward(Backend& be, CudaDType dtype, const MoeShape& sh, const T* x, const T* e,
                                const T* wg, const T* wu, const T* wd, T* y, T* saved, void* scratch,
                                const MoeCudaOptions& opt) {
  const long long Tn = sh.T, d = sh.d, f = sh.f;
  const int E = int(sh.E);
  const ForwardLayout lay = plan_forward(sh, dtype, opt.scratch_budget_bytes);
  T* h = reinterpret_cast<T*>(static_cast<char*>(scratch) + lay.h);
  const std::string op = saved ? "LoryMoEFFNTrain (CUDA): " : "LoryMoEFFN (CUDA): ";
  if (degenerate(sh)) {  // a, b are sums over an empty width or no experts when d or E is 0
    const std::string err = zero_outputs<T>(be, {{y, sh.x_elems()}, {saved, saved ? 2 * sh.G * Tn * f : 0}});
    return err.empty() ? "" : op + err;
  }
  for (long long c = 0; c < lay.plan.chunks; ++c) {
    const ChunkRange r = chunk_range(lay.plan, c);
    const T* xg = x + r.first * Tn * d;
    const T* eg = e + r.first * E;
    SegmentJob<T> up{};  // h = silu(x·W̄g) ⊙ (x·W̄u), and a, b when saving
    up.n_ph = 1, up.slots = 2, up.M = int(Tn), up.N = int(f);
    up.ph[0] = Phase<T>{View<T>{xg, Tn * d, d, 1}, int(d), 2,
                        {merged_operand(wg, d * f, f, 1, eg, E, 0), merged_operand(wu, d * f, f, 1, eg, E, 1)}};
    up.out[0] = h, up.out_seg = Tn * f, up.out_ld = f;
    up.epi = saved ? Epilogue::swiglu_save : Epilogue::swiglu;
    if (saved) {
      const SavedAt<T> at = saved_at(saved, sh, r.first);
      up.out[1] = at.a, up.out[2] = at.b;
    }
    std::string err = be.gemm(up, r.count);
    if (err.empty()) {  // y = h·W̄d
      SegmentJob<T> down{};
      down.n_ph = 1, down.slots = 1, down.M = int(Tn), down.N = int(d), down.epi = Epilogue::store;
      down.ph[0] = Phase<T>{View<T>{h, Tn * f, f, 1}, int(f), 1, {merged_operand(wd, f * d, d, 1, eg, E, 0)}};
      down.out[0] = y + r.first * Tn * d, down.out_seg = Tn * d, down.out_ld = d;
      err = be.gemm(down, r.count);
    }
    if (!err.empty()) return op + err;
  }
  return "";
}

// Gradients of ⟨y, dy⟩. Without `saved` pass A recomputes a, b beside dh (LoryMoEFFNGrad); with it (the
// training pair's LoryMoEFFNTrainGrad) pass A computes only dh = dy·W̄dᵀ and its epilogue reads a, b.
template <typename T, typename Backend>
std::string orchestrate_backward(Backend& be, CudaDType dtype, const MoeShape& sh, const T* x, const T* e,
                                 const T* wg, const T* wu, const T* wd, const T* dy, const T* saved, T* dx, T* de,
                                 T* dwg, T* dwu, T* dwd, void* scratch, const MoeCudaOptions& opt) {
  const long long Tn = sh.T, d = sh.d, f = sh.f;
  const int E = int(sh.E);
  const BackwardLayout lay = plan_backward(sh, dtype, opt.scratch_budget_bytes);
  char* base = static_cast<char*>(scratch);
  T* h = reinterpret_cast<T*>(base + lay.h);
  T* da = reinterpret_cast<T*>(base + lay.da);
  T* db = reinterpret_cast<T*>(base + lay.db);
  float* de_partial = reinterpret_cast<float*>(base + lay.de_partial);
  float* acc = lay.has_dw_acc ? reinterpret_cast<float*>(base + lay.dw_acc) : nullptr;
  const long long w_elems = sh.w_elems();
  const std::string op = saved ? "LoryMoEFFNTrainGrad (CUDA): " : "LoryMoEFFNGrad (CUDA): ";
  // G = 0 runs no chunk, yet dW = 0 (a sum over no segments); the other outputs are empty then.
  if (degenerate(sh) || lay.plan.chunks == 0) {
    const std::string err = zero_outputs<T>(
        be, {{dx, sh.x_elems()}, {de, sh.e_elems()}, {dwg, w_elems}, {dwu, w_elems}, {dwd, w_elems}});
    return err.empty() ? "" : op + err;
  }
  for (long long c = 0; c < lay.plan.chunks; ++c) {
    const ChunkRange r = chunk_range(lay.plan, c);
    const long long n = r.count;
    const T* xg = x + r.first * Tn * d;
    const T* dyg = dy + r.first * Tn * d;
    const T* eg = e + r.first * E;
    // dh(t,j) = Σ_c dy(t,c)·W̄d(j,c) and a = x·W̄g, b = x·W̄u (recomputed, or read from `saved`);
    // epilogue: h, da, db.
    SegmentJob<T> pa{};
    pa.M = int(Tn), pa.N = int(f);
    pa.out[0] = h, pa.out[1] = da, pa.out[2] = db, pa.out_seg = Tn * f, pa.out_ld = f;
    if (saved) {
      const SavedAt<const T> at = saved_at(saved, sh, r.first);
      pa.n_ph = 1, pa.slots = 1, pa.epi = Epilogue::swiglu_grad_saved;
      pa.ph[0] = Phase<T>{View<T>{dyg, Tn * d, d, 1}, int(d), 1, {merged_operand(wd, f * d, 1, d, eg, E, 0)}};
      pa.in[0] = at.a, pa.in[1] = at.b;
    } else {
      pa.n_ph = 2, pa.slots = 3, pa.epi = Epilogue::swiglu_grad;
      pa.ph[0] = Phase<T>{View<T>{xg, Tn * d, d, 1}, int(d), 2,
                          {merged_operand(wg, d * f, f, 1, eg, E, 0), merged_operand(wu, d * f, f, 1, eg, E, 1)}};
      pa.ph[1] = Phase<T>{View<T>{dyg, Tn * d, d, 1}, int(d), 1, {merged_operand(wd, f * d, 1, d, eg, E, 2)}};
    }
    std::string err = be.gemm(pa, n);
    if (err.empty()) {  // dx(t,c) = Σ_j da(t,j)·W̄g(c,j) + db(t,j)·W̄u(c,j): one accumulator, K = 2f
      SegmentJob<T> pb{};
      pb.n_ph = 2, pb.slots = 1, pb.M = int(Tn), pb.N = int(d), pb.epi = Epilogue::store;
      pb.ph[0] = Phase<T>{View<T>{da, Tn * f, f, 1}, int(f), 1, {merged_operand(wg, d * f, 1, f, eg, E, 0)}};
      pb.ph[1] = Phase<T>{View<T>{db, Tn * f, f, 1}, int(f), 1, {merged_operand(wu, d * f, 1, f, eg, E, 0)}};
      pb.out[0] = dx + r.first * Tn * d, pb.out_seg = Tn * d, pb.out_ld = d;
      err = be.gemm(pb, n);
    }
    if (!err.empty()) return op + err;
    // G_gate,s = x_sᵀ·da_s, G_up,s = x_sᵀ·db_s ([d,f]); G_down,s = h_sᵀ·dy_s ([f,d]); K = T.
    const bool first = c == 0, last = c + 1 == lay.plan.chunks;
    auto plain = [](View<T> a, const T* b, long long b_seg, long long b_ld, int K) {
      return Phase<T>{a, K, 1, {MergedOperand<T>{b, 0, b_ld, 1, b_seg, nullptr, 0, 1, 0}}};
    };
    err = be.weight_grad(plain(View<T>{xg, Tn * d, 1, d}, da, Tn * f, f, int(Tn)), n, int(d), int(f), E, eg, wg, dwg,
                         acc, first, last, de_partial, 0);
    if (err.empty())
      err = be.weight_grad(plain(View<T>{xg, Tn * d, 1, d}, db, Tn * f, f, int(Tn)), n, int(d), int(f), E, eg, wu,
                           dwu, acc ? acc + w_elems : nullptr, first, last, de_partial, lay.tiles_gate);
    if (err.empty())
      err = be.weight_grad(plain(View<T>{h, Tn * f, 1, f}, dyg, Tn * d, d, int(Tn)), n, int(f), int(d), E, eg, wd,
                           dwd, acc ? acc + 2 * w_elems : nullptr, first, last, de_partial, 2 * lay.tiles_gate);
    if (err.empty()) err = be.de_reduce(de_partial, 2 * lay.tiles_gate + lay.tiles_down, n, E, de + r.first * E);
    if (!err.empty()) return op + err;
  }
  return "";
}

}  // namespace lory
