/* SPDX-License-Identifier: Apache-2.0 */
/*
 * RGB → YUV 4:2:0 BT.709 limited range: exact values for reference colours,
 * and agreement within 1 with swscale's exact path (BT.709 matrix, accurate
 * rounding, area chroma filter) on random and test-pattern frames.
 */
#include <libavutil/frame.h>
#include <libswscale/swscale.h>
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reference_colours),
      cmocka_unit_test(test_matches_swscale),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
