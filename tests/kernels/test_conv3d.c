/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conv3d and clamp against naive references: causal 3x3x3 and 3x1x1 kernels, temporal and
 * spatial strides with the Wan VAE's right/bottom-only padding, fused 2x nearest upsampling,
 * 1x1x1 (the GEMM-only path), bf16 and f16 weights, inputs and outputs that are frame views
 * of larger buffers, frames large enough to need several im2col tiles; and the shape checks.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kref.h"
#include "reel/backend.h"
#include "testutil.h"

/* out[t,y,x,o] in double, from x [T,H,W,C] and w [Co,kt,kh,kw,C] (both f32 host arrays). */
static void ref_conv(const float *x, int64_t T, int64_t H, int64_t W, int64_t C, const float *w, int64_t Co, int64_t kt,
                     int64_t kh, int64_t kw, const float *bias, const reel_conv3d_params *p, float *out, float *mag,
                     int64_t *dims /* OUT: To, Ho, Wo */) {
  int64_t Hu = H * p->upsample, Wu = W * p->upsample;
  int64_t To = (T - kt) / p->stride[0] + 1;
  int64_t Ho = (Hu + p->pad_h[0] + p->pad_h[1] - kh) / p->stride[1] + 1;
  int64_t Wo = (Wu + p->pad_w[0] + p->pad_w[1] - kw) / p->stride[2] + 1;
  dims[0] = To;
  dims[1] = Ho;
  dims[2] = Wo;
  for (int64_t t = 0; t < To; t++)
    for (int64_t y = 0; y < Ho; y++)
      for (int64_t xx = 0; xx < Wo; xx++)
        for (int64_t o = 0; o < Co; o++) {
          double acc = bias ? bias[o] : 0.0, m = bias ? fabs(bias[o]) : 0.0;
          for (int64_t dt = 0; dt < kt; dt++)
            for (int64_t dy = 0; dy < kh; dy++)
              for (int64_t dx = 0; dx < kw; dx++) {
                int64_t iy = y * p->stride[1] + dy - p->pad_h[0], ix = xx * p->stride[2] + dx - p->pad_w[0];
                if (iy < 0 || iy >= Hu || ix < 0 || ix >= Wu) continue;
                int64_t it = t * p->stride[0] + dt;
                const float *src = x + ((it * H + iy / p->upsample) * W + ix / p->upsample) * C;
                const float *wr = w + (((o * kt + dt) * kh + dy) * kw + dx) * C;
                for (int64_t c = 0; c < C; c++) {
                  acc += (double)src[c] * wr[c];
                  m += fabs((double)src[c] * wr[c]);
                }
              }
          size_t i = (size_t)(((t * Ho + y) * Wo + xx) * Co + o);
          out[i] = (float)acc;
          mag[i] = (float)m;
        }
}

