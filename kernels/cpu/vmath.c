/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Vectorised SiLU, GELU-tanh and exp over f32 arrays (see vmath.h for the formulas).
 *
 * The vector exponential: t = x clamped to [-104, 89] (NaN passes through), n = round(t
 * log2 e), r = t - n ln2 with ln2 split in two f32 parts (|r| <= ln2 / 2, nearly exact
 * with FMA), e^r = 1 + r + r^2 q(r) with q a degree-4 near-minimax fit of (e^r - 1 - r) / r^2
 * on [-ln2/2, ln2/2] (relative error of the polynomial with its f32 coefficients 1e-8,
 * 0.1 ulp), and 2^n applied as two factors 2^(n>>1) and 2^(n - (n>>1)), each a normal
 * f32, so that the result overflows to inf above 88.72 and goes gradually to 0 below
 * -87.3 with a single rounding. Within 1 ulp of a correctly rounded e^x in the normal
 * range (tests/kernels/test_vmath.c checks it over a dense sweep).
 *
 * This file is built with -ffp-contract=off: GCC implements _mm*_mul_ps and _add_ps as
 * vector arithmetic, which it would otherwise fuse into FMAs, and then u of GELU would
 * round differently in the vector builds than in the portable one.
 */
#include "vmath.h"

#include <math.h>
#include <string.h>

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_C 0.044715f

/* ---- portable: libm's expf --------------------------------------------------------------- */

static void silu_portable(float *o, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float v = x[i];
    o[i] = v / (1.0f + expf(-v));
  }
}

static void gelu_portable(float *o, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float v = x[i];
    const float u = GELU_K * (v + GELU_C * v * v * v);
    o[i] = v / (1.0f + expf(-2.0f * u));
  }
}

static void exp_portable(float *o, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) o[i] = expf(x[i]);
}

const reel__act_kernels reel__act_portable = {"cpu-portable-act", silu_portable, gelu_portable, exp_portable};

#if defined(__x86_64__)
#include <immintrin.h>

#define EXP_LO -104.0f
#define EXP_HI 89.0f
#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693145751953125f        /* ln 2 rounded to 16 significant bits: n * LN2_HI is exact */
#define LN2_LO 1.42860682030941723212e-6f /* ln 2 - LN2_HI */
#define C2 0.5f
#define C3 0.16666577756404877f
#define C4 0.041666556149721146f
#define C5 0.008363173343241215f
#define C6 0.0013926175888627768f

/* ---- AVX-512 ------------------------------------------------------------------------------ */

__attribute__((target("avx512f"))) static inline __m512 exp16(__m512 x) {
  /* max/min return their second operand when either is NaN: x stays NaN. */
  __m512 t = _mm512_max_ps(_mm512_set1_ps(EXP_LO), x);
  t = _mm512_min_ps(_mm512_set1_ps(EXP_HI), t);
  const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(t, _mm512_set1_ps(LOG2E)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(LN2_HI), t);
  r = _mm512_fnmadd_ps(k, _mm512_set1_ps(LN2_LO), r);
  __m512 q = _mm512_fmadd_ps(_mm512_set1_ps(C6), r, _mm512_set1_ps(C5));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(C4));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(C3));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(C2));
  __m512 p = _mm512_fmadd_ps(q, _mm512_mul_ps(r, r), r);
  p = _mm512_add_ps(p, _mm512_set1_ps(1.0f));
  const __m512i n = _mm512_cvtps_epi32(k);
  const __m512i n1 = _mm512_srai_epi32(n, 1), n2 = _mm512_sub_epi32(n, n1);
  const __m512i bias = _mm512_set1_epi32(127);
  const __m512 s1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n1, bias), 23));
  const __m512 s2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n2, bias), 23));
  return _mm512_mul_ps(_mm512_mul_ps(p, s1), s2);
}

__attribute__((target("avx512f"))) static inline __m512 silu16(__m512 v) {
  const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), v));
  return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

