/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal to encoder/: RGB → YUV 4:2:0 conversion on the CPU (BT.709, limited
 * range, chroma = average of each 2x2 block, i.e. centre-sited).
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

#endif
