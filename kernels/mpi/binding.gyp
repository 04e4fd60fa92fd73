{
  # lory's N-API binding over MPI: Debian's Open MPI (libopenmpi-dev), found through its compiler wrapper (mpicc --showme).
  # Collectives run on the libuv thread pool (MPI_THREAD_SERIALIZED: one call at a time, from any
  # thread), in place on TypedArrays — resident tensors' own memory through ResidentValue.view().
  "targets": [
    {
      "target_name": "lory_mpi",
      "sources": [ "src/addon.cc", "src/collectives.cc" ],
      "include_dirs": [ "<!(node -p \"require('node-addon-api').include_dir\")" ],
      "defines": [ "NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_CPP_EXCEPTIONS_ALL", "OMPI_SKIP_MPICXX" ],
      "cflags_cc": [ "-std=c++17", "-O2", "-fexceptions", "-Wall", "-Wextra", "<!@(mpicc --showme:compile)" ],
      "cflags_cc!": [ "-fno-exceptions", "-std=gnu++17" ],
      "libraries": [ "<!@(mpicc --showme:link)", "-ldl" ]
    }
  ]
}
