# The CUDA engine (included from native/CMakeLists.txt when a CUDA compiler is found).
# Kernels: sm_80 SASS (mma.sync path, runs on Ampere and newer), sm_90a SASS (Hopper) and compute_80 PTX
# for anything newer. -DCMAKE_CUDA_ARCHITECTURES=... overrides the list (e.g. 90a for a quick Hopper build).
# cudart is linked statically and NCCL and cuBLAS are dlopen'ed, so the library loads on machines without a GPU.
if(DEFINED CMAKE_CUDA_ARCHITECTURES AND NOT CMAKE_CUDA_ARCHITECTURES STREQUAL "")
  set(XATTN_CUDA_USER_ARCHS ON)
else()
  set(XATTN_CUDA_USER_ARCHS OFF)
  set(CMAKE_CUDA_ARCHITECTURES OFF)  # the gencode flags below say it explicitly
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)

file(GLOB XATTN_CUDA_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*.cu ${CMAKE_CURRENT_LIST_DIR}/*.cc)
add_library(xattn_cuda STATIC ${XATTN_CUDA_SOURCES})
set_target_properties(xattn_cuda PROPERTIES POSITION_INDEPENDENT_CODE ON CUDA_RUNTIME_LIBRARY Static)
target_include_directories(xattn_cuda PUBLIC ${CMAKE_CURRENT_LIST_DIR}/..)
target_link_libraries(xattn_cuda PUBLIC xattn_core CUDA::cudart_static ${CMAKE_DL_LIBS} Threads::Threads)
target_compile_options(xattn_cuda PRIVATE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -O3>
  $<$<COMPILE_LANGUAGE:CUDA>:-O3 --expt-relaxed-constexpr -Xptxas=-warn-spills -lineinfo>)
if(NOT XATTN_CUDA_USER_ARCHS)
  set(XATTN_CUDA_GENCODE
    -gencode=arch=compute_80,code=sm_80
    -gencode=arch=compute_90a,code=sm_90a
    -gencode=arch=compute_80,code=compute_80)
  target_compile_options(xattn_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:${XATTN_CUDA_GENCODE}>)
endif()

# Standalone GPU checks and benchmarks (no Node needed). Skipped inside the addon build.
if(NOT CMAKE_JS_INC)
  option(XATTN_CUDA_CHECKS "Build the standalone CUDA check and bench programs" ON)
else()
  option(XATTN_CUDA_CHECKS "Build the standalone CUDA check and bench programs" OFF)
endif()
if(XATTN_CUDA_CHECKS)
  foreach(prog check_kernels bench_kernels check_nccl check_nn bench_interference bench_head_split bench_gather probe_poll)
    file(GLOB src ${CMAKE_CURRENT_LIST_DIR}/tests/${prog}.cu ${CMAKE_CURRENT_LIST_DIR}/tests/${prog}.cc ${CMAKE_CURRENT_LIST_DIR}/tests/${prog}_*.cc)
    string(REPLACE "check_kernels" "xattn_cuda_check" exe ${prog})
    string(REPLACE "bench_kernels" "xattn_cuda_bench" exe ${exe})
    string(REPLACE "check_nccl" "xattn_nccl_check" exe ${exe})
    string(REPLACE "check_nn" "xattn_nn_check" exe ${exe})
    string(REPLACE "bench_interference" "xattn_interference_bench" exe ${exe})
    string(REPLACE "bench_head_split" "xattn_head_split_bench" exe ${exe})
    string(REPLACE "bench_gather" "xattn_gather_bench" exe ${exe})
    string(REPLACE "probe_poll" "xattn_poll_probe" exe ${exe})
    add_executable(${exe} ${src} ${CMAKE_CURRENT_LIST_DIR}/tests/reference.cc ${CMAKE_CURRENT_LIST_DIR}/tests/forked_ranks.cc)
    set_target_properties(${exe} PROPERTIES CUDA_RUNTIME_LIBRARY Static)
    target_link_libraries(${exe} PRIVATE xattn_cuda)
    # Self-contained binaries: they can be built on one machine and run on the GPU box.
    target_link_options(${exe} PRIVATE -static-libstdc++ -static-libgcc)
    if(NOT XATTN_CUDA_USER_ARCHS)
      target_compile_options(${exe} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:${XATTN_CUDA_GENCODE}>)
    endif()
  endforeach()
endif()
