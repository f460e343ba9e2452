/* SPDX-License-Identifier: Apache-2.0 */
/*
 * RGB → YUV 4:2:0, BT.709 limited range, in 16.16 fixed point. Written out
 * rather than left to swscale because swscale's exact path ("accurate
 * rounding", needed to honour the BT.709 matrix) ran at ~4.7 ms per 720p frame
 * here, a fifth of the whole encode; this loop does two rows at a time and
 * computes chroma once per 2x2 block from the block's mean RGB (the matrix is
 * linear, so that equals averaging the four pixels' chroma). The 10-bit outputs
 * use the same matrix scaled by 4 (limited-range 10-bit codes are the 8-bit
 * codes times 4).
 */
#include "colour.h"

/* BT.709: Kr = 0.2126, Kb = 0.0722; limited range: Y in 16..235, Cb/Cr in 16..240. */
#define KR     0.2126
#define KB     0.0722
#define KG     (1.0 - KR - KB)
#define FIX(x) ((int32_t)((x)*65536.0 + ((x) < 0 ? -0.5 : 0.5)))
#define YS     (219.0 / 255.0)
#define CS     (224.0 / 255.0)

static const int32_t YR = FIX(YS * KR), YG = FIX(YS * KG), YB = FIX(YS * KB);
static const int32_t UR = FIX(-CS * KR / (2 * (1 - KB))), UG = FIX(-CS * KG / (2 * (1 - KB))), UB = FIX(CS / 2);
static const int32_t VR = FIX(CS / 2), VG = FIX(-CS * KG / (2 * (1 - KR))), VB = FIX(-CS * KB / (2 * (1 - KR)));

/* 16 and 128 in 16.16, plus 0.5 for rounding. */
#define Y_OFF ((16 << 16) + (1 << 15))
#define C_OFF ((128 << 16) + (1 << 15))

static inline uint8_t luma(const uint8_t *p) { return (uint8_t)((YR * p[0] + YG * p[1] + YB * p[2] + Y_OFF) >> 16); }

void reel__rgb24_to_yuv420p_bt709(const uint8_t *rgb, size_t rgb_stride, int width, int height, uint8_t *y,
                                  size_t y_stride, uint8_t *u, size_t u_stride, uint8_t *v, size_t v_stride) {
  for (int j = 0; j < height; j += 2) {
    const uint8_t *r0 = rgb + (size_t)j * rgb_stride, *r1 = r0 + rgb_stride;
    uint8_t *y0 = y + (size_t)j * y_stride, *y1 = y0 + y_stride;
    uint8_t *uo = u + (size_t)(j / 2) * u_stride, *vo = v + (size_t)(j / 2) * v_stride;
    for (int i = 0; i < width; i++) {
      y0[i] = luma(r0 + 3 * i);
      y1[i] = luma(r1 + 3 * i);
    }
    for (int i = 0; i < width / 2; i++) {
      const uint8_t *a = r0 + 6 * i, *b = r1 + 6 * i;
      /* Sums of four pixels: the >> 18 below divides by 4 and drops the fraction. */
      int32_t R = a[0] + a[3] + b[0] + b[3], G = a[1] + a[4] + b[1] + b[4], B = a[2] + a[5] + b[2] + b[5];
      uo[i] = (uint8_t)((UR * R + UG * G + UB * B + 4 * C_OFF) >> 18);
      vo[i] = (uint8_t)((VR * R + VG * G + VB * B + 4 * C_OFF) >> 18);
    }
  }
}

/* 10-bit: the 8-bit formulas times 4, so the final shift loses two bits less. */
#define Y10_OFF ((64 << 16) + (1 << 15))
#define C10_OFF ((512 << 16) + (1 << 15))

static inline uint16_t luma10(const uint8_t *p) {
  return (uint16_t)((4 * (YR * p[0] + YG * p[1] + YB * p[2]) + Y10_OFF) >> 16);
}

