/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reel_op_lincomb on the CPU: the double-accumulated, once-rounded combination
 * the host scheduler computes (bit for bit), output aliasing an input, and the
 * limits on n, dtypes and sizes.
 */
#include <math.h>
#include <stdlib.h>

#include "reel/backend.h"
#include "testutil.h"

static void fill(float *x, size_t n, uint32_t seed) {
  uint32_t s = seed * 2654435761u + 5u;
  for (size_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    x[i] = (float)(s >> 8) / 16777216.0f * 6.0f - 3.0f;
  }
}

static void test_values(void **state) {
  (void)state;
  reel_error err = {0};
  reel_backend *be = reel_backend_new_cpu(2, &err);
  const size_t n = 20001; /* several chunks and a ragged end */
  enum { K = 5 };
  float *h[K], *ref = malloc(n * 4), *got = malloc(n * 4);
  reel_tensor t[K];
  const reel_tensor *tp[K];
  double coef[K] = {0.25, -1.5, 1e-3, 3.0, -0.7};
  int64_t shape[2] = {3, (int64_t)n / 3};
  int64_t flat[1] = {(int64_t)n};
  for (int k = 0; k < K; k++) {
    h[k] = malloc(n * 4);
    fill(h[k], n, (uint32_t)k + 1);
    /* Same element count, different shapes: the op is flat. */
    if (k == 0) {
      assert_int_equal(reel_tensor_new(be, REEL_F32, 2, shape, &t[k], &err), REEL_OK);
    } else {
      assert_int_equal(reel_tensor_new(be, REEL_F32, 1, flat, &t[k], &err), REEL_OK);
    }
    assert_int_equal(reel_tensor_upload(&t[k], h[k], n * 4, &err), REEL_OK);
    tp[k] = &t[k];
  }
  for (size_t i = 0; i < n; i++) {
    double acc = 0.0;
    for (int k = 0; k < K; k++) acc += coef[k] * (double)h[k][i];
    ref[i] = (float)acc;
  }
  /* Into the first input (in place). */
  assert_int_equal(reel_op_lincomb(be, K, coef, tp, &t[0], &err), REEL_OK);
  assert_int_equal(reel_tensor_download(&t[0], got, n * 4, &err), REEL_OK);
  assert_memory_equal(got, ref, n * 4);
  for (int k = 0; k < K; k++) {
    reel_tensor_free(&t[k]);
    free(h[k]);
  }
  free(ref);
  free(got);
  reel_backend_destroy(&be);
}

static void test_validation(void **state) {
  (void)state;
  reel_error err = {0};
  reel_backend *be = reel_backend_new_cpu(1, &err);
  int64_t s4[1] = {4}, s5[1] = {5};
  reel_tensor a, b, c16;
  assert_int_equal(reel_tensor_new(be, REEL_F32, 1, s4, &a, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(be, REEL_F32, 1, s5, &b, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(be, REEL_BF16, 1, s4, &c16, &err), REEL_OK);
  const reel_tensor *x[9] = {&a, &a, &a, &a, &a, &a, &a, &a, &a};
  double coef[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
  assert_int_equal(reel_op_lincomb(be, 9, coef, x, &a, &err), REEL_ERANGE);
  assert_string_equal(err.field, "lincomb.n");
  reel_error_clear(&err);
  const reel_tensor *xb[2] = {&a, &b};
  assert_int_equal(reel_op_lincomb(be, 2, coef, xb, &a, &err), REEL_EINVAL);
  assert_string_equal(err.field, "lincomb.x");
  reel_error_clear(&err);
  const reel_tensor *xc[1] = {&c16};
  assert_int_equal(reel_op_lincomb(be, 1, coef, xc, &a, &err), REEL_EUNSUPPORTED);
  reel_error_clear(&err);
  double bad[1] = {NAN};
  assert_int_equal(reel_op_lincomb(be, 1, bad, x, &a, &err), REEL_EINVAL);
  assert_string_equal(err.field, "lincomb.coef");
  reel_tensor_free(&a);
  reel_tensor_free(&b);
  reel_tensor_free(&c16);
  reel_backend_destroy(&be);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_values),
      cmocka_unit_test(test_validation),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
