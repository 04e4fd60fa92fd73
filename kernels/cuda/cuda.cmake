# liblory_ops_cuda.so: CPU + CUDA ops in one ai.lory domain, and moe_cuda_check (the GPU check program).
# Included by kernels/lory-ops/CMakeLists.txt only when nvcc is found. Built for sm_90 (H100/H200) plus
# compute_90 PTX for newer GPUs. nvcc is driven through custom commands rather than CMake's CUDA
# language: older CMake releases probe architectures that CUDA 13 no longer accepts.
set(LORY_CUDA_DIR ${CMAKE_CURRENT_LIST_DIR})
get_filename_component(LORY_NVCC_REAL "${LORY_NVCC}" REALPATH)
get_filename_component(LORY_NVCC_BIN "${LORY_NVCC_REAL}" DIRECTORY)
get_filename_component(LORY_CUDA_ROOT "${LORY_NVCC_BIN}" DIRECTORY)
find_library(LORY_CUDART NAMES cudart HINTS ${LORY_CUDA_ROOT}/lib64 ${LORY_CUDA_ROOT}/lib /usr/local/cuda/lib64)
find_path(LORY_CUDA_INCLUDE NAMES cuda_runtime.h HINTS ${LORY_CUDA_ROOT}/include /usr/local/cuda/include)
if(NOT LORY_CUDART OR NOT LORY_CUDA_INCLUDE)
  message(STATUS "CUDA runtime not found: skipping liblory_ops_cuda.so and moe_cuda_check")
  return()
endif()

set(LORY_CUDA_HEADERS ${LORY_CUDA_DIR}/moe_cuda.h ${LORY_CUDA_DIR}/moe_cuda_common.cuh ${LORY_CUDA_DIR}/moe_cuda_plan.h
    ${LORY_CUDA_DIR}/moe_cuda_job.h ${LORY_CUDA_DIR}/moe_cuda_group.h ${LORY_CUDA_DIR}/moe_cuda_wgrad.h
    ${LORY_CUDA_DIR}/moe_cuda_orchestrate.h
    ${LORY_CUDA_DIR}/adamw_cuda.h ${CMAKE_CURRENT_SOURCE_DIR}/include/lory/moe_shape.h)
set(LORY_CUDA_OBJS)
foreach(unit moe_cuda moe_cuda_segment moe_cuda_group moe_cuda_wgrad adamw_cuda)
  set(obj ${CMAKE_CURRENT_BINARY_DIR}/${unit}.o)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${LORY_NVCC} -std=c++17 -O3 -Xcompiler -fPIC,-fvisibility=hidden
            -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
            -I${CMAKE_CURRENT_SOURCE_DIR}/include -I${LORY_CUDA_DIR} -c ${LORY_CUDA_DIR}/${unit}.cu -o ${obj}
    DEPENDS ${LORY_CUDA_DIR}/${unit}.cu ${LORY_CUDA_HEADERS}
    COMMENT "nvcc ${unit}.cu (sm_90 + PTX)")
  list(APPEND LORY_CUDA_OBJS ${obj})
endforeach()

# The check program (kernels/cuda/check runs it): GPU mode, dense cuBLAS baseline through dlopen.
add_executable(moe_cuda_check ${LORY_CUDA_DIR}/check_main.cpp ${LORY_CUDA_DIR}/check_cublas.cpp
               ${LORY_CUDA_DIR}/moe_cuda_plan.cpp ${LORY_CUDA_OBJS})
target_compile_definitions(moe_cuda_check PRIVATE LORY_WITH_CUDA)
target_include_directories(moe_cuda_check PRIVATE src ${LORY_CUDA_DIR} ${LORY_CUDA_INCLUDE})
target_link_libraries(moe_cuda_check PRIVATE lory_moe_kernels ${LORY_CUDART} ${CMAKE_DL_LIBS})

if(NOT ORT_FOUND)
  message(STATUS "ORT headers not found: skipping liblory_ops_cuda.so")
  return()
endif()
add_library(lory_ops_cuda SHARED
  src/ort_op_common.cpp src/ort_cpu_ops.cpp src/ort_adamw_op.cpp src/ort_scatter_rows_op.cpp
  ${LORY_CUDA_DIR}/ort_cuda_ops.cpp ${LORY_CUDA_DIR}/register_cuda.cpp ${LORY_CUDA_DIR}/moe_cuda_plan.cpp
  ${LORY_CUDA_OBJS})
target_include_directories(lory_ops_cuda PRIVATE src ${LORY_CUDA_DIR} ${ORT_INCLUDE_DIR} ${LORY_CUDA_INCLUDE})
target_link_libraries(lory_ops_cuda PRIVATE lory_moe_kernels ${LORY_CUDART})
target_link_options(lory_ops_cuda PRIVATE -Wl,--no-undefined)
message(STATUS "building liblory_ops_cuda.so and moe_cuda_check with ${LORY_NVCC}")
