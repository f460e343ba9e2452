/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reel_op_rope on the CPU against the pairwise rotation written out naively:
 * contiguous and strided (head-split) inputs, in place, bf16 in/out, and
 * validation of the cos/sin tables.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reel/backend.h"
#include "testutil.h"

static void fill(float *x, size_t n, uint32_t seed) {
  uint32_t s = seed * 2654435761u + 7u;
  for (size_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    x[i] = (float)(s >> 8) / 16777216.0f * 4.0f - 2.0f;
  }
}

static reel_tensor make(reel_backend *be, reel_dtype dt, int nd, const int64_t *shape, const float *data) {
  reel_tensor t;
  reel_error err = {0};
  assert_int_equal(reel_tensor_new(be, dt, nd, shape, &t, &err), REEL_OK);
  size_t n = (size_t)reel_tensor_numel(&t), es = reel_dtype_size(dt);
  void *h = malloc(n * es);
  assert_int_equal(reel_convert(REEL_F32, data, dt, h, n), REEL_OK);
  assert_int_equal(reel_tensor_upload(&t, h, n * es, &err), REEL_OK);
  free(h);
  return t;
}

/* Table of angles pos * 0.37^i as a Wan-like layout: cos/sin [T, D/2]. */
static void tables(int64_t T, int64_t half, float *c, float *s) {
  for (int64_t t = 0; t < T; t++)
    for (int64_t i = 0; i < half; i++) {
      double a = (double)t * pow(0.37, (double)i);
      c[t * half + i] = (float)cos(a);
      s[t * half + i] = (float)sin(a);
    }
}

static void ref_rope(int64_t B, int64_t T, int64_t H, int64_t D, const float *x, const float *c, const float *s,
                     float *out) {
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t < T; t++)
      for (int64_t h = 0; h < H; h++)
        for (int64_t i = 0; i < D / 2; i++) {
          const float *xp = x + ((b * T + t) * H + h) * D;
          float *op = out + ((b * T + t) * H + h) * D;
          float cc = c[t * D / 2 + i], ss = s[t * D / 2 + i];
          float x0 = xp[2 * i], x1 = xp[2 * i + 1];
          float p0 = x0 * cc, p1 = x1 * ss, p2 = x0 * ss, p3 = x1 * cc;
          op[2 * i] = p0 - p1;
          op[2 * i + 1] = p2 + p3;
        }
}

static void test_rope_values(void **state) {
  (void)state;
  reel_error err = {0};
  reel_backend *be = reel_backend_new_cpu(2, &err);
  const int64_t B = 2, T = 15, H = 3, D = 20;
  size_t n = (size_t)(B * T * H * D);
  float *x = malloc(n * 4), *ref = malloc(n * 4), *c = malloc((size_t)(T * D / 2) * 4),
        *s = malloc((size_t)(T * D / 2) * 4);
  fill(x, n, 3);
  tables(T, D / 2, c, s);
  ref_rope(B, T, H, D, x, c, s, ref);
  int64_t sh[4] = {B, T, H, D}, st[2] = {T, D / 2};
  reel_tensor tx = make(be, REEL_F32, 4, sh, x), tc = make(be, REEL_F32, 2, st, c), ts = make(be, REEL_F32, 2, st, s);
  reel_tensor to;
  assert_int_equal(reel_tensor_new(be, REEL_F32, 4, sh, &to, &err), REEL_OK);
  assert_int_equal(reel_op_rope(be, &tx, &tc, &ts, &to, &err), REEL_OK);
  float *got = malloc(n * 4);
  assert_int_equal(reel_tensor_download(&to, got, n * 4, &err), REEL_OK);
  assert_true(tu_max_abs_diff(ref, got, n, NULL) == 0.0);
  /* In place gives the same. */
  assert_int_equal(reel_op_rope(be, &tx, &tc, &ts, &tx, &err), REEL_OK);
  assert_int_equal(reel_tensor_download(&tx, got, n * 4, &err), REEL_OK);
  assert_true(tu_max_abs_diff(ref, got, n, NULL) == 0.0);

  /* bf16 in and out: the rotation of the rounded input, rounded. */
  reel_tensor xb = make(be, REEL_BF16, 4, sh, x), ob;
  assert_int_equal(reel_tensor_new(be, REEL_BF16, 4, sh, &ob, &err), REEL_OK);
  assert_int_equal(reel_op_rope(be, &xb, &tc, &ts, &ob, &err), REEL_OK);
  uint16_t *hb = malloc(n * 2);
  assert_int_equal(reel_tensor_download(&ob, hb, n * 2, &err), REEL_OK);
  float *xr = malloc(n * 4);
  for (size_t i = 0; i < n; i++) xr[i] = reel_bf16_to_f32(reel_f32_to_bf16(x[i]));
  ref_rope(B, T, H, D, xr, c, s, ref);
  for (size_t i = 0; i < n; i++) assert_true(hb[i] == reel_f32_to_bf16(ref[i]));

  reel_tensor_free(&tx);
  reel_tensor_free(&tc);
  reel_tensor_free(&ts);
  reel_tensor_free(&to);
  reel_tensor_free(&xb);
  reel_tensor_free(&ob);
  free(x);
  free(ref);
  free(c);
  free(s);
  free(got);
  free(hb);
  free(xr);
  reel_backend_destroy(&be);
}

