/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The video ops of the CUDA backend against the CPU backend (ctest label gpu):
 * conv3d (causal 3x3x3, temporal stride, right/bottom padding, fused 2x
 * up-sampling, 1x1x1, f32/f16/bf16 weights, frame views of larger buffers, tiles
 * across frames) under a normalised-MSE bound; clamp (same bits); Philox noise
 * (the same bits as the CPU op and the host generator, any offset); and RGB ->
 * YUV 4:2:0 (the same bytes, 8 and 10 bits, I420 and NV12). Exits with 77
 * (ctest's SKIP_RETURN_CODE) without CUDA or a device.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kref.h"
#include "reel/noise.h"
#include "testutil.h"

static reel_backend *cpu, *gpu;

static double nmse_report(const char *what, const float *a, const float *b, size_t n, double bound) {
  double e = kr_nmse(a, b, n);
  printf("# %-56s nmse %.3e (bound %.1e) path %s\n", what, e, bound, reel_backend_last_path(gpu));
  return e;
}

/* x [T,H,W,C] (frames every other frame of a buffer when views), out likewise; compares GPU with CPU. */
static void conv_case(int64_t T, int64_t H, int64_t W, int64_t C, int64_t Co, int64_t kt, int64_t kh, int64_t kw,
                      reel_conv3d_params p, reel_dtype wdt, int views, double bound) {
  reel_error err = {0};
  const int64_t Hu = H * p.upsample, Wu = W * p.upsample;
  const int64_t To = (T - kt) / p.stride[0] + 1, Ho = (Hu + p.pad_h[0] + p.pad_h[1] - kh) / p.stride[1] + 1,
                Wo = (Wu + p.pad_w[0] + p.pad_w[1] - kw) / p.stride[2] + 1;
  const int64_t f = views ? 2 : 1;
  size_t nx = (size_t)(f * T * H * W * C), nw = (size_t)(Co * kt * kh * kw * C);
  float *x = malloc(nx * 4), *w = malloc(nw * 4), *bias = malloc((size_t)Co * 4);
  kr_fill(x, nx, 61, -1, 1);
  kr_fill(w, nw, 62, -0.5f, 0.5f);
  kr_fill(bias, (size_t)Co, 63, -0.2f, 0.2f);
  int64_t xs[5] = {T, f, H, W, C}, ws[5] = {Co, kt, kh, kw, C}, bs[1] = {Co}, os[5] = {To, f, Ho, Wo, Co};
  reel_tensor t[2][5]; /* per backend: x buffer, w, bias, out buffer, (unused) */
  reel_tensor xv[2], ov[2];
  reel_backend *be[2] = {cpu, gpu};
  for (int i = 0; i < 2; i++) {
    float *xc = malloc(nx * 4), *wc = malloc(nw * 4);
    memcpy(xc, x, nx * 4);
    memcpy(wc, w, nw * 4);
    t[i][0] = kr_tensor(be[i], REEL_F32, 5, xs, xc);
    t[i][1] = kr_tensor(be[i], wdt, 5, ws, wc);
    t[i][2] = kr_tensor(be[i], REEL_F32, 1, bs, bias);
    assert_int_equal(reel_tensor_new(be[i], REEL_F32, 5, os, &t[i][3], &err), REEL_OK);
    reel_tensor a;
    int64_t s4x[4] = {T, H, W, C}, s4o[4] = {To, Ho, Wo, Co};
    assert_int_equal(reel_tensor_slice(&t[i][0], 1, f - 1, 1, &a, &err), REEL_OK);
    assert_int_equal(reel_tensor_reshape(&a, 4, s4x, &xv[i], &err), REEL_OK);
    assert_int_equal(reel_tensor_slice(&t[i][3], 1, 0, 1, &a, &err), REEL_OK);
    assert_int_equal(reel_tensor_reshape(&a, 4, s4o, &ov[i], &err), REEL_OK);
    reel_status st = reel_op_conv3d(be[i], &xv[i], &t[i][1], &t[i][2], &p, &ov[i], &err);
    if (st != REEL_OK) fail_msg("conv3d on %s: %s: %s", reel_backend_name(be[i]), err.field, err.msg);
    free(xc);
    free(wc);
  }
  assert_int_equal(reel_backend_synchronize(gpu, NULL), REEL_OK);
  float *a = kr_download(cpu, &ov[0]), *b = kr_download(gpu, &ov[1]);
  char what[128];
  snprintf(what, sizeof what, "conv3d %lldx%lldx%lld %lld->%lld on %lldx%lldx%lld s%d,%d,%d up%d %s%s", (long long)kt,
           (long long)kh, (long long)kw, (long long)C, (long long)Co, (long long)T, (long long)H, (long long)W,
           p.stride[0], p.stride[1], p.stride[2], p.upsample, reel_dtype_name(wdt), views ? " views" : "");
  double e = nmse_report(what, a, b, (size_t)reel_tensor_numel(&ov[0]), bound);
  if (!(e <= bound)) fail_msg("%s: nmse %.3e above %.1e", what, e, bound);
  free(a);
  free(b);
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 4; j++) reel_tensor_free(&t[i][j]);
  free(x);
  free(w);
  free(bias);
}

