/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reel_op_rgb_to_yuv420 on the CPU: every sample within 1 of the exact BT.709
 * limited-range value computed in double (8-bit and 10-bit), chroma from the 2x2
 * mean, the [lo, hi] mapping with clamping (and NaN to black), a permuted
 * [B,3,F,H,W]-style input view, I420 planes and NV12 (u and v as slices of one
 * interleaved plane) giving the same samples, and the argument checks.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kref.h"
#include "reel/backend.h"
#include "testutil.h"

/* Exact sample value (before rounding) for unit-range r, g, b. */
static void exact(double r, double g, double b, double s, double *y, double *u, double *v) {
  const double kr = 0.2126, kb = 0.0722, kg = 1.0 - kr - kb;
  double yl = kr * r + kg * g + kb * b;
  *y = s * (16.0 + 219.0 * yl);
  *u = s * (128.0 + 224.0 * (b - yl) / (2.0 * (1.0 - kb)));
  *v = s * (128.0 + 224.0 * (r - yl) / (2.0 * (1.0 - kr)));
}

static double unit(float c, float lo, float hi) {
  double t = ((double)c - lo) / ((double)hi - lo);
  if (!(t > 0)) t = 0;
  if (t > 1) t = 1;
  return t;
}

/* rgb host data [F,3,H,W]; planes as host arrays [F,H,W] / [F,H/2,W/2] of u16 (widened) */
static void check_planes(const float *rgb, int64_t F, int64_t H, int64_t W, float lo, float hi, double s,
                         const uint16_t *y, const uint16_t *u, const uint16_t *v) {
  for (int64_t f = 0; f < F; f++)
    for (int64_t i = 0; i < H; i += 2)
      for (int64_t j = 0; j < W; j += 2) {
        double m[3] = {0, 0, 0};
        for (int dy = 0; dy < 2; dy++)
          for (int dx = 0; dx < 2; dx++) {
            double c[3];
            for (int ch = 0; ch < 3; ch++) {
              c[ch] = unit(rgb[((f * 3 + ch) * H + i + dy) * W + j + dx], lo, hi);
              m[ch] += c[ch] / 4;
            }
            double ey, eu, ev;
            exact(c[0], c[1], c[2], s, &ey, &eu, &ev);
            double got = y[(f * H + i + dy) * W + j + dx];
            if (fabs(got - ey) > 1.0)
              fail_msg("Y[%lld,%lld,%lld] = %g, exact %g", (long long)f, (long long)(i + dy), (long long)(j + dx), got,
                       ey);
          }
        double ey, eu, ev;
        exact(m[0], m[1], m[2], s, &ey, &eu, &ev);
        size_t ci = (size_t)((f * (H / 2) + i / 2) * (W / 2) + j / 2);
        if (fabs(u[ci] - eu) > 1.0) fail_msg("U[%zu] = %u, exact %g", ci, u[ci], eu);
        if (fabs(v[ci] - ev) > 1.0) fail_msg("V[%zu] = %u, exact %g", ci, v[ci], ev);
      }
}

static void run_case(reel_backend *be, reel_dtype dt, int nv12) {
  reel_error err = {0};
  const int64_t F = 3, H = 6, W = 10;
  const float lo = -1.0f, hi = 1.0f;
  size_t n = (size_t)(F * 3 * H * W);
  float *rgb = malloc(n * 4);
  kr_fill(rgb, n, 11, -1.2f, 1.2f);                   /* some values outside [lo, hi] */
  rgb[5] = rgb[H * W + 5] = rgb[2 * H * W + 5] = NAN; /* pixel (0, 5) of frame 0 */
  /* Stored as [3, F, H, W] (a VAE output sample); the op sees the permuted [F, 3, H, W] view. */
  float *cf = malloc(n * 4);
  for (int64_t f = 0; f < F; f++)
    for (int64_t c = 0; c < 3; c++) memcpy(cf + (c * F + f) * H * W, rgb + (f * 3 + c) * H * W, (size_t)(H * W) * 4);
  int64_t cs[4] = {3, F, H, W};
  reel_tensor tc = kr_tensor(be, REEL_F32, 4, cs, cf), view;
  int perm[4] = {1, 0, 2, 3};
  assert_int_equal(reel_tensor_permute(&tc, perm, &view, &err), REEL_OK);
  int64_t ys[3] = {F, H, W}, cs3[3] = {F, H / 2, W / 2}, is4[4] = {F, H / 2, W / 2, 2};
  reel_tensor ty, tu, tv, tuv;
  assert_int_equal(reel_tensor_new(be, dt, 3, ys, &ty, &err), REEL_OK);
  if (nv12) {
    assert_int_equal(reel_tensor_new(be, dt, 4, is4, &tuv, &err), REEL_OK);
    reel_tensor a, b;
    assert_int_equal(reel_tensor_slice(&tuv, 3, 0, 1, &a, &err), REEL_OK);
    assert_int_equal(reel_tensor_slice(&tuv, 3, 1, 1, &b, &err), REEL_OK);
    assert_int_equal(reel_tensor_reshape(&a, 3, cs3, &tu, &err), REEL_OK);
    assert_int_equal(reel_tensor_reshape(&b, 3, cs3, &tv, &err), REEL_OK);
  } else {
    assert_int_equal(reel_tensor_new(be, dt, 3, cs3, &tu, &err), REEL_OK);
    assert_int_equal(reel_tensor_new(be, dt, 3, cs3, &tv, &err), REEL_OK);
  }
  assert_int_equal(reel_op_rgb_to_yuv420(be, &view, lo, hi, &ty, &tu, &tv, &err), REEL_OK);
  size_t ny = (size_t)(F * H * W), nc = ny / 4, es = reel_dtype_size(dt);
  unsigned char *by = malloc(ny * es), *buv = malloc(2 * nc * es);
  uint16_t *y = malloc(ny * 2), *u = malloc(nc * 2), *v = malloc(nc * 2);
  assert_int_equal(reel_tensor_download(&ty, by, ny * es, &err), REEL_OK);
  if (nv12) {
    assert_int_equal(reel_tensor_download(&tuv, buv, 2 * nc * es, &err), REEL_OK);
  } else {
    assert_int_equal(reel_tensor_download(&tu, buv, nc * es, &err), REEL_OK);
    assert_int_equal(reel_tensor_download(&tv, buv + nc * es, nc * es, &err), REEL_OK);
  }
  for (size_t i = 0; i < ny; i++) y[i] = es == 1 ? by[i] : ((uint16_t *)(void *)by)[i];
  for (size_t i = 0; i < nc; i++) {
    size_t iu = nv12 ? 2 * i : i, iv = nv12 ? 2 * i + 1 : nc + i;
    u[i] = es == 1 ? buv[iu] : ((uint16_t *)(void *)buv)[iu];
    v[i] = es == 1 ? buv[iv] : ((uint16_t *)(void *)buv)[iv];
  }
  /* NaN reads as 0 (the darkest value), like -1.2 clamped. */
  check_planes(rgb, F, H, W, lo, hi, dt == REEL_U16 ? 4.0 : 1.0, y, u, v);
  assert_int_equal(y[5], dt == REEL_U16 ? 64 : 16);
  reel_tensor_free(&tc);
  reel_tensor_free(&ty);
  if (nv12) {
    reel_tensor_free(&tuv);
  } else {
    reel_tensor_free(&tu);
    reel_tensor_free(&tv);
  }
  free(rgb);
  free(cf);
  free(by);
  free(buv);
  free(y);
  free(u);
  free(v);
}

