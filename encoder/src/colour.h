/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal to encoder/: RGB → YUV 4:2:0 conversion on the CPU (BT.709, limited
 * range, chroma = average of each 2x2 block, i.e. centre-sited), into 8-bit
 * planes or 10-bit planes (FFmpeg's yuv420p10le: 16-bit little-endian words,
 * Y in 64..940, Cb/Cr in 64..960). Strides are in bytes throughout.
 */
#ifndef REEL_COLOUR_H
#define REEL_COLOUR_H

#include <stddef.h>
#include <stdint.h>

/*
 * Converts width x height RGB24 (width, height even) into three planes. Each
 * output sample is within 1 of the exact value. Cannot fail.
 */
void reel__rgb24_to_yuv420p_bt709(const uint8_t *rgb, size_t rgb_stride, int width, int height, uint8_t *y,
                                  size_t y_stride, uint8_t *u, size_t u_stride, uint8_t *v, size_t v_stride);

/* As above into 10-bit planes (each sample within 1 of the exact 10-bit value). Cannot fail. */
void reel__rgb24_to_yuv420p10_bt709(const uint8_t *rgb, size_t rgb_stride, int width, int height, uint16_t *y,
                                    size_t y_stride, uint16_t *u, size_t u_stride, uint16_t *v, size_t v_stride);

/*
 * Float RGB in [0, 1] (interleaved, stride in floats; values outside are
 * clamped; the caller has rejected NaN and Inf) into 10-bit planes, rounded to
 * nearest: the float path keeps the precision 8-bit input would lose.
 */
void reel__rgbf_to_yuv420p10_bt709(const float *rgb, size_t rgb_stride, int width, int height, uint16_t *y,
                                   size_t y_stride, uint16_t *u, size_t u_stride, uint16_t *v, size_t v_stride);

#endif
