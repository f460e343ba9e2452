/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Portable C GEMM micro-kernel (4 x 8 tile: 8 SSE registers of accumulators, no spills): plain loops over a small
 * accumulator array that any compiler vectorises for the baseline ISA. The
 * fallback on CPUs without AVX2 and on non-x86 machines.
 */
#include <stddef.h>

#include "gemm.h"

#define MR 4
#define NR 8

static void micro_portable(int64_t kc, const float *pa, const float *pb, float *c, int64_t ldc, int flags, float alpha,
                           const float *bias) {
  float acc[MR][NR];
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) acc[i][j] = 0.0f;
  for (int64_t k = 0; k < kc; k++) {
    const float *a = pa + k * MR, *b = pb + k * NR;
    for (int i = 0; i < MR; i++) {
      const float ai = a[i];
      for (int j = 0; j < NR; j++) acc[i][j] += ai * b[j];
    }
  }
  for (int i = 0; i < MR; i++) {
    float *ci = c + i * ldc;
    for (int j = 0; j < NR; j++) {
      float v = acc[i][j];
      if (flags & REEL__MK_ACC) v += ci[j];
      if (flags & REEL__MK_LAST) {
        v = v * alpha;
        if (bias) v = v + bias[j];
      }
      ci[j] = v;
    }
  }
}

const reel__gemm_kernel reel__gemm_kernel_portable = {"cpu-portable-4x8", MR, NR, 256, 128, micro_portable, NULL, NULL};