void reel__rgb24_to_yuv420p10_bt709(const uint8_t *rgb, size_t rgb_stride, int width, int height, uint16_t *y,
                                    size_t y_stride, uint16_t *u, size_t u_stride, uint16_t *v, size_t v_stride) {
  for (int j = 0; j < height; j += 2) {
    const uint8_t *r0 = rgb + (size_t)j * rgb_stride, *r1 = r0 + rgb_stride;
    uint16_t *y0 = (uint16_t *)((uint8_t *)y + (size_t)j * y_stride);
    uint16_t *y1 = (uint16_t *)((uint8_t *)y0 + y_stride);
    uint16_t *uo = (uint16_t *)((uint8_t *)u + (size_t)(j / 2) * u_stride);
    uint16_t *vo = (uint16_t *)((uint8_t *)v + (size_t)(j / 2) * v_stride);
    for (int i = 0; i < width; i++) {
      y0[i] = luma10(r0 + 3 * i);
      y1[i] = luma10(r1 + 3 * i);
    }
    for (int i = 0; i < width / 2; i++) {
      const uint8_t *a = r0 + 6 * i, *b = r1 + 6 * i;
      /* Sums of four pixels: x4 for 10 bits and /4 for the mean cancel. */
      int32_t R = a[0] + a[3] + b[0] + b[3], G = a[1] + a[4] + b[1] + b[4], B = a[2] + a[5] + b[2] + b[5];
      uo[i] = (uint16_t)((UR * R + UG * G + UB * B + C10_OFF) >> 16);
      vo[i] = (uint16_t)((VR * R + VG * G + VB * B + C10_OFF) >> 16);
    }
  }
}

static inline float clamp01(float x) { return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }

void reel__rgbf_to_yuv420p10_bt709(const float *rgb, size_t rgb_stride, int width, int height, uint16_t *y,
                                   size_t y_stride, uint16_t *u, size_t u_stride, uint16_t *v, size_t v_stride) {
  const float kr = (float)KR, kg = (float)KG, kb = (float)KB;
  const float ys = 876.0f, cbs = 896.0f / (float)(2.0 * (1.0 - KB)), crs = 896.0f / (float)(2.0 * (1.0 - KR));
  for (int j = 0; j < height; j += 2) {
    const float *r0 = rgb + (size_t)j * rgb_stride, *r1 = r0 + rgb_stride;
    uint16_t *y0 = (uint16_t *)((uint8_t *)y + (size_t)j * y_stride);
    uint16_t *y1 = (uint16_t *)((uint8_t *)y0 + y_stride);
    uint16_t *uo = (uint16_t *)((uint8_t *)u + (size_t)(j / 2) * u_stride);
    uint16_t *vo = (uint16_t *)((uint8_t *)v + (size_t)(j / 2) * v_stride);
    for (int i = 0; i < width; i += 2) {
      float rs = 0, gs = 0, bs = 0;
      const float *px[4] = {r0 + 3 * i, r0 + 3 * i + 3, r1 + 3 * i, r1 + 3 * i + 3};
      uint16_t *yo[4] = {y0 + i, y0 + i + 1, y1 + i, y1 + i + 1};
      for (int k = 0; k < 4; k++) {
        float r = clamp01(px[k][0]), g = clamp01(px[k][1]), b = clamp01(px[k][2]);
        *yo[k] = (uint16_t)(64.0f + ys * (kr * r + kg * g + kb * b) + 0.5f);
        rs += r;
        gs += g;
        bs += b;
      }
      rs *= 0.25f;
      gs *= 0.25f;
      bs *= 0.25f;
      float l = kr * rs + kg * gs + kb * bs;
      float cb = 512.0f + cbs * (bs - l) + 0.5f, cr = 512.0f + crs * (rs - l) + 0.5f;
      uo[i / 2] = (uint16_t)(cb < 64.0f ? 64.0f : cb > 960.0f ? 960.0f : cb);
      vo[i / 2] = (uint16_t)(cr < 64.0f ? 64.0f : cr > 960.0f ? 960.0f : cr);
    }
  }
}
