/* SPDX-License-Identifier: Apache-2.0 */
/*
 * RGB → YUV 4:2:0 BT.709 limited range: exact values for reference colours,
 * and agreement within 1 with swscale's exact path (BT.709 matrix, accurate
 * rounding, area chroma filter) on random and test-pattern frames. The 10-bit
 * outputs (from 8-bit and from float RGB) against the BT.709 equations
 * evaluated in double precision.
 */
#include <libavutil/frame.h>
#include <libswscale/swscale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "colour.h"
#include "reel/testsrc.h"
#include "testutil.h"

static void convert_one(const uint8_t rgb[3], uint8_t out[3]) {
  uint8_t img[2 * 2 * 3], y[4], u[1], v[1];
  for (int i = 0; i < 4; i++) memcpy(img + 3 * i, rgb, 3);
  reel__rgb24_to_yuv420p_bt709(img, 6, 2, 2, y, 2, u, 1, v, 1);
  for (int i = 1; i < 4; i++) assert_int_equal(y[i], y[0]);
  out[0] = y[0];
  out[1] = u[0];
  out[2] = v[0];
}

static void test_reference_colours(void **state) {
  (void)state;
  /* Values from the BT.709 equations: Y = 16 + 219 Y', Cb = 128 + 224 (B' - Y') / 1.8556, Cr = 128 + 224 (R' - Y')
   * / 1.5748. */
  static const struct {
    uint8_t rgb[3], yuv[3];
  } cases[] = {
      {{255, 255, 255}, {235, 128, 128}}, {{0, 0, 0}, {16, 128, 128}},   {{255, 0, 0}, {63, 102, 240}},
      {{0, 255, 0}, {173, 42, 26}},       {{0, 0, 255}, {32, 240, 118}}, {{128, 128, 128}, {126, 128, 128}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint8_t out[3];
    convert_one(cases[i].rgb, out);
    if (memcmp(out, cases[i].yuv, 3))
      fail_msg("rgb(%d,%d,%d): got yuv(%d,%d,%d), want (%d,%d,%d)", cases[i].rgb[0], cases[i].rgb[1], cases[i].rgb[2],
               out[0], out[1], out[2], cases[i].yuv[0], cases[i].yuv[1], cases[i].yuv[2]);
  }
}

static int max_diff(const uint8_t *a, int as, const uint8_t *b, int bs, int w, int h) {
  int m = 0;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      int d = abs((int)a[y * as + x] - (int)b[y * bs + x]);
      if (d > m) m = d;
    }
  return m;
}

static void compare_with_swscale(const uint8_t *rgb, int w, int h) {
  struct SwsContext *s =
      sws_getContext(w, h, AV_PIX_FMT_RGB24, w, h, AV_PIX_FMT_YUV420P, SWS_AREA | SWS_ACCURATE_RND, NULL, NULL, NULL);
  assert_non_null(s);
  const int *c = sws_getCoefficients(SWS_CS_ITU709);
  sws_setColorspaceDetails(s, c, 1, c, 0, 0, 1 << 16, 1 << 16);
  AVFrame *ref = av_frame_alloc(), *ours = av_frame_alloc();
  AVFrame *fr[2] = {ref, ours};
  for (int i = 0; i < 2; i++) {
    fr[i]->format = AV_PIX_FMT_YUV420P;
    fr[i]->width = w;
    fr[i]->height = h;
    assert_int_equal(av_frame_get_buffer(fr[i], 0), 0);
  }
  const uint8_t *src[4] = {rgb};
  const int ss[4] = {w * 3};
  assert_int_equal(sws_scale(s, src, ss, 0, h, ref->data, ref->linesize), h);
  reel__rgb24_to_yuv420p_bt709(rgb, (size_t)w * 3, w, h, ours->data[0], ours->linesize[0], ours->data[1],
                               ours->linesize[1], ours->data[2], ours->linesize[2]);
  assert_true(max_diff(ref->data[0], ref->linesize[0], ours->data[0], ours->linesize[0], w, h) <= 1);
  assert_true(max_diff(ref->data[1], ref->linesize[1], ours->data[1], ours->linesize[1], w / 2, h / 2) <= 1);
  assert_true(max_diff(ref->data[2], ref->linesize[2], ours->data[2], ours->linesize[2], w / 2, h / 2) <= 1);
  av_frame_free(&ref);
  av_frame_free(&ours);
  sws_freeContext(s);
}

