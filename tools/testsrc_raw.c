/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Writes builtin:testsrc frames as raw RGB24 to stdout, so that another encoder
 * (the ffmpeg CLI in tools/bench_encode.sh) can encode exactly the frames reel
 * encodes. Usage: reel_testsrc_raw WIDTH HEIGHT FRAMES SEED > frames.rgb
 */
#include <stdio.h>
#include <stdlib.h>

#include "reel/testsrc.h"

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s WIDTH HEIGHT FRAMES SEED > frames.rgb\n", argv[0]);
    return 2;
  }
  reel_testsrc_params p = {atoi(argv[1]), atoi(argv[2]), atoi(argv[3]), strtoull(argv[4], NULL, 10)};
  reel_error err = {0};
  if (reel_testsrc_check(&p, &err) != REEL_OK) {
    fprintf(stderr, "%s: %s: %s\n", argv[0], err.field, err.msg);
    return 2;
  }
  size_t size = (size_t)p.width * p.height * 3;
  unsigned char *buf = malloc(size);
  if (!buf) return 1;
  for (int i = 0; i < p.frames; i++) {
    reel_testsrc_render(&p, i, buf, (size_t)p.width * 3);
    if (fwrite(buf, 1, size, stdout) != size) {
      free(buf);
      return 1;
    }
  }
  free(buf);
  return fflush(stdout) == 0 ? 0 : 1;
}
