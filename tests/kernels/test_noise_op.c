/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reel_op_noise on the CPU: the same bits as the host generator reel_noise_fill()
 * for any offset (block-aligned or not) and size, independent of the thread count;
 * output shape does not matter (the stream is flat); and the argument checks
 * (dtype, layout, offset range).
 */
#include <stdlib.h>
#include <string.h>

#include "reel/backend.h"
#include "reel/noise.h"
#include "testutil.h"

static void check_stream(reel_backend *be, uint64_t seed, uint64_t offset, int64_t n) {
  reel_error err = {0};
  reel_tensor t;
  int64_t shape[2] = {1, n};
  assert_int_equal(reel_tensor_new(be, REEL_F32, 2, shape, &t, &err), REEL_OK);
  assert_int_equal(reel_op_noise(be, seed, offset, &t, &err), REEL_OK);
  float *got = malloc((size_t)n * 4), *want = malloc((size_t)n * 4);
  assert_int_equal(reel_tensor_download(&t, got, (size_t)n * 4, &err), REEL_OK);
  reel_noise_fill(seed, offset, want, (size_t)n);
  assert_memory_equal(got, want, (size_t)n * 4);
  free(got);
  free(want);
  reel_tensor_free(&t);
}

static void test_matches_host(void **state) {
  (void)state;
  reel_error err = {0};
  const int threads[2] = {1, 2};
  for (int ti = 0; ti < 2; ti++) {
    reel_backend *be = reel_backend_new_cpu(threads[ti], &err);
    assert_non_null(be);
    static const uint64_t offs[] = {0, 1, 2, 3, 4, 5, 1000003};
    static const int64_t sizes[] = {1, 2, 3, 4, 5, 7, 64, 16385, 70001};
    for (size_t o = 0; o < sizeof offs / sizeof offs[0]; o++)
      for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) check_stream(be, 42, offs[o], sizes[s]);
    check_stream(be, 0xfedcba9876543210ull, ((uint64_t)1 << 40) + 3, 1001);
    reel_backend_destroy(&be);
  }
}

static void test_shape_is_flat(void **state) {
  (void)state;
  reel_error err = {0};
  reel_backend *be = reel_backend_new_cpu(2, &err);
  int64_t s4[4] = {2, 3, 5, 7}, s1[1] = {210};
  reel_tensor a, b;
  assert_int_equal(reel_tensor_new(be, REEL_F32, 4, s4, &a, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(be, REEL_F32, 1, s1, &b, &err), REEL_OK);
  assert_int_equal(reel_op_noise(be, 7, 9, &a, &err), REEL_OK);
  assert_int_equal(reel_op_noise(be, 7, 9, &b, &err), REEL_OK);
  float x[210], y[210];
  assert_int_equal(reel_tensor_download(&a, x, sizeof x, &err), REEL_OK);
  assert_int_equal(reel_tensor_download(&b, y, sizeof y, &err), REEL_OK);
  assert_memory_equal(x, y, sizeof x);
  /* Different seeds differ. */
  assert_int_equal(reel_op_noise(be, 8, 9, &b, &err), REEL_OK);
  assert_int_equal(reel_tensor_download(&b, y, sizeof y, &err), REEL_OK);
  assert_true(memcmp(x, y, sizeof x) != 0);
  reel_tensor_free(&a);
  reel_tensor_free(&b);
  reel_backend_destroy(&be);
}

static void test_errors(void **state) {
  (void)state;
  reel_error err = {0};
  reel_backend *be = reel_backend_new_cpu(1, &err);
  int64_t s[2] = {4, 6};
  reel_tensor h, f;
  assert_int_equal(reel_tensor_new(be, REEL_BF16, 2, s, &h, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(be, REEL_F32, 2, s, &f, &err), REEL_OK);
  reel_error_clear(&err);
  assert_int_equal(reel_op_noise(be, 1, 0, &h, &err), REEL_EUNSUPPORTED);
  assert_string_equal(err.field, "noise.out");
  reel_tensor tr;
  assert_int_equal(reel_tensor_transpose(&f, 0, 1, &tr, &err), REEL_OK);
  reel_error_clear(&err);
  assert_int_equal(reel_op_noise(be, 1, 0, &tr, &err), REEL_EUNSUPPORTED);
  assert_string_equal(err.field, "noise.out");
  reel_error_clear(&err);
  assert_int_equal(reel_op_noise(be, 1, ((uint64_t)1 << 62) - 23, &f, &err), REEL_ERANGE);
  assert_string_equal(err.field, "noise.offset");
  assert_int_equal(reel_op_noise(be, 1, ((uint64_t)1 << 62) - 24, &f, &err), REEL_OK);
  reel_error_clear(&err);
  assert_int_equal(reel_op_noise(NULL, 1, 0, &f, &err), REEL_EINVAL);
  reel_tensor_free(&h);
  reel_tensor_free(&f);
  reel_backend_destroy(&be);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_matches_host),
      cmocka_unit_test(test_shape_is_flat),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