static void test_matches_swscale(void **state) {
  (void)state;
  enum { W = 96, H = 64 };
  uint8_t *rgb = malloc(W * H * 3);
  uint32_t x = 2463534242u;
  for (int i = 0; i < W * H * 3; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    rgb[i] = (uint8_t)x;
  }
  compare_with_swscale(rgb, W, H);
  reel_testsrc_params p = {W, H, 10, 77};
  reel_testsrc_render(&p, 3, rgb, W * 3);
  compare_with_swscale(rgb, W, H);
  free(rgb);
}

/* The BT.709 equations in double precision, 10-bit limited range, for one 2x2 block. */
static void exact10(const double px[4][3], double y[4], double *cb, double *cr) {
  double ms[3] = {0, 0, 0};
  for (int k = 0; k < 4; k++) {
    y[k] = 64.0 + 876.0 * (0.2126 * px[k][0] + 0.7152 * px[k][1] + 0.0722 * px[k][2]);
    for (int c = 0; c < 3; c++) ms[c] += px[k][c] / 4.0;
  }
  double l = 0.2126 * ms[0] + 0.7152 * ms[1] + 0.0722 * ms[2];
  *cb = 512.0 + 896.0 * (ms[2] - l) / 1.8556;
  *cr = 512.0 + 896.0 * (ms[0] - l) / 1.5748;
}

static void test_ten_bit(void **state) {
  (void)state;
  enum { W = 34, H = 18 };
  uint8_t rgb[W * H * 3];
  float rgbf[W * H * 3];
  uint32_t x = 88172645u;
  for (int i = 0; i < W * H * 3; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    rgb[i] = (uint8_t)x;
    rgbf[i] = (float)(x >> 8) / (float)(1u << 24); /* values between 8-bit steps */
  }
  /* A few saturated and out-of-range floats: they clamp. */
  rgbf[0] = -0.25f;
  rgbf[4] = 1.5f;
  uint16_t y[W * H], u[W * H / 4], v[W * H / 4];
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 0)
      reel__rgb24_to_yuv420p10_bt709(rgb, W * 3, W, H, y, W * 2, u, W, v, W);
    else
      reel__rgbf_to_yuv420p10_bt709(rgbf, W * 3, W, H, y, W * 2, u, W, v, W);
    double worst = 0;
    for (int j = 0; j < H; j += 2)
      for (int i = 0; i < W; i += 2) {
        double px[4][3], ey[4], cb, cr;
        for (int k = 0; k < 4; k++)
          for (int c = 0; c < 3; c++) {
            size_t at = (size_t)(j + k / 2) * W * 3 + (size_t)(i + k % 2) * 3 + c;
            double val = pass == 0 ? rgb[at] / 255.0 : rgbf[at];
            px[k][c] = val < 0 ? 0 : val > 1 ? 1 : val;
          }
        exact10(px, ey, &cb, &cr);
        for (int k = 0; k < 4; k++) {
          double d = fabs(y[(j + k / 2) * W + i + k % 2] - ey[k]);
          if (d > worst) worst = d;
        }
        worst = fmax(worst, fabs(u[(j / 2) * (W / 2) + i / 2] - cb));
        worst = fmax(worst, fabs(v[(j / 2) * (W / 2) + i / 2] - cr));
      }
    /* Rounded to nearest: within half a code, plus a little for fixed point and float arithmetic. */
    if (worst > (pass == 0 ? 0.51 : 0.502))
      fail_msg("%s input: a 10-bit sample is %.3f codes from the exact value", pass ? "float" : "8-bit", worst);
  }
  /* Reference colours: the 8-bit codes times four. */
  uint8_t red[12] = {255, 0, 0, 255, 0, 0, 255, 0, 0, 255, 0, 0};
  reel__rgb24_to_yuv420p10_bt709(red, 6, 2, 2, y, 4, u, 2, v, 2);
  assert_int_equal(y[0], 250);
  assert_int_equal(u[0], 409);
  assert_int_equal(v[0], 960);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reference_colours),
      cmocka_unit_test(test_matches_swscale),
      cmocka_unit_test(test_ten_bit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
