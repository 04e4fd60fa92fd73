{
  # lory's N-API addon over the ONNX Runtime C API. ORT is dlopen'ed at run time from the
  # libonnxruntime.so.1 that onnxruntime-node ships, so nothing here links against it; the headers
  # come from the com.github.asus4.onnxruntime npm package (ORT_INCLUDE_DIR, set by the build script).
  "variables": { "ort_include_dir%": "" },
  "targets": [
    {
      "target_name": "lory_runtime",
      "sources": [
        "src/addon.cc",
        "src/ort_api.cc",
        "src/value.cc",
        "src/session.cc",
        "src/cuda_probe.cc",
        "src/cuda_memory.cc",
        "src/dtype.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<(ort_include_dir)"
      ],
      "defines": [ "NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_CPP_EXCEPTIONS_ALL" ],
      "cflags_cc": [ "-std=c++17", "-O2", "-fexceptions", "-Wall", "-Wextra" ],
      "cflags_cc!": [ "-fno-exceptions", "-std=gnu++17" ],
      "libraries": [ "-ldl" ]
    }
  ]
}
