/* SPDX-License-Identifier: Apache-2.0 */
/*
 * x86 GEMM micro-kernels: AVX-512 (12 x 32 tile: 24 zmm accumulators, two B
 * vectors and one broadcast per k) and AVX2+FMA (6 x 16: 12 ymm accumulators).
 * Compiled with function-level target attributes so that this file builds with
 * the baseline x86-64 flags; the driver calls a kernel only after checking the
 * CPU has its features. The epilogue keeps the multiply and the add separate
 * (no FMA) so that edge tiles, done in scalar C, round identically.
 */
#include "gemm.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define MR512 12
#define NR512 32

__attribute__((target("avx512f"))) static void micro_avx512(int64_t kc, const float *pa, const float *pb, float *c,
                                                             int64_t ldc, int flags, float alpha, const float *bias) {
  __m512 c0[MR512], c1[MR512];
#pragma GCC unroll 16
  for (int i = 0; i < MR512; i++) {
    c0[i] = _mm512_setzero_ps();
    c1[i] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < kc; k++) {
    const __m512 b0 = _mm512_load_ps(pb);
    const __m512 b1 = _mm512_load_ps(pb + 16);
#pragma GCC unroll 16
    for (int i = 0; i < MR512; i++) {
      const __m512 a = _mm512_set1_ps(pa[i]);
      c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
    }
    pa += MR512;
    pb += NR512;
  }
  const __m512 va = _mm512_set1_ps(alpha);
  const __m512 bias0 = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
  const __m512 bias1 = bias ? _mm512_loadu_ps(bias + 16) : _mm512_setzero_ps();
#pragma GCC unroll 16
  for (int i = 0; i < MR512; i++) {
    float *ci = c + i * ldc;
    __m512 v0 = c0[i], v1 = c1[i];
    if (flags & REEL__MK_ACC) {
      v0 = _mm512_add_ps(v0, _mm512_loadu_ps(ci));
      v1 = _mm512_add_ps(v1, _mm512_loadu_ps(ci + 16));
    }
    if (flags & REEL__MK_LAST) {
      v0 = _mm512_mul_ps(v0, va);
      v1 = _mm512_mul_ps(v1, va);
      if (bias) {
        v0 = _mm512_add_ps(v0, bias0);
        v1 = _mm512_add_ps(v1, bias1);
      }
    }
    _mm512_storeu_ps(ci, v0);
    _mm512_storeu_ps(ci + 16, v1);
  }
}

const reel__gemm_kernel reel__gemm_kernel_avx512 = {"cpu-avx512-12x32", MR512, NR512, 256, 192, micro_avx512};

#define MR256 6
#define NR256 16

__attribute__((target("avx2,fma"))) static void micro_avx2(int64_t kc, const float *pa, const float *pb, float *c,
                                                            int64_t ldc, int flags, float alpha, const float *bias) {
  __m256 c0[MR256], c1[MR256];
#pragma GCC unroll 8
  for (int i = 0; i < MR256; i++) {
    c0[i] = _mm256_setzero_ps();
    c1[i] = _mm256_setzero_ps();
  }
  for (int64_t k = 0; k < kc; k++) {
    const __m256 b0 = _mm256_load_ps(pb);
    const __m256 b1 = _mm256_load_ps(pb + 8);
#pragma GCC unroll 8
    for (int i = 0; i < MR256; i++) {
      const __m256 a = _mm256_broadcast_ss(pa + i);
      c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);
    }
    pa += MR256;
    pb += NR256;
  }
  const __m256 va = _mm256_set1_ps(alpha);
  const __m256 bias0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
  const __m256 bias1 = bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
#pragma GCC unroll 8
  for (int i = 0; i < MR256; i++) {
    float *ci = c + i * ldc;
    __m256 v0 = c0[i], v1 = c1[i];
    if (flags & REEL__MK_ACC) {
      v0 = _mm256_add_ps(v0, _mm256_loadu_ps(ci));
      v1 = _mm256_add_ps(v1, _mm256_loadu_ps(ci + 8));
    }
    if (flags & REEL__MK_LAST) {
      v0 = _mm256_mul_ps(v0, va);
      v1 = _mm256_mul_ps(v1, va);
      if (bias) {
        v0 = _mm256_add_ps(v0, bias0);
        v1 = _mm256_add_ps(v1, bias1);
      }
    }
    _mm256_storeu_ps(ci, v0);
    _mm256_storeu_ps(ci + 8, v1);
  }
}

const reel__gemm_kernel reel__gemm_kernel_avx2 = {"cpu-avx2-6x16", MR256, NR256, 256, 120, micro_avx2};
#endif