static void run_case(reel_backend *b, int64_t T, int64_t H, int64_t W, int64_t C, int64_t Co, int64_t kt, int64_t kh,
                     int64_t kw, reel_conv3d_params p, reel_dtype wdt, int with_bias, int views, uint32_t seed) {
  reel_error err = {0};
  size_t nx = (size_t)(T * H * W * C), nw = (size_t)(Co * kt * kh * kw * C);
  float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w), *bias = malloc((size_t)Co * sizeof *bias);
  kr_fill(x, nx, seed, -1.0f, 1.0f);
  kr_fill(w, nw, seed + 1, -0.5f, 0.5f);
  kr_fill(bias, (size_t)Co, seed + 2, -0.2f, 0.2f);
  int64_t dims[3];
  int64_t Hu = H * p.upsample, Wu = W * p.upsample;
  int64_t To = (T - kt) / p.stride[0] + 1, Ho = (Hu + p.pad_h[0] + p.pad_h[1] - kh) / p.stride[1] + 1,
          Wo = (Wu + p.pad_w[0] + p.pad_w[1] - kw) / p.stride[2] + 1;
  size_t no = (size_t)(To * Ho * Wo * Co);
  float *ref = malloc(no * sizeof *ref), *mag = malloc(no * sizeof *mag);
  int64_t ws[5] = {Co, kt, kh, kw, C}, bs[1] = {Co};
  reel_tensor wt = kr_tensor(b, wdt, 5, ws, w); /* rounds w to wdt in place first */
  reel_tensor bt = kr_tensor(b, REEL_F32, 1, bs, bias);
  /* x: with views, the frames are every other frame of a buffer twice as long. */
  int64_t xs[4] = {views ? 2 * T : T, H, W, C};
  float *xbuf = calloc((size_t)xs[0] * (size_t)(H * W * C), sizeof *xbuf);
  for (int64_t t = 0; t < T; t++)
    memcpy(xbuf + (size_t)((views ? 2 * t + 1 : t) * H * W * C), x + (size_t)(t * H * W * C),
           (size_t)(H * W * C) * sizeof *x);
  reel_tensor xall = kr_tensor(b, REEL_F32, 4, xs, xbuf), xv = xall;
  if (views) {
    int64_t s5[5] = {T, 2, H, W, C};
    reel_tensor t5;
    assert_int_equal(reel_tensor_reshape(&xall, 5, s5, &t5, &err), REEL_OK);
    assert_int_equal(reel_tensor_slice(&t5, 1, 1, 1, &t5, &err), REEL_OK);
    int64_t s4[4] = {T, H, W, C};
    assert_int_equal(reel_tensor_reshape(&t5, 4, s4, &xv, &err), REEL_OK);
  }
  ref_conv(x, T, H, W, C, w, Co, kt, kh, kw, with_bias ? bias : NULL, &p, ref, mag, dims);
  assert_int_equal(dims[0], To);
  int64_t os[4] = {views ? 3 * To : To, Ho, Wo, Co};
  reel_tensor oall, ov;
  assert_int_equal(reel_tensor_new(b, REEL_F32, 4, os, &oall, &err), REEL_OK);
  ov = oall;
  if (views) {
    int64_t s5[5] = {To, 3, Ho, Wo, Co};
    reel_tensor t5;
    assert_int_equal(reel_tensor_reshape(&oall, 5, s5, &t5, &err), REEL_OK);
    assert_int_equal(reel_tensor_slice(&t5, 1, 2, 1, &t5, &err), REEL_OK);
    int64_t s4[4] = {To, Ho, Wo, Co};
    assert_int_equal(reel_tensor_reshape(&t5, 4, s4, &ov, &err), REEL_OK);
  }
  reel_status rc = reel_op_conv3d(b, &xv, &wt, with_bias ? &bt : NULL, &p, &ov, &err);
  if (rc != REEL_OK) fail_msg("%s: %s", err.field, err.msg);
  float *got = kr_download(b, &ov);
  double worst = 0;
  for (size_t i = 0; i < no; i++) {
    double tol = 1e-5 + 2e-6 * mag[i];
    double e = fabs((double)got[i] - ref[i]) / tol;
    if (e > worst) worst = e;
  }
  if (worst > 1.0)
    fail_msg("conv %lldx%lldx%lld C%lld->%lld: error %.3g x tolerance", (long long)kt, (long long)kh, (long long)kw,
             (long long)C, (long long)Co, worst);
  free(got);
  free(x);
  free(w);
  free(bias);
  free(xbuf);
  free(ref);
  free(mag);
  reel_tensor_free(&wt);
  reel_tensor_free(&bt);
  reel_tensor_free(&xall);
  reel_tensor_free(&oall);
}

static reel_conv3d_params params(int st, int sh, int sw, int ph0, int ph1, int pw0, int pw1, int up) {
  reel_conv3d_params p = {{st, sh, sw}, {ph0, ph1}, {pw0, pw1}, up};
  return p;
}

static void test_conv3d_cases(void **state) {
  (void)state;
  reel_error err = {0};
  reel_backend *b = reel_backend_new_cpu(2, &err);
  assert_non_null(b);
  /* causal 3x3x3 with spatial padding 1: T input frames (history + new) give T - 2 */
  run_case(b, 4, 5, 7, 6, 5, 3, 3, 3, params(1, 1, 1, 1, 1, 1, 1, 1), REEL_F32, 1, 0, 1);
  run_case(b, 3, 6, 4, 3, 8, 3, 3, 3, params(1, 1, 1, 1, 1, 1, 1, 1), REEL_BF16, 1, 1, 2);
  /* 2D 3x3 stride 2 with the right/bottom-only padding of the VAE's downsampling */
  run_case(b, 2, 7, 9, 4, 4, 1, 3, 3, params(1, 2, 2, 0, 1, 0, 1, 1), REEL_F32, 1, 1, 3);
  /* fused nearest upsampling then 3x3 */
  run_case(b, 2, 3, 5, 4, 2, 1, 3, 3, params(1, 1, 1, 1, 1, 1, 1, 2), REEL_F16, 1, 0, 4);
  /* temporal 3x1x1, stride 2 (downsample3d) and stride 1 (upsample3d's time_conv) */
  run_case(b, 5, 3, 4, 4, 4, 3, 1, 1, params(2, 1, 1, 0, 0, 0, 0, 1), REEL_F32, 1, 0, 5);
  run_case(b, 6, 3, 4, 4, 8, 3, 1, 1, params(1, 1, 1, 0, 0, 0, 0, 1), REEL_F32, 1, 1, 6);
  /* 1x1x1 (GEMM on the input rows), with and without bias */
  run_case(b, 3, 4, 4, 8, 5, 1, 1, 1, params(1, 1, 1, 0, 0, 0, 0, 1), REEL_F32, 0, 0, 7);
  run_case(b, 3, 4, 4, 8, 5, 1, 1, 1, params(1, 1, 1, 0, 0, 0, 0, 1), REEL_BF16, 1, 1, 8);
  /* a frame big enough for several im2col tiles (K = 27 * 48: tiles of ~800 pixels) */
  run_case(b, 3, 40, 44, 48, 7, 3, 3, 3, params(1, 1, 1, 1, 1, 1, 1, 1), REEL_F32, 1, 0, 9);
  reel_backend_destroy(&b);
}

