/* SPDX-License-Identifier: Apache-2.0 */
/* Test helpers and naive references for kernels/ (see kref.h). */
#include "kref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

void kr_fill(float *x, size_t n, uint32_t seed, float lo, float hi) {
  uint64_t s = 0x9e3779b97f4a7c15ull ^ seed;
  for (size_t i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    x[i] = lo + (hi - lo) * (float)((s >> 40) * 0x1p-24);
  }
}

void kr_round(float *x, size_t n, reel_dtype dt) {
  for (size_t i = 0; i < n; i++) {
    if (dt == REEL_F16) x[i] = reel_f16_to_f32(reel_f32_to_f16(x[i]));
    if (dt == REEL_BF16) x[i] = reel_bf16_to_f32(reel_f32_to_bf16(x[i]));
  }
}

reel_tensor kr_tensor(reel_backend *b, reel_dtype dt, int ndim, const int64_t *shape, float *data) {
  reel_tensor t;
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_tensor_new(b, dt, ndim, shape, &t, &err), REEL_OK);
  size_t n = (size_t)reel_tensor_numel(&t);
  kr_round(data, n, dt);
  void *host = malloc(n * reel_dtype_size(dt) + 1);
  assert_non_null(host);
  assert_int_equal(reel_convert(REEL_F32, data, dt, host, n), REEL_OK);
  assert_int_equal(reel_tensor_upload(&t, host, reel_tensor_nbytes(&t), &err), REEL_OK);
  free(host);
  return t;
}

float *kr_download(reel_backend *b, const reel_tensor *t) {
  reel_error err;
  reel_error_clear(&err);
  reel_tensor c;
  assert_int_equal(reel_tensor_new(b, REEL_F32, t->ndim, t->shape, &c, &err), REEL_OK);
  if (t->dtype == REEL_F32 && reel_tensor_is_contiguous(t)) {
    assert_int_equal(reel_buffer_copy(c.buf, 0, t->buf, t->offset, reel_tensor_nbytes(t), &err), REEL_OK);
  } else {
    assert_int_equal(reel_op_copy(b, t, &c, &err), REEL_OK);
  }
  size_t n = (size_t)reel_tensor_numel(t);
  float *out = malloc(n * sizeof(float) + 1);
  assert_non_null(out);
  assert_int_equal(reel_tensor_download(&c, out, n * sizeof(float), &err), REEL_OK);
  reel_tensor_free(&c);
  return out;
}

void kr_gather(const reel_tensor *v, const float *base, float *out) {
  int64_t n = reel_tensor_numel(v);
  int64_t off0 = (int64_t)(v->offset / 4);
  for (int64_t i = 0; i < n; i++) {
    int64_t idx = i, off = off0;
    for (int d = v->ndim - 1; d >= 0; d--) {
      off += (idx % v->shape[d]) * v->stride[d];
      idx /= v->shape[d];
    }
    out[i] = base[off];
  }
}

double kr_nmse(const float *ref, const float *got, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)ref[i] - (double)got[i];
    num += d * d;
    den += (double)ref[i] * (double)ref[i];
  }
  return num / (den > 1e-30 ? den : 1e-30);
}

double kr_rel_err(const float *ref, const float *got, size_t n, double atol, double rtol, size_t *where) {
  double worst = 0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs((double)ref[i] - (double)got[i]) / (atol + rtol * fabs((double)ref[i]));
    if (!(e <= worst)) { /* also catches NaN */
      worst = isnan(e) ? INFINITY : e;
      if (where) *where = i;
    }
  }
  return worst;
}

void ref_matmul(int64_t M, int64_t N, int64_t K, const float *a, const float *w, const float *bias, float alpha,
                float *out) {
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      double s = 0;
      for (int64_t k = 0; k < K; k++) s += (double)a[m * K + k] * (double)w[n * K + k];
      s *= alpha;
      if (bias) s += bias[n];
      out[m * N + n] = (float)s;
    }
}

void ref_matmul_mag(int64_t M, int64_t N, int64_t K, const float *a, const float *w, float *mag) {
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      double s = 0;
      for (int64_t k = 0; k < K; k++) s += fabs((double)a[m * K + k] * (double)w[n * K + k]);
      mag[m * N + n] = (float)s;
    }
}

void ref_softmax(int64_t rows, int64_t D, const float *x, float *out) {
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * D;
    double m = -INFINITY, s = 0;
    for (int64_t i = 0; i < D; i++) m = xr[i] > m ? xr[i] : m;
    for (int64_t i = 0; i < D; i++) s += exp((double)xr[i] - m);
    for (int64_t i = 0; i < D; i++) out[r * D + i] = (float)(exp((double)xr[i] - m) / s);
  }
}

void ref_layer_norm(int64_t rows, int64_t D, const float *x, const float *w, const float *b, float eps, float *out) {
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * D;
    double mean = 0, var = 0;
    for (int64_t i = 0; i < D; i++) mean += xr[i];
    mean /= (double)D;
    for (int64_t i = 0; i < D; i++) var += ((double)xr[i] - mean) * ((double)xr[i] - mean);
    var /= (double)D;
    double rstd = 1.0 / sqrt(var + eps);
    for (int64_t i = 0; i < D; i++) {
      double v = ((double)xr[i] - mean) * rstd;
      if (w) v *= w[i];
      if (b) v += b[i];
      out[r * D + i] = (float)v;
    }
  }
}

void ref_rms_norm(int64_t rows, int64_t D, const float *x, const float *w, float eps, float *out) {
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * D;
    double ms = 0;
    for (int64_t i = 0; i < D; i++) ms += (double)xr[i] * (double)xr[i];
    ms /= (double)D;
    double rs = 1.0 / sqrt(ms + eps);
    for (int64_t i = 0; i < D; i++) out[r * D + i] = (float)((double)xr[i] * rs * (w ? w[i] : 1.0));
  }
}

float ref_silu(float x) { return (float)((double)x / (1.0 + exp(-(double)x))); }

float ref_gelu_tanh(float x) {
  double v = x;
  return (float)(0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v))));
}

void ref_binary(int op, int out_ndim, const int64_t *os, int xn, const int64_t *xs, const float *x, int yn,
                const int64_t *ys, const float *y, float *out) {
  int64_t n = 1;
  for (int d = 0; d < out_ndim; d++) n *= os[d];
  for (int64_t i = 0; i < n; i++) {
    int64_t idx = i, xo = 0, yo = 0, xm = 1, ym = 1;
    for (int d = out_ndim - 1; d >= 0; d--) {
      int64_t c = idx % os[d];
      idx /= os[d];
      int dx = d - (out_ndim - xn), dy = d - (out_ndim - yn);
      if (dx >= 0) {
        xo += (xs[dx] == 1 ? 0 : c) * xm;
        xm *= xs[dx];
      }
      if (dy >= 0) {
        yo += (ys[dy] == 1 ? 0 : c) * ym;
        ym *= ys[dy];
      }
    }
    out[i] = op == 0 ? x[xo] + y[yo] : x[xo] * y[yo];
  }
}
