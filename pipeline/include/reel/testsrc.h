/* SPDX-License-Identifier: Apache-2.0 */
/*
 * builtin:testsrc — a deterministic moving test pattern, the frame source of
 * the "builtin:testsrc" model. It exercises the encoder, storage and queue
 * without a diffusion model: fast, reproducible and easy to check by eye.
 *
 * A frame holds colour bars (their order and the box colours derive from the
 * seed), a luma ramp, a box that moves and bounces with a seed-derived speed and
 * direction, and the frame index in binary as black/white blocks along the
 * bottom. Integer arithmetic only, so every platform renders the same bytes;
 * edges sit on even pixels so 4:2:0 chroma loses little.
 */
#ifndef REEL_TESTSRC_H
#define REEL_TESTSRC_H

#include <stddef.h>
#include <stdint.h>

#include "reel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define REEL_TESTSRC_MODEL "builtin:testsrc"
/* What builtin:testsrc renders when the job spec leaves a field at 0. */
#define REEL_TESTSRC_DEFAULT_WIDTH  320
#define REEL_TESTSRC_DEFAULT_HEIGHT 240
#define REEL_TESTSRC_DEFAULT_FRAMES 48
#define REEL_TESTSRC_DEFAULT_FPS    24.0

typedef struct reel_testsrc_params {
  int width, height; /* even, 16..8192 */
  int frames;        /* frames in the clip, >= 1 (the motion depends only on the index) */
  uint64_t seed;
} reel_testsrc_params;

/* Checks the parameters; errors name "width", "height" or "frames". */
reel_status reel_testsrc_check(const reel_testsrc_params *p, reel_error *err);

/*
 * Renders frame `index` (0-based) as RGB24 into rgb, `stride` bytes per row
 * (>= width * 3). Parameters must have passed reel_testsrc_check. Cannot fail.
 */
void reel_testsrc_render(const reel_testsrc_params *p, int index, uint8_t *rgb, size_t stride);

#ifdef __cplusplus
}
#endif
#endif
