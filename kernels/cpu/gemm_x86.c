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

/*
 * 16 x 16 transpose of r[0..15] (row i in r[i]) in registers: pairs interleaved
 * within 128-bit lanes, then 4 x 4 blocks of lanes exchanged between registers.
 */
__attribute__((target("avx512f"))) static inline void transpose16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 4; g++) {
    u[4 * g + 0] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
  /* u[4g + c], 128-bit lane L: rows 4g..4g+3 of column 4L + c. */
  for (int c = 0; c < 4; c++) {
    __m512 t0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44);
    __m512 t1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xEE);
    __m512 t2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x44);
    __m512 t3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xEE);
    r[0 + c] = _mm512_shuffle_f32x4(t0, t2, 0x88);
    r[4 + c] = _mm512_shuffle_f32x4(t0, t2, 0xDD);
    r[8 + c] = _mm512_shuffle_f32x4(t1, t3, 0x88);
    r[12 + c] = _mm512_shuffle_f32x4(t1, t3, 0xDD);
  }
}

/* Loads n (<= 16) consecutive elements of dtype dt (0 f32, 1 f16, 2 bf16: reel_dtype values) as f32, zero-filled. */
__attribute__((target("avx512f"))) static inline __m512 load16(const void *p, int dt, int n) {
  __mmask16 m = n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
  if (dt == 0) return _mm512_maskz_loadu_ps(m, p);
  __m256i h;
  /* Masked 16-bit loads need AVX512BW+VL; a small copy keeps this at AVX512F. */
  if (n >= 16) {
    h = _mm256_loadu_si256((const __m256i *)p);
  } else {
    uint16_t tmp[16] = {0};
    for (int i = 0; i < n; i++) tmp[i] = ((const uint16_t *)p)[i];
    h = _mm256_loadu_si256((const __m256i *)(const void *)tmp);
  }
  if (dt == 1) return _mm512_cvtph_ps(h);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

__attribute__((target("avx512f"))) static void pack_a_avx512(const float *a, int64_t lda, int64_t m0, int64_t mc,
                                                              int64_t k0, int64_t kc, float *dst) {
  const __mmask16 keep = (__mmask16)((1u << MR512) - 1);
  for (int64_t ip = 0; ip < mc; ip += MR512) {
    int64_t rows = mc - ip < MR512 ? mc - ip : MR512;
    for (int64_t k = 0; k < kc; k += 16) {
      int n = kc - k < 16 ? (int)(kc - k) : 16;
      __m512 r[16];
      for (int i = 0; i < 16; i++)
        r[i] = i < rows ? load16(a + (m0 + ip + i) * lda + k0 + k, 0, n) : _mm512_setzero_ps();
      transpose16(r);
      for (int j = 0; j < n; j++) _mm512_mask_storeu_ps(dst + (k + j) * MR512, keep, r[j]);
    }
    dst += kc * MR512;
  }
}

__attribute__((target("avx512f"))) static void pack_bt_avx512(const void *b, int dt, int64_t ldb, int64_t n0,
                                                               int64_t nc, int64_t k0, int64_t kc, float *dst) {
  const size_t esz = dt == 0 ? 4 : 2;
  for (int64_t jp = 0; jp < nc; jp += NR512) {
    int64_t cols = nc - jp < NR512 ? nc - jp : NR512;
    for (int64_t k = 0; k < kc; k += 16) {
      int n = kc - k < 16 ? (int)(kc - k) : 16;
      for (int g = 0; g < NR512 / 16; g++) {
        __m512 r[16];
        for (int i = 0; i < 16; i++) {
          int64_t j = g * 16 + i;
          r[i] = j < cols ? load16((const char *)b + ((n0 + jp + j) * ldb + k0 + k) * (int64_t)esz, dt, n)
                          : _mm512_setzero_ps();
        }
        transpose16(r);
        for (int kk = 0; kk < n; kk++) _mm512_store_ps(dst + (k + kk) * NR512 + g * 16, r[kk]);
      }
    }
    dst += kc * NR512;
  }
}

const reel__gemm_kernel reel__gemm_kernel_avx512 = {"cpu-avx512-12x32", MR512, NR512, 256, 192,
                                                    micro_avx512,       pack_a_avx512, pack_bt_avx512};

/* Sum of the 16 lanes in a fixed order (halves added pairwise). */
__attribute__((target("avx512f"))) static inline float hsum16(__m512 v) {
  __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}

/* Full 16-element loads of weights as f32. */
__attribute__((target("avx512f"))) static inline __m512 ldw_f32(const void *p, int64_t k) {
  return _mm512_loadu_ps((const float *)p + k);
}
__attribute__((target("avx512f"))) static inline __m512 ldw_f16(const void *p, int64_t k) {
  return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)((const uint16_t *)p + k)));
}
__attribute__((target("avx512f"))) static inline __m512 ldw_bf16(const void *p, int64_t k) {
  __m256i h = _mm256_loadu_si256((const __m256i *)(const void *)((const uint16_t *)p + k));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* One dtype's dot kernel: 4 weight rows at a time, each row block reused for every row of A from L1. */
#define REEL__DOT_FN(NAME, LDW, DT)                                                                              \
  __attribute__((target("avx512f"))) static void NAME(const float *a, int64_t lda, int64_t M, const void *w,      \
                                                      int64_t ldw, int64_t K, int64_t n0, int64_t n1,             \
                                                      const float *bias, float alpha, float *c, int64_t ldc) {    \
    const size_t esz = DT == 0 ? 4 : 2;                                                                         \
    const int64_t kfull = K & ~(int64_t)15;                                                                     \
    for (int64_t n = n0; n < n1; n += 4) {                                                                      \
      int nn = n1 - n < 4 ? (int)(n1 - n) : 4;                                                                  \
      const char *w0 = (const char *)w + (size_t)(n * ldw) * esz;                                               \
      const char *w1 = nn > 1 ? w0 + (size_t)ldw * esz : w0, *w2 = nn > 2 ? w0 + 2 * (size_t)ldw * esz : w0;    \
      const char *w3 = nn > 3 ? w0 + 3 * (size_t)ldw * esz : w0;                                                \
      for (int64_t m = 0; m < M; m++) {                                                                         \
        const float *am = a + m * lda;                                                                          \
        __m512 c0 = _mm512_setzero_ps(), c1 = _mm512_setzero_ps(), c2 = _mm512_setzero_ps(),                    \
               c3 = _mm512_setzero_ps();                                                                        \
        for (int64_t k = 0; k < kfull; k += 16) {                                                               \
          __m512 av = _mm512_loadu_ps(am + k);                                                                  \
          c0 = _mm512_fmadd_ps(av, LDW(w0, k), c0);                                                             \
          c1 = _mm512_fmadd_ps(av, LDW(w1, k), c1);                                                             \
          c2 = _mm512_fmadd_ps(av, LDW(w2, k), c2);                                                             \
          c3 = _mm512_fmadd_ps(av, LDW(w3, k), c3);                                                             \
        }                                                                                                       \
        if (kfull < K) {                                                                                        \
          int cnt = (int)(K - kfull);                                                                           \
          __m512 av = load16(am + kfull, 0, cnt);                                                               \
          c0 = _mm512_fmadd_ps(av, load16(w0 + (size_t)kfull * esz, DT, cnt), c0);                              \
          c1 = _mm512_fmadd_ps(av, load16(w1 + (size_t)kfull * esz, DT, cnt), c1);                              \
          c2 = _mm512_fmadd_ps(av, load16(w2 + (size_t)kfull * esz, DT, cnt), c2);                              \
          c3 = _mm512_fmadd_ps(av, load16(w3 + (size_t)kfull * esz, DT, cnt), c3);                              \
        }                                                                                                       \
        float v[4] = {hsum16(c0), hsum16(c1), hsum16(c2), hsum16(c3)};                                          \
        for (int j = 0; j < nn; j++) {                                                                          \
          float r = v[j] * alpha;                                                                               \
          if (bias) r = r + bias[n + j];                                                                        \
          c[m * ldc + n + j] = r;                                                                               \
        }                                                                                                       \
      }                                                                                                         \
    }                                                                                                           \
  }

REEL__DOT_FN(dot_f32, ldw_f32, 0)
REEL__DOT_FN(dot_f16, ldw_f16, 1)
REEL__DOT_FN(dot_bf16, ldw_bf16, 2)

void reel__dot_avx512(const float *a, int64_t lda, int64_t M, const void *w, int dt, int64_t ldw, int64_t K,
                      int64_t n0, int64_t n1, const float *bias, float alpha, float *c, int64_t ldc) {
  if (dt == 0)
    dot_f32(a, lda, M, w, ldw, K, n0, n1, bias, alpha, c, ldc);
  else if (dt == 1)
    dot_f16(a, lda, M, w, ldw, K, n0, n1, bias, alpha, c, ldc);
  else
    dot_bf16(a, lda, M, w, ldw, K, n0, n1, bias, alpha, c, ldc);
}

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

const reel__gemm_kernel reel__gemm_kernel_avx2 = {"cpu-avx2-6x16", MR256, NR256, 256, 120, micro_avx2, NULL, NULL};
#endif