static void test_conv3d(void **state) {
  (void)state;
  const reel_conv3d_params plain = {{1, 1, 1}, {1, 1}, {1, 1}, 1};
  const reel_conv3d_params down = {{1, 2, 2}, {0, 1}, {0, 1}, 1};
  const reel_conv3d_params tstride = {{2, 1, 1}, {0, 0}, {0, 0}, 1};
  const reel_conv3d_params up = {{1, 1, 1}, {1, 1}, {1, 1}, 2};
  const reel_conv3d_params one = {{1, 1, 1}, {0, 0}, {0, 0}, 1};
  const reel_dtype dts[3] = {REEL_F32, REEL_F16, REEL_BF16};
  for (int d = 0; d < 3; d++) {
    /* f32 weights: strict f32 GEMM; 16-bit weights: the gathered inputs are rounded to them too. */
    const double bound = dts[d] == REEL_F32 ? 1e-10 : dts[d] == REEL_F16 ? 2e-6 : 4e-5;
    conv_case(4, 9, 11, 8, 12, 3, 3, 3, plain, dts[d], 0, bound);
    conv_case(4, 9, 11, 8, 12, 3, 3, 3, plain, dts[d], 1, bound);
    conv_case(3, 10, 12, 6, 5, 1, 3, 3, down, dts[d], 0, bound);
    conv_case(5, 6, 7, 4, 8, 3, 1, 1, tstride, dts[d], 1, bound);
    conv_case(1, 5, 6, 16, 16, 1, 3, 3, up, dts[d], 0, bound);
    conv_case(3, 7, 9, 24, 3, 1, 1, 1, one, dts[d], 0, bound);
    conv_case(3, 7, 9, 24, 3, 1, 1, 1, one, dts[d], 1, bound);
  }
  /* Several gather tiles per frame and tiles across frames: 3x3x3 over 96 channels, 64x80 frames. */
  conv_case(4, 64, 80, 96, 96, 3, 3, 3, plain, REEL_BF16, 0, 4e-5);
}

static void test_clamp(void **state) {
  (void)state;
  reel_error err = {0};
  const int64_t n = 5003;
  float *x = malloc((size_t)n * 4);
  kr_fill(x, (size_t)n, 71, -3, 3);
  x[7] = NAN;
  x[8] = INFINITY;
  x[9] = -INFINITY;
  reel_tensor c = kr_tensor(cpu, REEL_F32, 1, &n, x), g = kr_tensor(gpu, REEL_F32, 1, &n, x);
  assert_int_equal(reel_op_clamp(cpu, &c, -1.0f, 1.5f, &c, &err), REEL_OK);
  assert_int_equal(reel_op_clamp(gpu, &g, -1.0f, 1.5f, &g, &err), REEL_OK);
  float *a = kr_download(cpu, &c), *b = kr_download(gpu, &g);
  assert_memory_equal(a, b, (size_t)n * 4);
  assert_true(isnan(b[7]));
  free(a);
  free(b);
  free(x);
  reel_tensor_free(&c);
  reel_tensor_free(&g);
}

static void test_noise(void **state) {
  (void)state;
  reel_error err = {0};
  static const uint64_t offs[] = {0, 1, 3, 6, 123456789};
  static const int64_t sizes[] = {1, 5, 4096, 16 * 21 * 60 * 104};
  for (size_t o = 0; o < sizeof offs / sizeof offs[0]; o++)
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
      const int64_t n = sizes[s];
      reel_tensor c, g;
      assert_int_equal(reel_tensor_new(cpu, REEL_F32, 1, &n, &c, &err), REEL_OK);
      assert_int_equal(reel_tensor_new(gpu, REEL_F32, 1, &n, &g, &err), REEL_OK);
      assert_int_equal(reel_op_noise(cpu, 2024, offs[o], &c, &err), REEL_OK);
      assert_int_equal(reel_op_noise(gpu, 2024, offs[o], &g, &err), REEL_OK);
      float *a = kr_download(cpu, &c), *b = kr_download(gpu, &g), *h = malloc((size_t)n * 4);
      reel_noise_fill(2024, offs[o], h, (size_t)n);
      if (memcmp(a, b, (size_t)n * 4) != 0 || memcmp(h, b, (size_t)n * 4) != 0) {
        size_t i = 0;
        while (i < (size_t)n && a[i] == b[i]) i++;
        fail_msg("noise offset %llu n %lld: GPU differs from CPU at %zu (%.9g vs %.9g)", (unsigned long long)offs[o],
                 (long long)n, i, i < (size_t)n ? b[i] : 0.0, i < (size_t)n ? a[i] : 0.0);
      }
      printf("# noise offset %llu n %lld: same bits on both backends and the host\n", (unsigned long long)offs[o],
             (long long)n);
      free(a);
      free(b);
      free(h);
      reel_tensor_free(&c);
      reel_tensor_free(&g);
    }
}

