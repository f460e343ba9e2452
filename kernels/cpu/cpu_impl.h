/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private state and shared helpers of the CPU backend: the thread pool, the op
 * workspace, the GEMM path selection, and element load/store for f32/f16/bf16.
 */
#ifndef REEL_CPU_IMPL_H
#define REEL_CPU_IMPL_H

#include <stdint.h>
#include <string.h>

#include "../src/backend_impl.h"
#include "threadpool.h"

/* GEMM implementations, in the order "auto" prefers them. */
typedef enum reel__gemm_path {
  REEL__GEMM_AUTO = 0,
  REEL__GEMM_AVX512,
  REEL__GEMM_AVX2,
  REEL__GEMM_OPENBLAS,
  REEL__GEMM_PORTABLE,
} reel__gemm_path;

typedef struct reel__cpu {
  reel__pool *pool;
  void *ws;      /* op workspace, 64-byte aligned, grown on demand and kept */
  size_t ws_cap;
  reel__gemm_path gemm_path; /* as set by the "matmul" option */
  int have_avx512, have_avx2;
  int attn_path; /* reel__attn_path, as set by the "attention" option */
  int act_path;  /* reel__act_path, as set by the "activations" option */
} reel__cpu;

/* SiLU / GELU-tanh implementations ("activations" option; vmath.h). */
typedef enum reel__act_path { REEL__ACT_AUTO = 0, REEL__ACT_AVX512, REEL__ACT_AVX2, REEL__ACT_PORTABLE } reel__act_path;
struct reel__act_kernels;
/* The activation kernels the backend's option and the CPU select. */
const struct reel__act_kernels *reel__cpu_act_kernels(reel_backend *b);

/* Attention implementations ("attention" option). */
typedef enum reel__attn_path { REEL__ATTN_AUTO = 0, REEL__ATTN_AVX512, REEL__ATTN_PORTABLE } reel__attn_path;

static inline reel__cpu *reel__cpu_of(reel_backend *b) { return (reel__cpu *)b->impl; }

/*
 * Returns at least `bytes` of scratch (contents undefined) valid until the next
 * call on this backend; an op asks once and carves it up. NULL with err set on
 * allocation failure.
 */
void *reel__cpu_scratch(reel_backend *b, size_t bytes, reel_error *err);

/* Element access for the float dtypes. */
static inline float reel__bf16_f32(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* Loads n elements starting at p (element stride `stride`) as f32 into dst. */
void reel__load_row(reel_dtype dt, const void *p, int64_t stride, int64_t n, float *dst);
/* Stores n f32 values as dtype dt at p with element stride `stride` (rounding to nearest even). */
void reel__store_row(reel_dtype dt, void *p, int64_t stride, int64_t n, const float *src);

/* Op implementations (cpu_elementwise.c, cpu_norm.c, cpu_matmul.c). */
reel_status reel__cpu_binary(reel_backend *b, reel__binary_op op, const reel_tensor *x, const reel_tensor *y,
                             reel_tensor *out, reel_error *err);
reel_status reel__cpu_unary(reel_backend *b, reel__unary_op op, const reel_tensor *x, reel_tensor *out,
                            reel_error *err);
reel_status reel__cpu_copy_tensor(reel_backend *b, const reel_tensor *src, reel_tensor *dst, reel_error *err);
reel_status reel__cpu_softmax(reel_backend *b, const reel_tensor *x, reel_tensor *out, reel_error *err);
reel_status reel__cpu_layer_norm(reel_backend *b, const reel_tensor *x, const reel_tensor *w, const reel_tensor *bias,
                                 float eps, reel_tensor *out, reel_error *err);
reel_status reel__cpu_rms_norm(reel_backend *b, const reel_tensor *x, const reel_tensor *w, float eps, reel_tensor *out,
                               reel_error *err);
reel_status reel__cpu_matmul(reel_backend *b, const reel_tensor *x, const reel_tensor *w, const reel_tensor *bias,
                             reel_tensor *out, reel_error *err);
reel_status reel__cpu_matmul_batched(reel_backend *b, const reel_tensor *a, const reel_tensor *bm, int trans_b,
                                     float alpha, reel_tensor *out, reel_error *err);

/* Diffusion transformer ops (cpu_rope.c, cpu_attention.c, cpu_modulate.c, cpu_lincomb.c). */
reel_status reel__cpu_rope(reel_backend *b, const reel_tensor *x, const reel_tensor *cos_t, const reel_tensor *sin_t,
                           reel_tensor *out, reel_error *err);
reel_status reel__cpu_attention(reel_backend *b, const reel_tensor *q, const reel_tensor *k, const reel_tensor *v,
                                float scale, reel_tensor *out, reel_error *err);
reel_status reel__cpu_modulate(reel_backend *b, const reel_tensor *x, const reel_tensor *shift,
                               const reel_tensor *scale, reel_tensor *out, reel_error *err);
reel_status reel__cpu_gated_add(reel_backend *b, const reel_tensor *x, const reel_tensor *y, const reel_tensor *gate,
                                reel_tensor *out, reel_error *err);
reel_status reel__cpu_lincomb(reel_backend *b, int n, const double *coef, const reel_tensor *const *x,
                              reel_tensor *out, reel_error *err);

/*
 * The matmul driver for other CPU ops: C[M,N] = A[M,K] · B[N,K]ᵀ (+ bias[N]), A and C f32
 * with row strides lda/ldc, B f32/f16/bf16 with row stride ldb. The caller provides
 * reel__cpu_gemm_nt_bytes() bytes of 64-byte aligned scratch (it must not come from a
 * later reel__cpu_scratch call than the one that holds the caller's own buffers).
 */
size_t reel__cpu_gemm_nt_bytes(reel_backend *be, int64_t M, int64_t N, int64_t K, reel_dtype bt);
void reel__cpu_gemm_nt(reel_backend *be, int64_t M, int64_t N, int64_t K, const float *a, int64_t lda, const void *b,
                       reel_dtype bt, int64_t ldb, float *c, int64_t ldc, const float *bias, void *ws);
/* Video VAE ops (cpu_conv3d.c, cpu_clamp.c). */
reel_status reel__cpu_conv3d(reel_backend *b, const reel_tensor *x, const reel_tensor *w, const reel_tensor *bias,
                             const reel_conv3d_params *p, reel_tensor *out, reel_error *err);
reel_status reel__cpu_clamp(reel_backend *b, const reel_tensor *x, float lo, float hi, reel_tensor *out,
                            reel_error *err);
/* Noise and colour conversion (cpu_noise.c, cpu_colour.c). */
reel_status reel__cpu_noise(reel_backend *b, uint64_t seed, uint64_t offset, reel_tensor *out, reel_error *err);
reel_status reel__cpu_rgb_to_yuv420(reel_backend *b, const reel_tensor *rgb, const reel__yuv_coefs *k, reel_tensor *y,
                                    reel_tensor *u, reel_tensor *v, reel_error *err);

#endif