/* q of a [B, T, 2, H, D] fused projection: a strided view; only it changes. */
static void test_rope_strided(void **state) {
  (void)state;
  reel_error err = {0};
  reel_backend *be = reel_backend_new_cpu(2, &err);
  enum { B = 1, T = 6, H = 2, D = 8 };
  size_t n = (size_t)(B * T * 2 * H * D);
  float *x = malloc(n * 4), *q = malloc(n / 2 * 4), *ref = malloc(n / 2 * 4), c[T * D / 2], s[T * D / 2];
  fill(x, n, 11);
  tables(T, D / 2, c, s);
  for (int64_t t = 0; t < T; t++) memcpy(q + t * H * D, x + t * 2 * H * D, (size_t)(H * D) * 4);
  ref_rope(B, T, H, D, q, c, s, ref);
  int64_t sh[5] = {B, T, 2, H, D}, st[2] = {T, D / 2}, s4[4] = {B, T, H, D};
  reel_tensor tx = make(be, REEL_F32, 5, sh, x), tc = make(be, REEL_F32, 2, st, c), ts = make(be, REEL_F32, 2, st, s);
  reel_tensor v, v4;
  assert_int_equal(reel_tensor_slice(&tx, 2, 0, 1, &v, &err), REEL_OK);
  assert_int_equal(reel_tensor_reshape(&v, 4, s4, &v4, &err), REEL_OK);
  assert_int_equal(reel_op_rope(be, &v4, &tc, &ts, &v4, &err), REEL_OK);
  float *got = malloc(n * 4);
  assert_int_equal(reel_tensor_download(&tx, got, n * 4, &err), REEL_OK);
  for (int64_t t = 0; t < T; t++) {
    assert_memory_equal(got + t * 2 * H * D, ref + t * H * D, (size_t)(H * D) * 4);
    assert_memory_equal(got + t * 2 * H * D + H * D, x + t * 2 * H * D + H * D, (size_t)(H * D) * 4);
  }
  reel_tensor_free(&tx);
  reel_tensor_free(&tc);
  reel_tensor_free(&ts);
  free(x);
  free(q);
  free(ref);
  free(got);
  reel_backend_destroy(&be);
}

static void test_rope_validation(void **state) {
  (void)state;
  reel_error err = {0};
  reel_backend *be = reel_backend_new_cpu(1, &err);
  int64_t sh[4] = {1, 4, 2, 6}, good[2] = {4, 3}, bad[2] = {5, 3}, odd[4] = {1, 4, 2, 5};
  reel_tensor x, c, s, cb, xo, cb16;
  assert_int_equal(reel_tensor_new(be, REEL_F32, 4, sh, &x, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(be, REEL_F32, 2, good, &c, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(be, REEL_F32, 2, good, &s, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(be, REEL_F32, 2, bad, &cb, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(be, REEL_F32, 4, odd, &xo, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(be, REEL_BF16, 2, good, &cb16, &err), REEL_OK);
  assert_int_equal(reel_op_rope(be, &x, &cb, &s, &x, &err), REEL_EINVAL);
  assert_string_equal(err.field, "rope.cos");
  reel_error_clear(&err);
  assert_int_equal(reel_op_rope(be, &x, &c, &cb16, &x, &err), REEL_EUNSUPPORTED);
  assert_string_equal(err.field, "rope.sin");
  reel_error_clear(&err);
  assert_int_equal(reel_op_rope(be, &xo, &c, &s, &xo, &err), REEL_EINVAL);
  assert_string_equal(err.field, "rope.x");
  reel_tensor_free(&x);
  reel_tensor_free(&c);
  reel_tensor_free(&s);
  reel_tensor_free(&cb);
  reel_tensor_free(&xo);
  reel_tensor_free(&cb16);
  reel_backend_destroy(&be);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rope_values),
      cmocka_unit_test(test_rope_strided),
      cmocka_unit_test(test_rope_validation),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
