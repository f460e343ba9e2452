/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Row-wise CPU ops over the last dimension: softmax, layer norm, RMS norm. Rows
 * are spread over the pool; each row is computed by one thread with a fixed
 * summation order (16 interleaved partial sums, combined pairwise), so results
 * are identical for every thread count and the loops vectorise. Softmax takes its
 * exponential from the activation kernels (vmath.h: AVX-512 / AVX2 / libm).
 */
#include <math.h>

#include "cpu_impl.h"
#include "vmath.h"

typedef enum row_kind { ROW_SOFTMAX, ROW_LAYER_NORM, ROW_RMS_NORM } row_kind;

typedef struct row_ctx {
  row_kind kind;
  const reel__act_kernels *act; /* its exp for softmax */
  reel__iter it; /* over x.shape[:-1]: operand 0 = out, 1 = x */
  char *out, *x;
  reel_dtype out_dt, x_dt;
  size_t out_esz, x_esz;
  int64_t out_st, x_st, D;
  float *w, *bias; /* f32 copies (or NULL), in scratch */
  float eps;
  float *scratch; /* D floats per thread */
} row_ctx;

static float sum16(const float *x, int64_t n) {
  float acc[16] = {0};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int k = 0; k < 16; k++) acc[k] += x[i + k];
  for (int k = 0; i < n; i++, k++) acc[k] += x[i];
  for (int w = 8; w >= 1; w /= 2)
    for (int k = 0; k < w; k++) acc[k] += acc[k + w];
  return acc[0];
}

/* Sum of (x - m)^2. */
static float sumsq16(const float *x, int64_t n, float m) {
  float acc[16] = {0};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int k = 0; k < 16; k++) {
      float d = x[i + k] - m;
      acc[k] += d * d;
    }
  for (int k = 0; i < n; i++, k++) {
    float d = x[i] - m;
    acc[k] += d * d;
  }
  for (int w = 8; w >= 1; w /= 2)
    for (int k = 0; k < w; k++) acc[k] += acc[k + w];
  return acc[0];
}

static float max16(const float *x, int64_t n) {
  float acc[16];
  for (int k = 0; k < 16; k++) acc[k] = -INFINITY;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int k = 0; k < 16; k++) acc[k] = x[i + k] > acc[k] ? x[i + k] : acc[k];
  for (int k = 0; i < n; i++, k++) acc[k] = x[i] > acc[k] ? x[i] : acc[k];
  for (int w = 8; w >= 1; w /= 2)
    for (int k = 0; k < w; k++) acc[k] = acc[k + w] > acc[k] ? acc[k + w] : acc[k];
  return acc[0];
}

static void row_fn(void *vctx, int64_t begin, int64_t end, int tid) {
  const row_ctx *c = vctx;
  const int64_t D = c->D;
  float *buf = c->scratch + (size_t)tid * (size_t)D;
  for (int64_t r = begin; r < end; r++) {
    /* Offsets of row r over every dim of the outer iteration. */
    int64_t oo = 0, xo = 0, idx = r;
    for (int d = c->it.ndim - 1; d >= 0; d--) {
      int64_t i = idx % c->it.shape[d];
      idx /= c->it.shape[d];
      oo += i * c->it.stride[0][d];
      xo += i * c->it.stride[1][d];
    }
    const void *xp = c->x + (size_t)(xo * (int64_t)c->x_esz);
    void *op = c->out + (size_t)(oo * (int64_t)c->out_esz);
    const float *x;
    if (c->x_dt == REEL_F32 && c->x_st == 1) {
      x = xp;
    } else {
      reel__load_row(c->x_dt, xp, c->x_st, D, buf);
      x = buf;
    }
    /* Write into the output directly when it is contiguous f32, else into buf (x is then consumed first). */
    int direct = c->out_dt == REEL_F32 && c->out_st == 1;
    float *o = direct ? (float *)op : buf;
    switch (c->kind) {
      case ROW_SOFTMAX: {
        float m = max16(x, D);
        for (int64_t i = 0; i < D; i++) o[i] = x[i] - m;
        c->act->exp(o, o, D);
        float inv = 1.0f / sum16(o, D);
        for (int64_t i = 0; i < D; i++) o[i] *= inv;
        break;
      }
      case ROW_LAYER_NORM: {
        float mean = sum16(x, D) / (float)D;
        float var = sumsq16(x, D, mean) / (float)D;
        float rstd = 1.0f / sqrtf(var + c->eps);
        const float *w = c->w, *bb = c->bias;
        if (w && bb) {
          for (int64_t i = 0; i < D; i++) o[i] = (x[i] - mean) * rstd * w[i] + bb[i];
        } else if (w) {
          for (int64_t i = 0; i < D; i++) o[i] = (x[i] - mean) * rstd * w[i];
        } else if (bb) {
          for (int64_t i = 0; i < D; i++) o[i] = (x[i] - mean) * rstd + bb[i];
        } else {
          for (int64_t i = 0; i < D; i++) o[i] = (x[i] - mean) * rstd;
        }
        break;
      }
      case ROW_RMS_NORM: {
        float ms = sumsq16(x, D, 0.0f) / (float)D;
        float rs = 1.0f / sqrtf(ms + c->eps);
        const float *w = c->w;
        if (w) {
          for (int64_t i = 0; i < D; i++) o[i] = x[i] * rs * w[i];
        } else {
          for (int64_t i = 0; i < D; i++) o[i] = x[i] * rs;
        }
        break;
      }
    }
    if (!direct) reel__store_row(c->out_dt, op, c->out_st, D, buf);
  }
}

