// Row scatter-add: out[rows, W] = 0, then out[ids[i]] += u[i] for i = 0 .. n-1 in that order. The
// embedding gradient and the token-level MoE's combine are this op.
//
// Deterministic at any thread count: tasks own disjoint sets of rows (id mod tasks), and each task
// walks all n ids in order, so every element sums its contributions in increasing i — the bits of a
// serial loop. (ONNX Runtime's ScatterND(reduction='add') splits the rows i across threads instead, and two
// threads adding to one output row lose updates: docs/graph.md.)
#pragma once
#include <cstdint>

#include "lory/moe_cpu.h"

namespace lory {

// Index of the first id outside [0, rows), or -1 when all are in range.
int64_t scatter_rows_bad_id(int64_t n, const int64_t* ids, int64_t rows);

// ids must be in range (scatter_rows_bad_id); out may not alias updates.
template <typename T>
void scatter_add_rows(int64_t n, int64_t width, int64_t rows, const int64_t* ids, const T* updates, T* out,
                      const ParallelFor& parallel);

// Float64 reference: the definition, one element at a time.
template <typename T>
void scatter_add_rows_reference(int64_t n, int64_t width, int64_t rows, const int64_t* ids, const T* updates,
                                double* out);

}  // namespace lory