static void test_conv3d_errors(void **state) {
  (void)state;
  reel_error err = {0};
  reel_backend *b = reel_backend_new_cpu(1, &err);
  reel_tensor x, w, o;
  int64_t xs[4] = {3, 4, 4, 2}, ws[5] = {3, 3, 3, 3, 2}, os[4] = {1, 4, 4, 3};
  assert_int_equal(reel_tensor_new(b, REEL_F32, 4, xs, &x, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(b, REEL_F32, 5, ws, &w, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(b, REEL_F32, 4, os, &o, &err), REEL_OK);
  reel_conv3d_params p = params(1, 1, 1, 1, 1, 1, 1, 1);
  assert_int_equal(reel_op_conv3d(b, &x, &w, NULL, &p, &o, &err), REEL_OK);
  p.upsample = 3;
  assert_int_equal(reel_op_conv3d(b, &x, &w, NULL, &p, &o, &err), REEL_EINVAL);
  assert_string_equal(err.field, "conv3d.upsample");
  p = params(1, 1, 1, 0, 0, 0, 0, 1); /* no padding: the output would be [1, 2, 2, 3] */
  reel_error_clear(&err);
  assert_int_equal(reel_op_conv3d(b, &x, &w, NULL, &p, &o, &err), REEL_EINVAL);
  assert_string_equal(err.field, "conv3d.out");
  p = params(0, 1, 1, 1, 1, 1, 1, 1);
  reel_error_clear(&err);
  assert_int_equal(reel_op_conv3d(b, &x, &w, NULL, &p, &o, &err), REEL_EINVAL);
  assert_string_equal(err.field, "conv3d.stride");
  reel_tensor xt;
  int perm[4] = {0, 2, 1, 3};
  assert_int_equal(reel_tensor_permute(&x, perm, &xt, &err), REEL_OK);
  reel_error_clear(&err);
  p = params(1, 1, 1, 1, 1, 1, 1, 1);
  assert_int_equal(reel_op_conv3d(b, &xt, &w, NULL, &p, &o, &err), REEL_EINVAL);
  assert_string_equal(err.field, "conv3d.x");
  reel_tensor_free(&x);
  reel_tensor_free(&w);
  reel_tensor_free(&o);
  reel_backend_destroy(&b);
}

static void test_clamp(void **state) {
  (void)state;
  reel_error err = {0};
  reel_backend *b = reel_backend_new_cpu(2, &err);
  float v[6] = {-3.0f, -1.0f, 0.25f, 1.0f, 7.0f, NAN};
  int64_t s[2] = {2, 3};
  reel_tensor t = kr_tensor(b, REEL_F32, 2, s, v);
  assert_int_equal(reel_op_clamp(b, &t, -1.0f, 1.0f, &t, &err), REEL_OK);
  float *g = kr_download(b, &t);
  float want[5] = {-1.0f, -1.0f, 0.25f, 1.0f, 1.0f};
  for (int i = 0; i < 5; i++) assert_true(g[i] == want[i]);
  assert_true(isnan(g[5]));
  free(g);
  assert_int_equal(reel_op_clamp(b, &t, 1.0f, -1.0f, &t, &err), REEL_EINVAL);
  reel_tensor_free(&t);
  reel_backend_destroy(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_conv3d_cases),
      cmocka_unit_test(test_conv3d_errors),
      cmocka_unit_test(test_clamp),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