__attribute__((target("avx512f"))) static inline __m512 gelu16(__m512 v) {
  /* The portable expression's order: ((C v) v) v, then v + that, then K * that. */
  __m512 c = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(GELU_C), v), v), v);
  const __m512 u = _mm512_mul_ps(_mm512_set1_ps(GELU_K), _mm512_add_ps(v, c));
  const __m512 e = exp16(_mm512_mul_ps(_mm512_set1_ps(-2.0f), u));
  return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

#define REEL__ACT512(NAME, F)                                                                    \
  __attribute__((target("avx512f"))) static void NAME(float *o, const float *x, int64_t n) {     \
    int64_t i = 0;                                                                               \
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(o + i, F(_mm512_loadu_ps(x + i)));             \
    if (i < n) {                                                                                 \
      const __mmask16 m = (__mmask16)((1u << (unsigned)(n - i)) - 1u);                           \
      _mm512_mask_storeu_ps(o + i, m, F(_mm512_maskz_loadu_ps(m, x + i)));                       \
    }                                                                                            \
  }

REEL__ACT512(silu_avx512, silu16)
REEL__ACT512(gelu_avx512, gelu16)
REEL__ACT512(exp_avx512, exp16)

const reel__act_kernels reel__act_avx512 = {"cpu-avx512-act", silu_avx512, gelu_avx512, exp_avx512};

/* ---- AVX2 + FMA --------------------------------------------------------------------------- */

__attribute__((target("avx2,fma"))) static inline __m256 exp8(__m256 x) {
  __m256 t = _mm256_max_ps(_mm256_set1_ps(EXP_LO), x);
  t = _mm256_min_ps(_mm256_set1_ps(EXP_HI), t);
  const __m256 k = _mm256_round_ps(_mm256_mul_ps(t, _mm256_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(LN2_HI), t);
  r = _mm256_fnmadd_ps(k, _mm256_set1_ps(LN2_LO), r);
  __m256 q = _mm256_fmadd_ps(_mm256_set1_ps(C6), r, _mm256_set1_ps(C5));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(C4));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(C3));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(C2));
  __m256 p = _mm256_fmadd_ps(q, _mm256_mul_ps(r, r), r);
  p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
  const __m256i n = _mm256_cvtps_epi32(k);
  const __m256i n1 = _mm256_srai_epi32(n, 1), n2 = _mm256_sub_epi32(n, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

__attribute__((target("avx2,fma"))) static inline __m256 silu8(__m256 v) {
  const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), v));
  return _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

__attribute__((target("avx2,fma"))) static inline __m256 gelu8(__m256 v) {
  __m256 c = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(GELU_C), v), v), v);
  const __m256 u = _mm256_mul_ps(_mm256_set1_ps(GELU_K), _mm256_add_ps(v, c));
  const __m256 e = exp8(_mm256_mul_ps(_mm256_set1_ps(-2.0f), u));
  return _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

/* The tail goes through a small zero-padded copy. */
#define REEL__ACT256(NAME, F)                                                                  \
  __attribute__((target("avx2,fma"))) static void NAME(float *o, const float *x, int64_t n) {  \
    int64_t i = 0;                                                                             \
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(o + i, F(_mm256_loadu_ps(x + i)));             \
    if (i < n) {                                                                               \
      float tmp[8] = {0};                                                                      \
      memcpy(tmp, x + i, (size_t)(n - i) * sizeof(float));                                     \
      _mm256_storeu_ps(tmp, F(_mm256_loadu_ps(tmp)));                                          \
      memcpy(o + i, tmp, (size_t)(n - i) * sizeof(float));                                     \
    }                                                                                          \
  }

REEL__ACT256(silu_avx2, silu8)
REEL__ACT256(gelu_avx2, gelu8)
REEL__ACT256(exp_avx2, exp8)

const reel__act_kernels reel__act_avx2 = {"cpu-avx2-act", silu_avx2, gelu_avx2, exp_avx2};
#endif
