/* SPDX-License-Identifier: Apache-2.0 */
/*
 * builtin:testsrc: the same (params, index) always gives the same bytes (pinned
 * by digests, so an accidental change to the pattern is caught), the seed
 * changes the picture, the picture moves, and bad parameters name the field.
 */
#include <stdlib.h>
#include <string.h>

#include "reel/sha256.h"
#include "reel/testsrc.h"
#include "testutil.h"

static void frame_hex(const reel_testsrc_params *p, int index, size_t stride, char hex[REEL_SHA256_HEX]) {
  uint8_t *buf = malloc(stride * (size_t)p->height);
  memset(buf, 0xAB, stride * (size_t)p->height);
  reel_testsrc_render(p, index, buf, stride);
  /* Hash only the pixels, not the row padding, and check the padding was not touched. */
  reel_sha256 c;
  reel_sha256_init(&c);
  for (int y = 0; y < p->height; y++) {
    reel_sha256_update(&c, buf + (size_t)y * stride, (size_t)p->width * 3);
    for (size_t x = (size_t)p->width * 3; x < stride; x++) assert_int_equal(buf[(size_t)y * stride + x], 0xAB);
  }
  uint8_t d[REEL_SHA256_BYTES];
  reel_sha256_final(&c, d);
  reel_sha256_hex(d, hex);
  free(buf);
}

static void test_pinned_frames(void **state) {
  (void)state;
  reel_testsrc_params p = {320, 240, 48, 42};
  char a[REEL_SHA256_HEX], b[REEL_SHA256_HEX];
  frame_hex(&p, 0, 320 * 3, a);
  frame_hex(&p, 17, 320 * 3, b);
  assert_string_equal(a, "9fca6183162688e5899548369f5191ee75c0ea42e2ee43ce5037accaa36bc19f");
  assert_string_equal(b, "d89926e84451aaaa1bc3a075b93d24d239dc8b9ba121e71e920c19d1e8b7d1ec");
  /* A padded stride renders the same pixels. */
  frame_hex(&p, 17, 320 * 3 + 13, a);
  assert_string_equal(a, b);
}

static void test_seed_and_motion(void **state) {
  (void)state;
  reel_testsrc_params p = {160, 96, 10, 1};
  char f0[REEL_SHA256_HEX], f0again[REEL_SHA256_HEX], f1[REEL_SHA256_HEX];
  frame_hex(&p, 0, 160 * 3, f0);
  frame_hex(&p, 0, 160 * 3, f0again);
  frame_hex(&p, 1, 160 * 3, f1);
  assert_string_equal(f0, f0again);
  assert_string_not_equal(f0, f1);
  /* Every one of a handful of seeds gives a different first frame. */
  char seen[8][REEL_SHA256_HEX];
  for (int s = 0; s < 8; s++) {
    p.seed = (uint64_t)s * 0x100000001ULL + 3;
    frame_hex(&p, 0, 160 * 3, seen[s]);
    for (int t = 0; t < s; t++) assert_string_not_equal(seen[s], seen[t]);
  }
}

static void test_small_and_odd_shapes(void **state) {
  (void)state;
  /* The smallest size and extreme aspect ratios render without writing outside the frame. */
  int sizes[][2] = {{16, 16}, {8192, 16}, {16, 2048}, {34, 18}};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    reel_testsrc_params p = {sizes[i][0], sizes[i][1], 1000, 99};
    char hex[REEL_SHA256_HEX];
    for (int f = 0; f < 1000; f += 333) frame_hex(&p, f, (size_t)p.width * 3 + 5, hex);
  }
}

static void test_check(void **state) {
  (void)state;
  reel_error err = {0};
  reel_testsrc_params p = {320, 240, 48, 0};
  assert_int_equal(reel_testsrc_check(&p, &err), REEL_OK);
  p.width = 321;
  assert_int_equal(reel_testsrc_check(&p, &err), REEL_ERANGE);
  assert_string_equal(err.field, "width");
  reel_error_clear(&err);
  p.width = 320;
  p.height = 8;
  assert_int_equal(reel_testsrc_check(&p, &err), REEL_ERANGE);
  assert_string_equal(err.field, "height");
  reel_error_clear(&err);
  p.height = 240;
  p.frames = 0;
  assert_int_equal(reel_testsrc_check(&p, &err), REEL_ERANGE);
  assert_string_equal(err.field, "frames");
  reel_error_clear(&err);
  assert_int_equal(reel_testsrc_check(NULL, &err), REEL_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pinned_frames),
      cmocka_unit_test(test_seed_and_motion),
      cmocka_unit_test(test_small_and_odd_shapes),
      cmocka_unit_test(test_check),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