static void test_values(void **state) {
  (void)state;
  reel_error err = {0};
  reel_backend *be = reel_backend_new_cpu(2, &err);
  run_case(be, REEL_U8, 0);
  run_case(be, REEL_U8, 1);
  run_case(be, REEL_U16, 0);
  run_case(be, REEL_U16, 1);
  reel_backend_destroy(&be);
}

static void test_errors(void **state) {
  (void)state;
  reel_error err = {0};
  reel_backend *be = reel_backend_new_cpu(1, &err);
  int64_t rs[4] = {2, 3, 4, 6}, ys[3] = {2, 4, 6}, cs[3] = {2, 2, 3}, odd[4] = {2, 3, 5, 6};
  reel_tensor rgb, y, u, v, yf, ro, u16;
  assert_int_equal(reel_tensor_new(be, REEL_F32, 4, rs, &rgb, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(be, REEL_F32, 4, odd, &ro, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(be, REEL_U8, 3, ys, &y, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(be, REEL_F32, 3, ys, &yf, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(be, REEL_U8, 3, cs, &u, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(be, REEL_U8, 3, cs, &v, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(be, REEL_U16, 3, cs, &u16, &err), REEL_OK);
  reel_error_clear(&err);
  assert_int_equal(reel_op_rgb_to_yuv420(be, &rgb, 1.0f, 1.0f, &y, &u, &v, &err), REEL_EINVAL);
  assert_string_equal(err.field, "rgb_to_yuv420.lo");
  reel_error_clear(&err);
  assert_int_equal(reel_op_rgb_to_yuv420(be, &ro, 0.0f, 1.0f, &y, &u, &v, &err), REEL_EINVAL);
  assert_string_equal(err.field, "rgb_to_yuv420.rgb");
  reel_error_clear(&err);
  assert_int_equal(reel_op_rgb_to_yuv420(be, &rgb, 0.0f, 1.0f, &yf, &u, &v, &err), REEL_EUNSUPPORTED);
  assert_string_equal(err.field, "rgb_to_yuv420.y");
  reel_error_clear(&err);
  assert_int_equal(reel_op_rgb_to_yuv420(be, &rgb, 0.0f, 1.0f, &y, &u16, &v, &err), REEL_EINVAL);
  assert_string_equal(err.field, "rgb_to_yuv420.u");
  reel_error_clear(&err);
  assert_int_equal(reel_op_rgb_to_yuv420(be, &rgb, 0.0f, 1.0f, &y, &v, &y, &err), REEL_EINVAL);
  assert_string_equal(err.field, "rgb_to_yuv420.v");
  assert_int_equal(reel_op_rgb_to_yuv420(be, &rgb, 0.0f, 1.0f, &y, &u, &v, &err), REEL_OK);
  reel_tensor_free(&rgb);
  reel_tensor_free(&ro);
  reel_tensor_free(&y);
  reel_tensor_free(&yf);
  reel_tensor_free(&u);
  reel_tensor_free(&v);
  reel_tensor_free(&u16);
  reel_backend_destroy(&be);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_values),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
