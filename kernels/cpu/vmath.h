/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Vectorised activations of the CPU backend (SiLU and GELU-tanh over f32 arrays), in
 * three builds chosen at run time: AVX-512, AVX2+FMA and portable C. Not a public header.
 *
 * Both activations are written as x / (1 + e^(-z)): SiLU with z = x, GELU-tanh with
 * z = 2u, u = sqrt(2/pi) (x + 0.044715 x^3), because 0.5 (1 + tanh(u)) = 1 / (1 + e^(-2u)).
 * That form has no cancellation where tanh(u) is near -1 (large negative x), so it is
 * accurate to a few ulp relative everywhere, unlike 0.5 x (1 + tanh(u)) in f32. u is
 * computed with the same f32 operations, in the same order and without contraction, in
 * every build; the builds differ only in e^t: the portable one calls libm's expf, the
 * vector ones a polynomial (vmath.c) within 1 ulp of it. So every build gives the same
 * value up to a few ulp, NaN in gives NaN out, and +-inf give what the formula gives
 * (+inf for +inf; NaN for -inf, as -inf / inf, like torch's x * sigmoid(x)).
 */
#ifndef REEL_CPU_VMATH_H
#define REEL_CPU_VMATH_H

#include <stdint.h>

/* out[i] = f(x[i]) for i < n; out may equal x. */
typedef void (*reel__act_fn)(float *out, const float *x, int64_t n);

typedef struct reel__act_kernels {
  const char *name; /* for reel_backend_last_path(): "cpu-avx512-act", ... */
  reel__act_fn silu, gelu_tanh;
  /* out[i] = e^x[i] (the vector exponential itself, for other ops and for tests) */
  reel__act_fn exp;
} reel__act_kernels;

extern const reel__act_kernels reel__act_portable;
#if defined(__x86_64__)
extern const reel__act_kernels reel__act_avx2;
extern const reel__act_kernels reel__act_avx512;
#endif

#endif
