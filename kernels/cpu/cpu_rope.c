/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Rotary position embedding on the CPU: each (batch, token) row of a
 * [B, T, H, D] tensor is rotated pairwise with that token's cos/sin row. The
 * arithmetic is the reference's, term by term (x0 c - x1 s, x0 s + x1 c, each
 * product rounded to f32), so results match diffusers to the last bit or so.
 */
#include "cpu_impl.h"

typedef struct rope_ctx {
  const char *x;
  char *out;
  reel_dtype xdt, odt;
  size_t xesz, oesz;
  int64_t T, H, D;
  int64_t xs[3], os[3]; /* strides of dims b, t, h (elements) */
  const float *cs, *sn; /* [T, D/2] */
  float *scratch;       /* 2 * D floats per thread */
} rope_ctx;

static void rotate(const float *x, const float *c, const float *s, int64_t half, float *o) {
  for (int64_t i = 0; i < half; i++) {
    float x0 = x[2 * i], x1 = x[2 * i + 1];
    float a = x0 * c[i], bb = x1 * s[i];
    float e = x0 * s[i], f = x1 * c[i];
    o[2 * i] = a - bb;
    o[2 * i + 1] = e + f;
  }
}

static void rope_rows(void *vctx, int64_t begin, int64_t end, int tid) {
  const rope_ctx *c = vctx;
  const int64_t half = c->D / 2;
  float *in = c->scratch + (size_t)tid * 2 * (size_t)c->D, *res = in + c->D;
  int fast = c->xdt == REEL_F32 && c->odt == REEL_F32;
  for (int64_t row = begin; row < end; row++) {
    int64_t bi = row / c->T, t = row % c->T;
    const float *cs = c->cs + t * half, *sn = c->sn + t * half;
    for (int64_t h = 0; h < c->H; h++) {
      const char *xp = c->x + (size_t)((bi * c->xs[0] + t * c->xs[1] + h * c->xs[2]) * (int64_t)c->xesz);
      char *op = c->out + (size_t)((bi * c->os[0] + t * c->os[1] + h * c->os[2]) * (int64_t)c->oesz);
      if (fast) {
        /* Through a staging row, so that in-place operation is safe. */
        memcpy(in, xp, (size_t)c->D * sizeof(float));
        rotate(in, cs, sn, half, (float *)op);
      } else {
        reel__load_row(c->xdt, xp, 1, c->D, in);
        rotate(in, cs, sn, half, res);
        reel__store_row(c->odt, op, 1, c->D, res);
      }
    }
  }
}

reel_status reel__cpu_rope(reel_backend *b, const reel_tensor *x, const reel_tensor *cos_t, const reel_tensor *sin_t,
                           reel_tensor *out, reel_error *err) {
  rope_ctx c;
  c.x = reel__tensor_data(x);
  c.out = reel__tensor_data(out);
  c.xdt = x->dtype;
  c.odt = out->dtype;
  c.xesz = reel_dtype_size(x->dtype);
  c.oesz = reel_dtype_size(out->dtype);
  c.T = x->shape[1];
  c.H = x->shape[2];
  c.D = x->shape[3];
  for (int i = 0; i < 3; i++) {
    c.xs[i] = x->stride[i];
    c.os[i] = out->stride[i];
  }
  c.cs = reel__tensor_data(cos_t);
  c.sn = reel__tensor_data(sin_t);
  int threads = reel__pool_threads(reel__cpu_of(b)->pool);
  c.scratch = reel__cpu_scratch(b, (size_t)threads * 2 * (size_t)c.D * sizeof(float), err);
  if (!c.scratch) return REEL_ENOMEM;
  int64_t rows = x->shape[0] * c.T;
  int64_t per_row = c.H * c.D;
  int64_t grain = per_row >= 8192 ? 1 : 8192 / per_row;
  reel__pool_run(reel__cpu_of(b)->pool, rows, grain, rope_rows, &c);
  return REEL_OK;
}
