/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CPU RGB -> YUV 4:2:0 (reel_op_rgb_to_yuv420): the reference the CUDA kernel
 * matches byte for byte. Each task converts one pair of rows of one frame (two
 * luma rows, one chroma row) with the constants ops.c computed, evaluating the
 * f32 expressions documented at reel__yuv_coefs in that order; the file is built
 * with -ffp-contract=off so that no multiply-add is fused.
 */
#include <math.h>

#include "cpu_impl.h"

typedef struct yuv_ctx {
  const char *rgb;
  reel_dtype rdt;
  size_t re;
  int64_t rs[4]; /* strides of f, c, y, x (elements) */
  char *pl[3];   /* y, u, v */
  int64_t ps[3][3];
  int wide; /* U16 samples */
  int64_t H, W;
  reel__yuv_coefs k;
} yuv_ctx;

static float unit(const reel__yuv_coefs *k, float c) {
  float t = c - k->lo;
  t = t * k->inv;
  if (!(t > 0.0f)) t = 0.0f; /* NaN too */
  if (t > 1.0f) t = 1.0f;
  return t;
}

static void put(const yuv_ctx *c, int plane, int64_t f, int64_t yy, int64_t xx, float val, float add) {
  float q = floorf((val + add) + 0.5f);
  if (q < 0.0f) q = 0.0f;
  if (q > c->k.maxv) q = c->k.maxv;
  int64_t off = f * c->ps[plane][0] + yy * c->ps[plane][1] + xx * c->ps[plane][2];
  if (c->wide)
    ((uint16_t *)(void *)c->pl[plane])[off] = (uint16_t)q;
  else
    ((uint8_t *)c->pl[plane])[off] = (uint8_t)q;
}

static void yuv_rows(void *vctx, int64_t begin, int64_t end, int tid) {
  (void)tid;
  const yuv_ctx *c = vctx;
  const reel__yuv_coefs *k = &c->k;
  const int64_t half = c->H / 2;
  for (int64_t task = begin; task < end; task++) {
    int64_t f = task / half, cy = task % half;
    for (int64_t cx = 0; cx < c->W / 2; cx++) {
      float sum[3] = {0, 0, 0};
      float px[3][2][2];
      for (int ch = 0; ch < 3; ch++)
        for (int dy = 0; dy < 2; dy++)
          for (int dx = 0; dx < 2; dx++) {
            int64_t off = f * c->rs[0] + ch * c->rs[1] + (2 * cy + dy) * c->rs[2] + (2 * cx + dx) * c->rs[3];
            float raw;
            reel__load_row(c->rdt, c->rgb + (size_t)(off * (int64_t)c->re), 1, 1, &raw);
            px[ch][dy][dx] = unit(k, raw);
          }
      for (int dy = 0; dy < 2; dy++)
        for (int dx = 0; dx < 2; dx++) {
          float r = px[0][dy][dx], g = px[1][dy][dx], bl = px[2][dy][dx];
          float yv = k->ky[0] * r;
          yv = yv + k->ky[1] * g;
          yv = yv + k->ky[2] * bl;
          put(c, 0, f, 2 * cy + dy, 2 * cx + dx, yv, k->yoff);
        }
      for (int ch = 0; ch < 3; ch++) {
        float a = px[ch][0][0] + px[ch][0][1];
        float bsum = px[ch][1][0] + px[ch][1][1];
        sum[ch] = (a + bsum) * 0.25f;
      }
      float uv = k->ku[0] * sum[0];
      uv = uv + k->ku[1] * sum[1];
      uv = uv + k->ku[2] * sum[2];
      put(c, 1, f, cy, cx, uv, k->coff);
      float vv = k->kv[0] * sum[0];
      vv = vv + k->kv[1] * sum[1];
      vv = vv + k->kv[2] * sum[2];
      put(c, 2, f, cy, cx, vv, k->coff);
    }
  }
}

reel_status reel__cpu_rgb_to_yuv420(reel_backend *b, const reel_tensor *rgb, const reel__yuv_coefs *k, reel_tensor *y,
                                    reel_tensor *u, reel_tensor *v, reel_error *err) {
  (void)err;
  yuv_ctx c;
  c.rgb = reel__tensor_data(rgb);
  c.rdt = rgb->dtype;
  c.re = reel_dtype_size(rgb->dtype);
  for (int i = 0; i < 4; i++) c.rs[i] = rgb->stride[i];
  reel_tensor *pl[3] = {y, u, v};
  for (int p = 0; p < 3; p++) {
    c.pl[p] = reel__tensor_data(pl[p]);
    for (int i = 0; i < 3; i++) c.ps[p][i] = pl[p]->stride[i];
  }
  c.wide = y->dtype == REEL_U16;
  c.H = rgb->shape[2];
  c.W = rgb->shape[3];
  c.k = *k;
  int64_t tasks = rgb->shape[0] * (c.H / 2);
  reel__pool_run(reel__cpu_of(b)->pool, tasks, 4, yuv_rows, &c);
  return REEL_OK;
}
