// Collectives over MPI_COMM_WORLD, each run on the libuv thread pool and resolved as a Promise.
#pragma once
#include <napi.h>

namespace lory_mpi {

// allreduce(arrays: TypedArray[], op: 'sum' | 'max' | 'min') → Promise<void>, in place.
Napi::Value Allreduce(const Napi::CallbackInfo& info);
// broadcast(arrays: TypedArray[], root: number) → Promise<void>, in place.
Napi::Value Broadcast(const Napi::CallbackInfo& info);
// allgather(send: TypedArray, recv: TypedArray of size·send.length, same type) → Promise<void>.
Napi::Value Allgather(const Napi::CallbackInfo& info);
// barrier() → Promise<void>.
Napi::Value Barrier(const Napi::CallbackInfo& info);

// The message of an MPI error code.
std::string ErrorString(int code);

}  // namespace lory_mpi
