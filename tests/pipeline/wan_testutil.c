/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers shared by the Wan tests (see wan_testutil.h).
 */
#include "wan_testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/tensor.h"
#include "testutil.h"

const char *wt_fixture(char *buf, size_t size, const char *rel) {
  snprintf(buf, size, "%s/tests/fixtures/%s", tu_source_dir(), rel);
  return buf;
}

reel_safetensors *wt_open(const char *rel) {
  char path[1024];
  reel_safetensors *st = NULL;
  reel_error err = {0};
  reel_status s = reel_safetensors_open(wt_fixture(path, sizeof path, rel), &st, &err);
  if (s != REEL_OK) fail_msg("cannot open %s: %s (%s)", path, err.msg, err.field);
  return st;
}

double *wt_read_f64(const reel_safetensors *st, const char *name, size_t *n) {
  const reel_st_tensor *t = reel_safetensors_find(st, name);
  if (!t) fail_msg("fixture tensor %s missing", name);
  size_t cnt = (size_t)t->numel;
  double *out = malloc((cnt ? cnt : 1) * sizeof *out);
  assert_non_null(out);
  const unsigned char *p = t->data;
  for (size_t i = 0; i < cnt; i++) {
    switch (t->dtype) {
      case REEL_ST_F32: {
        float f;
        memcpy(&f, p + 4 * i, 4);
        out[i] = f;
      } break;
      case REEL_ST_BF16:
      case REEL_ST_F16: {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        out[i] = t->dtype == REEL_ST_BF16 ? reel_bf16_to_f32(h) : reel_f16_to_f32(h);
      } break;
      case REEL_ST_I64: {
        int64_t v;
        memcpy(&v, p + 8 * i, 8);
        out[i] = (double)v;
      } break;
      case REEL_ST_U64: {
        uint64_t v;
        memcpy(&v, p + 8 * i, 8);
        out[i] = (double)v;
      } break;
      case REEL_ST_U32: {
        uint32_t v;
        memcpy(&v, p + 4 * i, 4);
        out[i] = v;
      } break;
      case REEL_ST_I32: {
        int32_t v;
        memcpy(&v, p + 4 * i, 4);
        out[i] = v;
      } break;
      default:
        fail_msg("fixture tensor %s has an unexpected dtype", name);
    }
  }
  if (n) *n = cnt;
  return out;
}

float *wt_read_f32(const reel_safetensors *st, const char *name, size_t *n, int64_t *shape, int *rank) {
  size_t cnt;
  double *d = wt_read_f64(st, name, &cnt);
  float *out = malloc((cnt ? cnt : 1) * sizeof *out);
  assert_non_null(out);
  for (size_t i = 0; i < cnt; i++) out[i] = (float)d[i];
  free(d);
  const reel_st_tensor *t = reel_safetensors_find(st, name);
  if (shape)
    for (int i = 0; i < t->rank; i++) shape[i] = t->shape[i];
  if (rank) *rank = t->rank;
  if (n) *n = cnt;
  return out;
}

reel_tensor wt_upload(reel_backend *b, int ndim, const int64_t *shape, const float *data) {
  reel_tensor t;
  reel_error err = {0};
  if (reel_tensor_new(b, REEL_F32, ndim, shape, &t, &err) != REEL_OK) fail_msg("tensor_new: %s", err.msg);
  if (reel_tensor_upload(&t, data, reel_tensor_nbytes(&t), &err) != REEL_OK) fail_msg("upload: %s", err.msg);
  return t;
}

float *wt_download(const reel_tensor *t) {
  size_t n = reel_tensor_nbytes(t);
  float *h = malloc(n ? n : 1);
  assert_non_null(h);
  reel_error err = {0};
  if (reel_tensor_download(t, h, n, &err) != REEL_OK) fail_msg("download: %s", err.msg);
  return h;
}

void wt_frames_init(wt_frames *fr, int w, int h, int cap) {
  fr->w = w;
  fr->h = h;
  fr->cap = cap;
  fr->n = 0;
  fr->rgb = calloc((size_t)cap * w * h * 3, 1);
  assert_non_null(fr->rgb);
}

reel_status wt_grab_frame(void *user, const uint8_t *rgb, size_t stride, int index, reel_error *err) {
  (void)err;
  wt_frames *fr = user;
  assert_true(index == fr->n && index < fr->cap);
  for (int y = 0; y < fr->h; y++)
    memcpy(fr->rgb + ((size_t)index * fr->h + y) * fr->w * 3, rgb + (size_t)y * stride, (size_t)fr->w * 3);
  fr->n++;
  return REEL_OK;
}
