{
  # lory's N-API binding over FAISS: Debian's libfaiss-dev 1.7.3 (a static, position-independent
  # libfaiss.a, linked in) with OpenBLAS (libopenblas-openmp-dev) for BLAS and LAPACK, OpenMP for
  # threads. Headers come from those Debian packages; nothing is vendored.
  "targets": [
    {
      "target_name": "lory_faiss",
      "sources": [ "src/addon.cc", "src/index.cc", "src/blas.cc" ],
      "include_dirs": [ "<!(node -p \"require('node-addon-api').include_dir\")" ],
      "defines": [ "NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED" ],
      "cflags_cc": [ "-std=c++17", "-O2", "-fexceptions", "-fopenmp", "-Wall", "-Wextra" ],
      "cflags_cc!": [ "-fno-exceptions", "-std=gnu++17" ],
      "libraries": [ "-lfaiss", "-lopenblas", "-lgomp" ]
    }
  ]
}