static reel_status run_rows(reel_backend *b, row_kind kind, const reel_tensor *x, const reel_tensor *w,
                            const reel_tensor *bias, float eps, reel_tensor *out, reel_error *err) {
  row_ctx c;
  memset(&c, 0, sizeof c);
  c.kind = kind;
  c.act = reel__cpu_act_kernels(b);
  c.eps = eps;
  int n = x->ndim;
  c.D = x->shape[n - 1];
  /* Outer iteration over x.shape[:-1]. */
  reel_tensor ox = *x, oo = *out;
  ox.ndim = oo.ndim = n - 1;
  const reel_tensor *opsv[2] = {&oo, &ox};
  reel__iter_init(&c.it, n - 1, out->shape, 2, opsv);
  c.out = reel__tensor_data(out);
  c.x = reel__tensor_data(x);
  c.out_dt = out->dtype;
  c.x_dt = x->dtype;
  c.out_esz = reel_dtype_size(out->dtype);
  c.x_esz = reel_dtype_size(x->dtype);
  c.out_st = out->stride[n - 1];
  c.x_st = x->stride[n - 1];
  int threads = reel__pool_threads(reel__cpu_of(b)->pool);
  size_t D = (size_t)c.D;
  size_t need = ((size_t)threads + 2) * D * sizeof(float);
  float *s = reel__cpu_scratch(b, need, err);
  if (!s) return REEL_ENOMEM;
  c.scratch = s + 2 * D;
  if (w) {
    c.w = s;
    reel__load_row(w->dtype, reel__tensor_data(w), w->stride[0], c.D, c.w);
  }
  if (bias) {
    c.bias = s + D;
    reel__load_row(bias->dtype, reel__tensor_data(bias), bias->stride[0], c.D, c.bias);
  }
  int64_t rows = 1;
  for (int d = 0; d < c.it.ndim; d++) rows *= c.it.shape[d];
  int64_t grain = (int64_t)(8192 / (D ? D : 1));
  reel__pool_run(reel__cpu_of(b)->pool, rows, grain < 1 ? 1 : grain, row_fn, &c);
  return REEL_OK;
}

reel_status reel__cpu_softmax(reel_backend *b, const reel_tensor *x, reel_tensor *out, reel_error *err) {
  return run_rows(b, ROW_SOFTMAX, x, NULL, NULL, 0.0f, out, err);
}

reel_status reel__cpu_layer_norm(reel_backend *b, const reel_tensor *x, const reel_tensor *w, const reel_tensor *bias,
                                 float eps, reel_tensor *out, reel_error *err) {
  return run_rows(b, ROW_LAYER_NORM, x, w, bias, eps, out, err);
}

reel_status reel__cpu_rms_norm(reel_backend *b, const reel_tensor *x, const reel_tensor *w, float eps, reel_tensor *out,
                               reel_error *err) {
  return run_rows(b, ROW_RMS_NORM, x, w, NULL, eps, out, err);
}
