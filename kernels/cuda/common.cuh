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
#include <string.h>

#include "../src/backend_impl.h"
#include "reel/log.h"

/* Kernel choice set by reel_backend_set_option("attention"). */
typedef enum reel__cuda_attn_path {
  REEL__CUDA_ATTN_AUTO = 0,
  REEL__CUDA_ATTN_MMA,
  REEL__CUDA_ATTN_SIMT
} reel__cuda_attn_path;

typedef struct reel__cuda {
  int device;
  int sm_count; /* multiprocessors, for persistent grids */
  cudaStream_t stream;
  cublasLtHandle_t lt;
  void *ws; /* device scratch, grown on demand; freed stream-ordered */
  size_t ws_cap;
  reel__cuda_attn_path attn_path;
} reel__cuda;

static inline reel__cuda *reel__cuda_of(reel_backend *b) { return (reel__cuda *)b->impl; }

/* Makes the backend's device current for this host thread (cheap when it already is). */
static inline cudaError_t reel__cuda_use(reel_backend *b) { return cudaSetDevice(reel__cuda_of(b)->device); }

/* Logs and records a failed CUDA/cuBLAS call; returns REEL_EDEVICE. */
reel_status reel__cuda_fail(reel_error *err, const char *stmt, const char *file, int line, const char *what);

#define REEL_CUDA_CHECK(stmt)                                                                   \
  do {                                                                                          \
    cudaError_t reel_cuda_e_ = (stmt);                                                          \
    if (reel_cuda_e_ != cudaSuccess)                                                            \
      return reel__cuda_fail(err, #stmt, __FILE__, __LINE__, cudaGetErrorString(reel_cuda_e_)); \
  } while (0)

#define REEL_CUBLAS_CHECK(stmt)                                                                        \
  do {                                                                                                 \
    cublasStatus_t reel_cublas_s_ = (stmt);                                                            \
    if (reel_cublas_s_ != CUBLAS_STATUS_SUCCESS)                                                       \
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
  if (it.ndim == 1) {
    /* One merged dim (contiguous or uniformly strided operands): no division (64-bit ones are slow here). */
    off[0] = i * it.stride[0][0];
    off[1] = i * it.stride[1][0];
    off[2] = i * it.stride[2][0];
    return;
  }
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

/*
 * Up to 4 operands split into rows: the outer dims of a reel__iter and its last
 * (inner) dim, passed by value to row kernels, which compute a row's offsets
 * once and then walk the inner dim with plain strides.
 */
typedef struct reel__cuda_rows {
  int nouter;
  int64_t shape[REEL_MAX_DIMS];     /* outer dims */
  int64_t stride[4][REEL_MAX_DIMS]; /* outer strides per operand */
  int64_t inner;
  int64_t istride[4];
  int64_t rows;
} reel__cuda_rows;

static inline void reel__cuda_rows_from(reel__cuda_rows *r, const reel__iter *it) {
  memset(r, 0, sizeof *r);
  r->nouter = it->ndim - 1;
  r->rows = 1;
  for (int d = 0; d < it->ndim - 1; d++) {
    r->shape[d] = it->shape[d];
    r->rows *= it->shape[d];
    for (int k = 0; k < it->nops; k++) r->stride[k][d] = it->stride[k][d];
  }
  r->inner = it->shape[it->ndim - 1];
  for (int k = 0; k < it->nops; k++) r->istride[k] = it->stride[k][it->ndim - 1];
}

/* Element offsets of the first element of `row` for 4 operands. */
__device__ __forceinline__ void reel__row_offsets(const reel__cuda_rows &r, int64_t row, int64_t off[4]) {
  off[0] = off[1] = off[2] = off[3] = 0;
  for (int d = r.nouter - 1; d >= 0; d--) {
    int64_t c = row % r.shape[d];
    row /= r.shape[d];
#pragma unroll
    for (int k = 0; k < 4; k++) off[k] += c * r.stride[k][d];
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
/* Diffusion transformer ops (rope.cu, modulate.cu, lincomb.cu, attention.cu). */
reel_status reel__cuda_rope(reel_backend *b, const reel_tensor *x, const reel_tensor *cos_t, const reel_tensor *sin_t,
                            reel_tensor *out, reel_error *err);
reel_status reel__cuda_attention(reel_backend *b, const reel_tensor *q, const reel_tensor *k, const reel_tensor *v,
                                 float scale, reel_tensor *out, reel_error *err);
reel_status reel__cuda_modulate(reel_backend *b, const reel_tensor *x, const reel_tensor *shift,
                                const reel_tensor *scale, reel_tensor *out, reel_error *err);
reel_status reel__cuda_gated_add(reel_backend *b, const reel_tensor *x, const reel_tensor *y, const reel_tensor *gate,
                                 reel_tensor *out, reel_error *err);
reel_status reel__cuda_lincomb(reel_backend *b, int n, const double *coef, const reel_tensor *const *x,
                               reel_tensor *out, reel_error *err);
/* Video VAE ops (conv3d.cu, elementwise.cu). */
reel_status reel__cuda_conv3d(reel_backend *b, const reel_tensor *x, const reel_tensor *w, const reel_tensor *bias,
                              const reel_conv3d_params *p, reel_tensor *out, reel_error *err);
reel_status reel__cuda_clamp(reel_backend *b, const reel_tensor *x, float lo, float hi, reel_tensor *out,
                             reel_error *err);
/* Noise and colour conversion (noise.cu, colour.cu). */
reel_status reel__cuda_noise(reel_backend *b, uint64_t seed, uint64_t offset, reel_tensor *out, reel_error *err);
reel_status reel__cuda_rgb_to_yuv420(reel_backend *b, const reel_tensor *rgb, const reel__yuv_coefs *k, reel_tensor *y,
                                     reel_tensor *u, reel_tensor *v, reel_error *err);

/*
 * C[M, N] (f32 or the operands' 16-bit dtype, row stride ldc) = A[M, K] · W[N, K]ᵀ
 * (+ bias[N], in C's dtype, fused into the cuBLASLt epilogue), A and W of one dtype
 * with row strides lda / ldw. `ws` is LT_WORKSPACE bytes of device scratch the
 * caller reserved (reel__cuda_gemm_ws_bytes()). Queued on the stream.
 */
size_t reel__cuda_gemm_ws_bytes(void);
reel_status reel__cuda_gemm_nt(reel_backend *b, int64_t M, int64_t N, int64_t K, const void *a, int64_t lda,
                               const void *w, int64_t ldw, reel_dtype in_dt, void *c, int64_t ldc, reel_dtype out_dt,
                               const void *bias, void *ws, reel_error *err);
/* One-time kernel attributes (dynamic shared memory limits), from backend creation. */
reel_status reel__cuda_attention_init(reel_backend *b, reel_error *err);
}

#endif
