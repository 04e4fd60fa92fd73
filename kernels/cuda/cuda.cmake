# liblory_ops_cuda.so: CPU + CUDA ops in one ai.lory domain. Included by kernels/lory-ops/CMakeLists.txt
# only when nvcc is found. Built for sm_90 (H100/H200) plus compute_90 PTX for newer GPUs.
# nvcc is driven through a custom command rather than CMake's CUDA language: older CMake releases
# probe architectures that CUDA 13 no longer accepts.
set(LORY_CUDA_DIR ${CMAKE_CURRENT_LIST_DIR})
get_filename_component(LORY_NVCC_BIN "${CMAKE_CUDA_COMPILER}" DIRECTORY)
get_filename_component(LORY_CUDA_ROOT "${LORY_NVCC_BIN}" DIRECTORY)
find_library(LORY_CUDART NAMES cudart HINTS ${LORY_CUDA_ROOT}/lib64 ${LORY_CUDA_ROOT}/lib /usr/local/cuda/lib64)
find_path(LORY_CUDA_INCLUDE NAMES cuda_runtime.h HINTS ${LORY_CUDA_ROOT}/include /usr/local/cuda/include)
if(NOT LORY_CUDART OR NOT LORY_CUDA_INCLUDE OR NOT ORT_FOUND)
  message(STATUS "CUDA runtime or ORT headers not found: skipping liblory_ops_cuda.so")
  return()
endif()

set(LORY_CUDA_OBJ ${CMAKE_CURRENT_BINARY_DIR}/moe_cuda.o)
add_custom_command(
  OUTPUT ${LORY_CUDA_OBJ}
  COMMAND ${CMAKE_CUDA_COMPILER} -std=c++17 -O3 -Xcompiler -fPIC,-fvisibility=hidden
          -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
          -I${CMAKE_CURRENT_SOURCE_DIR}/include -c ${LORY_CUDA_DIR}/moe_cuda.cu -o ${LORY_CUDA_OBJ}
  DEPENDS ${LORY_CUDA_DIR}/moe_cuda.cu ${LORY_CUDA_DIR}/moe_cuda.h ${CMAKE_CURRENT_SOURCE_DIR}/include/lory/moe_shape.h
  COMMENT "nvcc moe_cuda.cu (sm_90 + PTX)")

add_library(lory_ops_cuda SHARED
  src/ort_op_common.cpp src/ort_cpu_ops.cpp src/ort_adamw_op.cpp
  ${LORY_CUDA_DIR}/ort_cuda_ops.cpp ${LORY_CUDA_DIR}/register_cuda.cpp ${LORY_CUDA_OBJ})
target_include_directories(lory_ops_cuda PRIVATE src ${LORY_CUDA_DIR} ${ORT_INCLUDE_DIR} ${LORY_CUDA_INCLUDE})
target_link_libraries(lory_ops_cuda PRIVATE lory_moe_kernels ${LORY_CUDART})
target_link_options(lory_ops_cuda PRIVATE -Wl,--no-undefined)
message(STATUS "building liblory_ops_cuda.so with ${CMAKE_CUDA_COMPILER}")
