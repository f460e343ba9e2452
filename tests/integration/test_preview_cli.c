/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `reel preview`: the contact sheet has the grid of frames it promises (checked
 * with ffprobe and by decoding it back), terminal playback writes one 24-bit
 * colour frame per clip frame, and a terminal that cannot show colour gets a
 * clear message instead of garbage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static char dir[256];
static char clip[300];

static const char *reel_bin(void) {
  const char *b = getenv("REEL_BIN");
  return b ? b : "reel";
}

static int setup(void **state) {
  (void)state;
  tu_mkdtemp(dir, sizeof dir);
  snprintf(clip, sizeof clip, "%s/clip.mp4", dir);
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "%s generate -q --model builtin:testsrc --size 160x96 --frames 12 --fps 12 -o %s x",
           reel_bin(), clip);
  assert_int_equal(tu_run(cmd, NULL), 0);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  tu_rmtree(dir);
  return 0;
}

static void test_sheet(void **state) {
  (void)state;
  if (!tu_have_program("ffprobe")) skip();
  char cmd[1024], *out = NULL;
  snprintf(cmd, sizeof cmd, "%s preview --sheet %s/sheet.png --count 6 --cols 3 --thumb-width 80 %s", reel_bin(), dir,
           clip);
  assert_int_equal(tu_run(cmd, &out), 0);
  assert_non_null(strstr(out, "6 frames of 12"));
  free(out);
  /* 3 columns of 80 px + 4 gaps of 4 px = 256; 2 rows of 48 px + 3 gaps = 108. */
  snprintf(cmd, sizeof cmd, "ffprobe -v error -show_entries stream=codec_name,width,height -of csv=p=0 %s/sheet.png",
           dir);
  assert_int_equal(tu_run(cmd, &out), 0);
  assert_string_equal(out, "png,256,108\n");
  free(out);
  /* JPEG by extension; unknown extensions are refused naming the flag. */
  snprintf(cmd, sizeof cmd, "%s preview --sheet %s/sheet.jpg %s", reel_bin(), dir, clip);
  assert_int_equal(tu_run(cmd, NULL), 0);
  snprintf(cmd, sizeof cmd, "%s preview --sheet %s/sheet.bmp %s 2>&1", reel_bin(), dir, clip);
  assert_int_equal(tu_run(cmd, &out), 1);
  assert_non_null(strstr(out, "--sheet"));
  free(out);
}

static void test_terminal_frames(void **state) {
  (void)state;
  char cmd[1024], *out = NULL;
  snprintf(cmd, sizeof cmd, "%s preview --color always --width 40 --height 12 --fps 240 %s", reel_bin(), clip);
  assert_int_equal(tu_run(cmd, &out), 0);
  /* One cursor-home per frame, 24-bit colour codes, half blocks, the last frame's status line. */
  int homes = 0;
  for (const char *p = out; (p = strstr(p, "\x1b[H")) != NULL; p += 3) homes++;
  assert_int_equal(homes, 12);
  assert_non_null(strstr(out, "\x1b[38;2;"));
  assert_non_null(strstr(out, "\x1b[48;2;"));
  assert_non_null(strstr(out, "\xe2\x96\x80"));
  assert_non_null(strstr(out, "frame 12/12"));
  /* 160x96 into 40 columns x 24 pixel rows: 40 wide, 24 high -> 12 text rows per frame. */
  const char *prev = strstr(out, "frame 11/12"), *last = strstr(out, "frame 12/12");
  assert_non_null(prev);
  assert_non_null(last);
  int lines = 0;
  for (const char *p = prev; p < last; p++) lines += *p == '\n';
  assert_int_equal(lines, 12);
  free(out);
}

static void test_refusals(void **state) {
  (void)state;
  char cmd[1024], *out = NULL;
  /* Not a terminal: a clear message, exit 2. */
  snprintf(cmd, sizeof cmd, "%s preview %s 2>&1 </dev/null | cat", reel_bin(), clip);
  tu_run(cmd, &out);
  assert_non_null(strstr(out, "not a terminal"));
  free(out);
  snprintf(cmd, sizeof cmd, "%s preview %s >/dev/null 2>&1", reel_bin(), clip);
  assert_int_equal(tu_run(cmd, NULL), 2);
  snprintf(cmd, sizeof cmd, "%s preview --count 0 --sheet x.png %s 2>&1", reel_bin(), clip);
  assert_int_equal(tu_run(cmd, &out), 2);
  assert_non_null(strstr(out, "--count must be an integer in 1..256"));
  free(out);
  snprintf(cmd, sizeof cmd, "%s preview --sheet %s/s.png %s/missing.mp4 2>&1", reel_bin(), dir, dir);
  assert_int_equal(tu_run(cmd, &out), 1);
  assert_non_null(strstr(out, "missing.mp4"));
  free(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sheet),
      cmocka_unit_test(test_terminal_frames),
      cmocka_unit_test(test_refusals),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
