# SPDX-License-Identifier: Apache-2.0
# Compiler flags, sanitizers, optional dependencies and the reel_add_test() helper.

find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

# The one library the compute core needs besides libc: jansson (JSON).
pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)

add_library(reel_warnings INTERFACE)
target_compile_options(reel_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:C>:-Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter -Wvla>)
if(REEL_WERROR)
  target_compile_options(reel_warnings INTERFACE $<$<COMPILE_LANGUAGE:C>:-Werror>)
endif()
target_compile_definitions(reel_warnings INTERFACE _GNU_SOURCE)

if(REEL_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()

# Fuzzing: every C file gets libFuzzer's coverage instrumentation plus ASan/UBSan, so
# that the fuzz targets (tests/fuzz, -fsanitize=fuzzer) see into the libraries they call.
if(REEL_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "REEL_FUZZ=ON needs clang (configure with -DCMAKE_C_COMPILER=clang or --preset fuzz)")
  endif()
  add_compile_options($<$<COMPILE_LANGUAGE:C>:-fsanitize=fuzzer-no-link,address,undefined>
                      $<$<COMPILE_LANGUAGE:C>:-fno-sanitize-recover=undefined> $<$<COMPILE_LANGUAGE:C>:-fno-omit-frame-pointer>)
  add_link_options(-fsanitize=address,undefined)
endif()

# CUDA: AUTO builds the backend when nvcc is found.
set(REEL_HAVE_CUDA OFF)
if(NOT REEL_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 80 89 90)
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(REEL_HAVE_CUDA ON)
  elseif(REEL_CUDA STREQUAL "ON")
    message(FATAL_ERROR "REEL_CUDA=ON but no CUDA compiler was found")
  endif()
endif()

set(REEL_HAVE_OPENBLAS OFF)
if(REEL_WITH_OPENBLAS)
  pkg_check_modules(OPENBLAS IMPORTED_TARGET openblas)
  if(OPENBLAS_FOUND)
    set(REEL_HAVE_OPENBLAS ON)
  endif()
endif()

set(REEL_HAVE_DNNL OFF)
if(REEL_WITH_DNNL)
  find_library(DNNL_LIBRARY NAMES dnnl)
  find_path(DNNL_INCLUDE_DIR NAMES dnnl.h)
  if(DNNL_LIBRARY AND DNNL_INCLUDE_DIR)
    set(REEL_HAVE_DNNL ON)
  endif()
endif()

set(REEL_HAVE_S3 OFF)
if(REEL_WITH_S3)
  pkg_check_modules(CURL REQUIRED IMPORTED_TARGET libcurl)
  find_package(OpenSSL REQUIRED)
  set(REEL_HAVE_S3 ON)
endif()

# reel_add_test(NAME name SOURCES a.c LIBS lib... LABELS unit [TIMEOUT s])
function(reel_add_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} reel_testutil reel_warnings)
  add_test(NAME ${T_NAME} COMMAND ${T_NAME})
  set_tests_properties(${T_NAME} PROPERTIES LABELS "${T_LABELS}"
    ENVIRONMENT "REEL_SOURCE_DIR=${PROJECT_SOURCE_DIR};REEL_BINARY_DIR=${PROJECT_BINARY_DIR};CMOCKA_MESSAGE_OUTPUT=stdout")
  if(REEL_SANITIZE)
    # Leaks inside third-party libraries (x265) are suppressed; see the file.
    set_property(TEST ${T_NAME} APPEND PROPERTY ENVIRONMENT
      "LSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/tests/lsan.supp:print_suppressions=0")
  endif()
  if(T_TIMEOUT)
    set_tests_properties(${T_NAME} PROPERTIES TIMEOUT ${T_TIMEOUT})
  endif()
endfunction()
