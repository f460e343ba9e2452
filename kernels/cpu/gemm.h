/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GEMM micro-kernels of the CPU backend. The driver (cpu_matmul.c) packs blocks
 * of A (MR-row panels, [k][MR]) and B (NR-column panels, [k][NR], converted to f32
 * from f16/bf16 while packing) into scratch and calls a kernel's micro function
 * on MR x NR tiles of C. Each kernel is compiled for its instruction set with
 * function-level target attributes, so the library builds for any x86-64 (and
 * non-x86 builds only get the portable kernel); the driver picks one at run time
 * from the CPU's features.
 *
 * A micro function computes acc = sum over k < kc of pa[k][i] * pb[k][j], then
 *   v = acc                (flags & REEL__MK_ACC: v = acc + C[i][j])
 *   v = v * alpha + bias[j] (only with REEL__MK_LAST; bias may be NULL; a separate multiply and add)
 * and stores v into C[i][j] = c[i * ldc + j]. The K order is fixed, so a C
 * element's value does not depend on how the work was split among threads.
 */
#ifndef REEL_CPU_GEMM_H
#define REEL_CPU_GEMM_H

#include <stdint.h>

enum { REEL__MK_ACC = 1, REEL__MK_LAST = 2 };

typedef void (*reel__micro_fn)(int64_t kc, const float *pa, const float *pb, float *c, int64_t ldc, int flags,
                               float alpha, const float *bias);

/* Packs rows [m0, m0+mc) x cols [k0, k0+kc) of A (row stride lda) into MR-row panels [k][MR], zero-padded. */
typedef void (*reel__pack_a_fn)(const float *a, int64_t lda, int64_t m0, int64_t mc, int64_t k0, int64_t kc,
                                float *dst);
/*
 * Packs cols [n0, n0+nc) x rows [k0, k0+kc) of a B given as [N, K] rows (element (k, n) at b[n * ldb + k], dtype
 * dt: f32/f16/bf16) into NR-column f32 panels [k][NR], zero-padded.
 */
typedef void (*reel__pack_bt_fn)(const void *b, int dt, int64_t ldb, int64_t n0, int64_t nc, int64_t k0, int64_t kc,
                                 float *dst);

typedef struct reel__gemm_kernel {
  const char *name; /* for reel_backend_last_path() */
  int mr, nr;       /* tile */
  int kc, mc;       /* K block (B panel kc x nr should sit in L1), M block (A block mc x kc in L2) */
  reel__micro_fn micro;
  reel__pack_a_fn pack_a;   /* NULL: the driver's generic packing */
  reel__pack_bt_fn pack_bt; /* NULL: the driver's generic packing */
} reel__gemm_kernel;

#define REEL__MR_MAX 16
#define REEL__NR_MAX 64

extern const reel__gemm_kernel reel__gemm_kernel_portable;

/*
 * Few-rows product, one dot product per output: c[m, n] = alpha * sum_k a[m, k] w[n, k] (+ bias[n]) for all
 * m < M and n0 <= n < n1; w rows contiguous along k, dtype dt (reel_dtype F32/F16/BF16). Each output is
 * summed in a fixed order (16 lanes, then the lanes pairwise).
 */
typedef void (*reel__dot_fn)(const float *a, int64_t lda, int64_t M, const void *w, int dt, int64_t ldw, int64_t K,
                             int64_t n0, int64_t n1, const float *bias, float alpha, float *c, int64_t ldc);
#if defined(__x86_64__)
#define REEL__GEMM_X86 1
extern const reel__gemm_kernel reel__gemm_kernel_avx512;
extern const reel__gemm_kernel reel__gemm_kernel_avx2;
void reel__dot_avx512(const float *a, int64_t lda, int64_t M, const void *w, int dt, int64_t ldw, int64_t K,
                      int64_t n0, int64_t n1, const float *bias, float alpha, float *c, int64_t ldc);
#endif

#endif
