/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The generation path's frame helpers (pipeline/src/frames.c): diffusers' float
 * -> uint8 conversion on chosen values (truncation, clamping, the two
 * roundings), NaN detection, the area downscale, and the preview PNG writer,
 * whose output FFmpeg's PNG decoder (a reader we did not write) reads back
 * pixel for pixel, for sizes whose rows span several stored deflate blocks.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frames.h"
#include "reel/alloc.h"
#include "reel/encoder.h"
#include "testutil.h"

static void test_to_rgb8(void **state) {
  (void)state;
  /* [3, 1, 1, 6]: six pixels, one value per channel plane. */
  const float r[6] = {-1.0f, 1.0f, 0.0f, -2.0f, 0.99f, 0.0039215689f};
  float chunk[18];
  for (int c = 0; c < 3; c++)
    for (int i = 0; i < 6; i++) chunk[c * 6 + i] = r[i];
  uint8_t rgb[18];
  assert_int_equal(reel__frame_to_rgb8(chunk, 1, 0, 1, 6, rgb), -1);
  /* (x*0.5+0.5) clamped, *255, truncated: -1 -> 0, 1 -> 255, 0 -> 127 (127.5), -2 -> 0 (clamped),
     0.99 -> 253 (0.995*255 = 253.7), 1/255 -> 128 (the float32 sum rounds to 128/255 exactly), as numpy gives */
  const uint8_t want[6] = {0, 255, 127, 0, 253, 128};
  for (int i = 0; i < 6; i++)
    for (int c = 0; c < 3; c++) assert_int_equal(rgb[i * 3 + c], want[i]);
  /* Frame t of a chunk of n frames picks its own plane slice. */
  float two[3 * 2 * 1 * 1] = {-1, 1, -1, 1, -1, 1};
  uint8_t px[3];
  assert_int_equal(reel__frame_to_rgb8(two, 2, 1, 1, 1, px), -1);
  assert_int_equal(px[0], 255);
  chunk[7] = NAN; /* G plane, pixel 1 */
  assert_int_equal(reel__frame_to_rgb8(chunk, 1, 0, 1, 6, rgb), 7);
}

static void test_downscale(void **state) {
  (void)state;
  uint8_t src[4 * 2 * 3], dst[2 * 1 * 3];
  for (int i = 0; i < 8; i++) src[i * 3] = src[i * 3 + 1] = src[i * 3 + 2] = (uint8_t)(i * 10);
  reel__rgb8_downscale(src, 4, 2, dst, 2, 1);
  /* Left 2x2 block: 0, 10, 40, 50 -> 25; right: 20, 30, 60, 70 -> 45. */
  assert_int_equal(dst[0], 25);
  assert_int_equal(dst[3], 45);
}

static void png_roundtrip(int w, int h) {
  uint8_t *rgb = malloc((size_t)w * h * 3);
  for (int i = 0; i < w * h * 3; i++) rgb[i] = (uint8_t)((i * 7 + i / 3) & 0xff);
  uint8_t *png = NULL;
  size_t len = 0;
  reel_error err = {0};
  assert_int_equal(reel__png_encode(rgb, w, h, &png, &len, &err), REEL_OK);
  char dir[512], path[600];
  tu_mkdtemp(dir, sizeof dir);
  snprintf(path, sizeof path, "%s/p.png", dir);
  tu_write_file(path, png, len);
  reel_decoder *dec = NULL;
  assert_int_equal(reel_decoder_open(path, 1, NULL, &dec, &err), REEL_OK);
  reel_video_info vi;
  reel_decoder_info(dec, &vi);
  assert_int_equal(vi.width, w);
  assert_int_equal(vi.height, h);
  uint8_t *back = malloc((size_t)w * h * 3);
  assert_int_equal(reel_decoder_next_rgb(dec, back, (size_t)w * 3, &err), REEL_OK);
  assert_memory_equal(back, rgb, (size_t)w * h * 3);
  reel_decoder_destroy(&dec);
  reel_free(png);
  free(back);
  free(rgb);
  tu_rmtree(dir);
}

static void test_png(void **state) {
  (void)state;
  png_roundtrip(1, 1);
  png_roundtrip(37, 23);
  png_roundtrip(160, 160); /* 77,000 bytes: two stored blocks, a row split across them */
  uint8_t px[3] = {0};
  uint8_t *png = NULL;
  size_t len = 0;
  reel_error err = {0};
  assert_int_equal(reel__png_encode(px, 0, 1, &png, &len, &err), REEL_EINVAL);
  assert_null(png);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_to_rgb8),
      cmocka_unit_test(test_downscale),
      cmocka_unit_test(test_png),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
