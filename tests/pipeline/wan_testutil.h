/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers shared by the Wan tests: fixture paths, reading reference tensors out
 * of a safetensors file as f32/f64 host arrays, and uploading host arrays as
 * backend tensors. Each helper fails the running test on error.
 */
#ifndef REEL_TEST_WAN_TESTUTIL_H
#define REEL_TEST_WAN_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "reel/backend.h"
#include "reel/safetensors.h"

/* "<source>/tests/fixtures/<rel>" into buf. Returns buf. */
const char *wt_fixture(char *buf, size_t size, const char *rel);
/* Opens a fixture safetensors file. */
reel_safetensors *wt_open(const char *rel);
/*
 * Tensor `name` converted to a new f32 array (F32, BF16, F16, I64, I32, U64,
 * U32 sources); *n (may be NULL) gets the element count, shape/rank when non-NULL.
 */
float *wt_read_f32(const reel_safetensors *st, const char *name, size_t *n, int64_t *shape, int *rank);
/* The same as doubles (exact for the integer dtypes up to 2^53). */
double *wt_read_f64(const reel_safetensors *st, const char *name, size_t *n);
/* A new f32 tensor on b holding data. */
reel_tensor wt_upload(reel_backend *b, int ndim, const int64_t *shape, const float *data);
/* A new host array with the tensor's contents (contiguous f32 tensors). */
float *wt_download(const reel_tensor *t);

/* RGB24 frames copied out of reel_generate's frame callback: rgb is [cap, h, w, 3]. */
typedef struct wt_frames {
  uint8_t *rgb;
  int w, h, n, cap;
} wt_frames;
/* Room for cap frames of w x h (zeroed), none received yet. */
void wt_frames_init(wt_frames *fr, int w, int h, int cap);
/* A reel_generate_options.frame callback; user is a wt_frames. Frames must arrive in order. */
reel_status wt_grab_frame(void *user, const uint8_t *rgb, size_t stride, int index, reel_error *err);

#endif
