/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared by the CUDA backend's .cu files: the backend's private state, error
 * checking macros (REEL_CUDA_CHECK logs the statement, file and line and
 * returns REEL_EDEVICE), device-side element load/store for f32/f16/bf16, and
 * the strided-iteration descriptor passed by value to kernels.
 *
 * Ops are queued on the backend's one stream; nothing here synchronises the host
 * except downloads and reel_backend_synchronize().
 */
#ifndef REEL_CUDA_COMMON_CUH
#define REEL_CUDA_COMMON_CUH

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "../src/backend_impl.h"
#include "reel/log.h"

typedef struct reel__cuda {
  int device;
  cudaStream_t stream;
  cublasLtHandle_t lt;
  void *ws; /* device scratch, grown on demand; freed stream-ordered */
  size_t ws_cap;
} reel__cuda;

static inline reel__cuda *reel__cuda_of(reel_backend *b) { return (reel__cuda *)b->impl; }

/* Makes the backend's device current for this host thread (cheap when it already is). */
static inline cudaError_t reel__cuda_use(reel_backend *b) { return cudaSetDevice(reel__cuda_of(b)->device); }

/* Logs and records a failed CUDA/cuBLAS call; returns REEL_EDEVICE. */
reel_status reel__cuda_fail(reel_error *err, const char *stmt, const char *file, int line, const char *what);

#define REEL_CUDA_CHECK(stmt)                                                                 \
  do {                                                                                        \
    cudaError_t reel_cuda_e_ = (stmt);                                                        \
    if (reel_cuda_e_ != cudaSuccess)                                                          \
      return reel__cuda_fail(err, #stmt, __FILE__, __LINE__, cudaGetErrorString(reel_cuda_e_)); \
  } while (0)

#define REEL_CUBLAS_CHECK(stmt)                                                                   \
  do {                                                                                            \
    cublasStatus_t reel_cublas_s_ = (stmt);                                                       \
    if (reel_cublas_s_ != CUBLAS_STATUS_SUCCESS)                                                  \
      return reel__cuda_fail(err, #stmt, __FILE__, __LINE__, cublasLtGetStatusString(reel_cublas_s_)); \
  } while (0)

/* Checks the last kernel launch. */
#define REEL_CUDA_CHECK_LAUNCH() REEL_CUDA_CHECK(cudaGetLastError())

/*
 * Returns at least `bytes` of device scratch for the current op (contents
 * undefined), valid until the next call. NULL with err set on failure.
 */
void *reel__cuda_scratch(reel_backend *b, size_t bytes, reel_error *err);

/* Element access; dt is a reel_dtype (F32, F16 or BF16). */
__device__ __forceinline__ float reel__ld(const void *base, int dt, int64_t i) {
  if (dt == REEL_F32) return ((const float *)base)[i];
  if (dt == REEL_F16) return __half2float(((const __half *)base)[i]);
  return __bfloat162float(((const __nv_bfloat16 *)base)[i]);
}

__device__ __forceinline__ void reel__st(void *base, int dt, int64_t i, float v) {
  if (dt == REEL_F32)
    ((float *)base)[i] = v;
  else if (dt == REEL_F16)
    ((__half *)base)[i] = __float2half_rn(v);
  else
    ((__nv_bfloat16 *)base)[i] = __float2bfloat16_rn(v);
}

/* Strided iteration over up to 6 merged dims for up to 3 operands (from reel__iter). */
typedef struct reel__cuda_iter {
  int ndim;
  int64_t shape[REEL_MAX_DIMS];
  int64_t stride[3][REEL_MAX_DIMS];
} reel__cuda_iter;

/* Element offsets of linear index i (over all dims) for the first nops operands. */
__device__ __forceinline__ void reel__iter_offsets(const reel__cuda_iter &it, int nops, int64_t i, int64_t *off) {
  off[0] = off[1] = off[2] = 0;
  for (int d = it.ndim - 1; d >= 0; d--) {
    int64_t c = i % it.shape[d];
    i /= it.shape[d];
    for (int k = 0; k < nops; k++) off[k] += c * it.stride[k][d];
  }
}

static inline void reel__cuda_iter_from(reel__cuda_iter *ci, const reel__iter *it) {
  ci->ndim = it->ndim;
  for (int d = 0; d < REEL_MAX_DIMS; d++) {
    ci->shape[d] = d < it->ndim ? it->shape[d] : 1;
    for (int k = 0; k < 3; k++) ci->stride[k][d] = (d < it->ndim && k < it->nops) ? it->stride[k][d] : 0;
  }
}

/* Launch grid for n elements with 256 threads per block (grid-stride loops cover the rest). */
static inline unsigned reel__cuda_blocks(int64_t n) {
  int64_t b = (n + 255) / 256;
  return (unsigned)(b > 65535 * 8 ? 65535 * 8 : (b < 1 ? 1 : b));
}

/* Op entry points (one .cu per family). */
extern "C" {
reel_status reel__cuda_matmul(reel_backend *b, const reel_tensor *x, const reel_tensor *w, const reel_tensor *bias,
                              reel_tensor *out, reel_error *err);
reel_status reel__cuda_matmul_batched(reel_backend *b, const reel_tensor *a, const reel_tensor *bm, int trans_b,
                                      float alpha, reel_tensor *out, reel_error *err);
reel_status reel__cuda_binary(reel_backend *b, reel__binary_op op, const reel_tensor *x, const reel_tensor *y,
                              reel_tensor *out, reel_error *err);
reel_status reel__cuda_unary(reel_backend *b, reel__unary_op op, const reel_tensor *x, reel_tensor *out,
                             reel_error *err);
reel_status reel__cuda_copy_tensor(reel_backend *b, const reel_tensor *src, reel_tensor *dst, reel_error *err);
reel_status reel__cuda_softmax(reel_backend *b, const reel_tensor *x, reel_tensor *out, reel_error *err);
reel_status reel__cuda_layer_norm(reel_backend *b, const reel_tensor *x, const reel_tensor *w, const reel_tensor *bias,
                                  float eps, reel_tensor *out, reel_error *err);
reel_status reel__cuda_rms_norm(reel_backend *b, const reel_tensor *x, const reel_tensor *w, float eps,
                                reel_tensor *out, reel_error *err);
/* Converts a strided float tensor into a contiguous buffer `dst` of dtype dst_dt on the stream. */
reel_status reel__cuda_convert(reel_backend *b, const reel_tensor *src, void *dst, reel_dtype dst_dt, reel_error *err);
}

#endif
