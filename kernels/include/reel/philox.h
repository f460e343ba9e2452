/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Counter-based Gaussian noise: Philox4x32-10 + Box–Muller, identical on every
 * backend and for every batch composition.
 *
 * Element i (row-major) of one sample's noise tensor comes from Philox block
 * j = i / 4, lane i % 4, with key = (seed & 0xffffffff, seed >> 32) and
 * counter = (j & 0xffffffff, j >> 32, 0, 0). Each block's four words become
 * uniforms u_k = ((x_k >> 8) + 0.5) / 2^24 in (0, 1) and two Box–Muller pairs:
 * n0 = r cos(2πu1), n1 = r sin(2πu1) with r = sqrt(-2 ln u0); n2, n3 likewise
 * from u2, u3; computed in double, rounded to float.
 *
 * The logarithm and sine/cosine are evaluated here with fixed polynomials on
 * exactly representable reductions, using only +, -, *, / and sqrt (all
 * correctly rounded in IEEE 754), so the CPU and the GPU produce the same bits.
 * Files that include this header must be compiled without floating-point
 * contraction (-ffp-contract=off; nvcc --fmad=false), which the build sets.
 * This header is plain C and CUDA C: functions are REEL_HD static inline.
 */
#ifndef REEL_PHILOX_H
#define REEL_PHILOX_H

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define REEL_HD __host__ __device__
#else
#define REEL_HD
#endif

/* One Philox4x32-10 block: ctr (4 words) under key (2 words) -> out (4 words). */
REEL_HD static inline void reel_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int r = 0; r < 10; r++) {
    uint64_t p0 = (uint64_t)0xD2511F53u * c0;
    uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

/* ln(u) for u in (0, 1): u = m * 2^e with m in [sqrt(1/2), sqrt(2)), ln m by the atanh series. */
REEL_HD static inline double reel__philox_log(double u) {
  /* Scaling by two is exact, so the reduction introduces no error. */
  int e = 0;
  double m = u;
  while (m < 0.7071067811865476) {
    m *= 2.0;
    e -= 1;
  }
  double s = (m - 1.0) / (m + 1.0); /* |s| <= 0.1716 */
  double s2 = s * s;
  /* 2 * (s + s^3/3 + ... + s^23/23): truncation error < 1e-18 relative. */
  double p = 1.0 / 23.0;
  p = p * s2 + 1.0 / 21.0;
  p = p * s2 + 1.0 / 19.0;
  p = p * s2 + 1.0 / 17.0;
  p = p * s2 + 1.0 / 15.0;
  p = p * s2 + 1.0 / 13.0;
  p = p * s2 + 1.0 / 11.0;
  p = p * s2 + 1.0 / 9.0;
  p = p * s2 + 1.0 / 7.0;
  p = p * s2 + 1.0 / 5.0;
  p = p * s2 + 1.0 / 3.0;
  p = p * s2 + 1.0;
  double lnm = 2.0 * s * p;
  return lnm + (double)e * 0.6931471805599453;
}

/* sin and cos of x in [0, pi/4] by Taylor polynomials (error < 1e-16). */
REEL_HD static inline void reel__philox_sincos_oct(double x, double *s, double *c) {
  double x2 = x * x;
  double ps = -1.0 / 1307674368000.0; /* -1/15! */
  ps = ps * x2 + 1.0 / 6227020800.0;  /* 1/13! */
  ps = ps * x2 - 1.0 / 39916800.0;    /* -1/11! */
  ps = ps * x2 + 1.0 / 362880.0;      /* 1/9! */
  ps = ps * x2 - 1.0 / 5040.0;        /* -1/7! */
  ps = ps * x2 + 1.0 / 120.0;         /* 1/5! */
  ps = ps * x2 - 1.0 / 6.0;           /* -1/3! */
  *s = x + x * x2 * ps;
  double pc = 1.0 / 20922789888000.0; /* 1/16! */
  pc = pc * x2 - 1.0 / 87178291200.0; /* -1/14! */
  pc = pc * x2 + 1.0 / 479001600.0;   /* 1/12! */
  pc = pc * x2 - 1.0 / 3628800.0;     /* -1/10! */
  pc = pc * x2 + 1.0 / 40320.0;       /* 1/8! */
  pc = pc * x2 - 1.0 / 720.0;         /* -1/6! */
  pc = pc * x2 + 1.0 / 24.0;          /* 1/4! */
  pc = pc * x2 - 0.5;
  *c = 1.0 + x2 * pc;
}

/* sin(2*pi*u) and cos(2*pi*u) for u in (0, 1), reduced by octants (8u is exact for our u). */
REEL_HD static inline void reel__philox_sincos2pi(double u, double *s, double *c) {
  double x = u * 8.0;
  int oct = (int)x;   /* 0..7 */
  double f = x - oct; /* exact, in [0, 1) */
  const double quarter_pi = 0.7853981633974483;
  double a, b; /* sine and cosine of the reduced angle */
  /* Odd octants are evaluated at pi/4 - r so that the argument stays in [0, pi/4]. */
  reel__philox_sincos_oct(((oct & 1) ? (1.0 - f) : f) * quarter_pi, &a, &b);
  double sn, cs;
  switch (oct) {
  case 0: sn = a; cs = b; break;
  case 1: sn = b; cs = a; break;
  case 2: sn = b; cs = -a; break;
  case 3: sn = a; cs = -b; break;
  case 4: sn = -a; cs = -b; break;
  case 5: sn = -b; cs = -a; break;
  case 6: sn = -b; cs = a; break;
  default: sn = -a; cs = b; break;
  }
  *s = sn;
  *c = cs;
}

/* The four normals of block j for `seed`. */
REEL_HD static inline void reel_philox_normal4(uint64_t seed, uint64_t j, float out[4]) {
  uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  uint32_t ctr[4] = {(uint32_t)j, (uint32_t)(j >> 32), 0u, 0u};
  uint32_t x[4];
  reel_philox4x32_10(ctr, key, x);
  const double inv24 = 1.0 / 16777216.0;
  for (int p = 0; p < 2; p++) {
    double u0 = ((double)(x[2 * p] >> 8) + 0.5) * inv24;
    double u1 = ((double)(x[2 * p + 1] >> 8) + 0.5) * inv24;
    double r = sqrt(-2.0 * reel__philox_log(u0));
    double sn, cs;
    reel__philox_sincos2pi(u1, &sn, &cs);
    out[2 * p] = (float)(r * cs);
    out[2 * p + 1] = (float)(r * sn);
  }
}

#endif