static void yuv_case(reel_dtype dt, int nv12) {
  reel_error err = {0};
  const int64_t F = 3, H = 36, W = 50;
  size_t n = (size_t)(F * 3 * H * W);
  float *rgb = malloc(n * 4);
  kr_fill(rgb, n, 81, -1.1f, 1.1f);
  int64_t rs[4] = {F, 3, H, W}, ys[3] = {F, H, W}, cs[3] = {F, H / 2, W / 2}, is[4] = {F, H / 2, W / 2, 2};
  reel_backend *be[2] = {cpu, gpu};
  unsigned char *bytes[2][2];
  size_t es = reel_dtype_size(dt), ny = (size_t)(F * H * W) * es, nc = ny / 4;
  for (int i = 0; i < 2; i++) {
    reel_tensor r = kr_tensor(be[i], REEL_F32, 4, rs, rgb), y, u, v, uv;
    assert_int_equal(reel_tensor_new(be[i], dt, 3, ys, &y, &err), REEL_OK);
    if (nv12) {
      reel_tensor a;
      assert_int_equal(reel_tensor_new(be[i], dt, 4, is, &uv, &err), REEL_OK);
      assert_int_equal(reel_tensor_slice(&uv, 3, 0, 1, &a, &err), REEL_OK);
      assert_int_equal(reel_tensor_reshape(&a, 3, cs, &u, &err), REEL_OK);
      assert_int_equal(reel_tensor_slice(&uv, 3, 1, 1, &a, &err), REEL_OK);
      assert_int_equal(reel_tensor_reshape(&a, 3, cs, &v, &err), REEL_OK);
    } else {
      assert_int_equal(reel_tensor_new(be[i], dt, 3, cs, &u, &err), REEL_OK);
      assert_int_equal(reel_tensor_new(be[i], dt, 3, cs, &v, &err), REEL_OK);
    }
    assert_int_equal(reel_op_rgb_to_yuv420(be[i], &r, -1.0f, 1.0f, &y, &u, &v, &err), REEL_OK);
    bytes[i][0] = malloc(ny);
    bytes[i][1] = malloc(2 * nc);
    assert_int_equal(reel_tensor_download(&y, bytes[i][0], ny, &err), REEL_OK);
    if (nv12) {
      assert_int_equal(reel_tensor_download(&uv, bytes[i][1], 2 * nc, &err), REEL_OK);
      reel_tensor_free(&uv);
    } else {
      assert_int_equal(reel_tensor_download(&u, bytes[i][1], nc, &err), REEL_OK);
      assert_int_equal(reel_tensor_download(&v, bytes[i][1] + nc, nc, &err), REEL_OK);
      reel_tensor_free(&u);
      reel_tensor_free(&v);
    }
    reel_tensor_free(&r);
    reel_tensor_free(&y);
  }
  assert_memory_equal(bytes[0][0], bytes[1][0], ny);
  assert_memory_equal(bytes[0][1], bytes[1][1], 2 * nc);
  printf("# rgb_to_yuv420 %s %s: same bytes on both backends\n", reel_dtype_name(dt), nv12 ? "nv12" : "i420");
  for (int i = 0; i < 2; i++) {
    free(bytes[i][0]);
    free(bytes[i][1]);
  }
  free(rgb);
}

static void test_colour(void **state) {
  (void)state;
  yuv_case(REEL_U8, 0);
  yuv_case(REEL_U8, 1);
  yuv_case(REEL_U16, 0);
  yuv_case(REEL_U16, 1);
}

int main(void) {
  reel_error err;
  reel_error_clear(&err);
  gpu = reel_backend_new_cuda(0, &err);
  if (!gpu) {
    char buf[700];
    printf("SKIP: no CUDA backend: %s\n", reel_error_format(&err, buf, sizeof buf));
    return 77;
  }
  cpu = reel_backend_new_cpu(0, &err);
  if (!cpu) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_conv3d),
      cmocka_unit_test(test_clamp),
      cmocka_unit_test(test_noise),
      cmocka_unit_test(test_colour),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  reel_backend_destroy(&gpu);
  reel_backend_destroy(&cpu);
  return rc;
}
