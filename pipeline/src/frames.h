/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Frame helpers of the generation path (internal to pipeline/): the VAE's float
 * output to RGB uint8 exactly as diffusers converts it, a box-filter downscale
 * for preview frames, and a small PNG writer (stored deflate blocks: no zlib in
 * the pipeline, and previews are small) for preview payloads.
 */
#ifndef REEL_PIPELINE_FRAMES_H
#define REEL_PIPELINE_FRAMES_H

#include <stddef.h>
#include <stdint.h>

#include "reel/status.h"

/*
 * Frame t of a planar chunk [3, n, H, W] (f32, values as the VAE gives them)
 * into packed RGB24 `rgb` (H rows of W * 3 bytes): per value
 * u = (uint8)(clamp(x * 0.5 + 0.5, 0, 1) * 255) in float32 with truncation,
 * which is what diffusers' VideoProcessor (x * 0.5 + 0.5, clamp) followed by
 * export_to_video's (frames * 255).astype(uint8) computes. Returns the index of
 * the first non-finite input value of the frame, or -1 when all are finite.
 */
int64_t reel__frame_to_rgb8(const float *chunk, int64_t n, int64_t t, int64_t H, int64_t W, uint8_t *rgb);

/* Area-average downscale of packed RGB24 (sw x sh) to (dw x dh), dw <= sw, dh <= sh. Cannot fail. */
void reel__rgb8_downscale(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh);

/*
 * A PNG (8-bit RGB, no filtering, stored deflate blocks) of packed RGB24 pixels.
 * *out is a new buffer of *len bytes the caller frees with reel_free().
 */
reel_status reel__png_encode(const uint8_t *rgb, int width, int height, uint8_t **out /* OUT: */,
                             size_t *len /* OUT: */, reel_error *err);

#endif
