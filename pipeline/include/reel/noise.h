/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Initial latent noise from the counter-based generator in reel/philox.h: the
 * same seed gives the same numbers on every backend, whatever else is in the
 * batch. This is the host implementation; backends produce the same bits.
 */
#ifndef REEL_NOISE_H
#define REEL_NOISE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Writes elements [offset, offset + n) of the noise stream for `seed` into out. Cannot fail. */
void reel_noise_fill(uint64_t seed, uint64_t offset, float *out, size_t n);

#ifdef __cplusplus
}
#endif
#endif
