/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Host noise generation: element i of the stream is lane i % 4 of Philox block
 * i / 4 (see reel/philox.h). Built with -ffp-contract=off so that the
 * Box–Muller arithmetic rounds exactly as on the GPU.
 */
#include "reel/noise.h"

#include "reel/philox.h"

void reel_noise_fill(uint64_t seed, uint64_t offset, float *out, size_t n) {
  size_t i = 0;
  float blk[4];
  /* Leading partial block. */
  if (offset % 4) {
    reel_philox_normal4(seed, offset / 4, blk);
    for (uint64_t l = offset % 4; l < 4 && i < n; l++) out[i++] = blk[l];
  }
  for (; i + 4 <= n; i += 4) reel_philox_normal4(seed, (offset + i) / 4, out + i);
  if (i < n) {
    reel_philox_normal4(seed, (offset + i) / 4, blk);
    for (int l = 0; i < n; l++) out[i++] = blk[l];
  }
}
