/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reel/opbench.h, never its speed: each benchmark reports the FLOP count its
 * shape implies and figures that agree with each other (gflops = flop / median,
 * min <= median), the path is the one the backend was told to take, bad
 * arguments are refused naming the argument, and nothing leaks when an
 * allocation fails part way (every point is tried).
 */
#include <string.h>

#include "reel/alloc.h"
#include "reel/backend.h"
#include "reel/opbench.h"
#include "testutil.h"

static void check(const reel_opbench_result *r, double flop, int reps) {
  assert_true(r->flop == flop);
  assert_int_equal(r->reps, reps);
  assert_true(r->seconds_median > 0 && r->seconds_min > 0 && r->seconds_min <= r->seconds_median);
  double want = flop / (r->seconds_median > 1e-9 ? r->seconds_median : 1e-9) * 1e-9;
  assert_true(r->gflops > 0 && r->gflops <= want * (1 + 1e-12) && r->gflops >= want * (1 - 1e-12));
  assert_true(strlen(r->path) > 0);
}

static void test_figures_and_paths(void **state) {
  (void)state;
  reel_error err;
  reel_error_clear(&err);
  reel_backend *b = reel_backend_new_cpu(1, &err);
  assert_non_null(b);
  reel_opbench_result r;
  assert_int_equal(reel_backend_set_option(b, "matmul", "portable", &err), REEL_OK);
  assert_int_equal(reel_opbench_matmul(b, 8, 24, 40, REEL_BF16, 3, &r, &err), REEL_OK);
  check(&r, 2.0 * 8 * 24 * 40, 3);
  assert_string_equal(r.path, "cpu-portable-4x8");
  assert_int_equal(reel_backend_set_option(b, "attention", "portable", &err), REEL_OK);
  assert_int_equal(reel_opbench_attention(b, 2, 12, 3, 8, REEL_F32, 2, &r, &err), REEL_OK);
  check(&r, 4.0 * 2 * 3 * 12 * 12 * 8, 2);
  assert_string_equal(r.path, "cpu-attention-portable");
  assert_int_equal(reel_opbench_conv3d(b, 4, 6, 5, 3, 7, 3, REEL_F32, 1, &r, &err), REEL_OK);
  check(&r, 2.0 * 2 * 6 * 5 * 7 * 3 * 27, 1);
  assert_string_equal(r.path, "cpu-conv-im2col-gemm");
  reel_backend_destroy(&b);
}

static void test_bad_arguments(void **state) {
  (void)state;
  reel_error err;
  reel_error_clear(&err);
  reel_backend *b = reel_backend_new_cpu(1, &err);
  reel_opbench_result r;
  reel_error_clear(&err);
  assert_int_equal(reel_opbench_matmul(b, 4, 4, 4, REEL_F32, 0, &r, &err), REEL_ERANGE);
  assert_string_equal(err.field, "reps");
  reel_error_clear(&err);
  assert_int_equal(reel_opbench_matmul(b, 4, 4, 4, REEL_F32, REEL_OPBENCH_MAX_REPS + 1, &r, &err), REEL_ERANGE);
  reel_error_clear(&err);
  assert_int_equal(reel_opbench_matmul(b, 0, 4, 4, REEL_F32, 1, &r, &err), REEL_ERANGE);
  assert_string_equal(err.field, "shape");
  reel_error_clear(&err);
  assert_int_equal(reel_opbench_matmul(b, (int64_t)1 << 20, (int64_t)1 << 20, 4, REEL_F32, 1, &r, &err), REEL_ERANGE);
  reel_error_clear(&err);
  assert_int_equal(reel_opbench_attention(b, 1, -3, 2, 8, REEL_F32, 1, &r, &err), REEL_ERANGE);
  reel_error_clear(&err);
  assert_int_equal(reel_opbench_conv3d(b, 2, 4, 4, 2, 2, 3, REEL_F32, 1, &r, &err), REEL_ERANGE); /* frames < k */
  reel_error_clear(&err);
  assert_int_equal(reel_opbench_conv3d(b, 4, 4, 4, 2, 2, 2, REEL_F32, 1, &r, &err), REEL_ERANGE); /* even k */
  /* A dtype the op refuses comes back as the op's error. */
  reel_error_clear(&err);
  assert_int_equal(reel_opbench_matmul(b, 4, 4, 4, REEL_I32, 1, &r, &err) != REEL_OK, 1);
  reel_error_clear(&err);
  assert_int_equal(reel_opbench_matmul(NULL, 4, 4, 4, REEL_F32, 1, &r, &err), REEL_EINVAL);
  reel_backend_destroy(&b);
}

/* Every allocation in turn fails: an error comes back, nothing leaks (ASan), the backend stays usable. */
static void test_allocation_failures(void **state) {
  (void)state;
  reel_error err;
  reel_error_clear(&err);
  reel_backend *b = reel_backend_new_cpu(1, &err);
  reel_opbench_result r;
  for (long n = 0;; n++) {
    reel_alloc_fail_after(n, 0);
    reel_status st = reel_opbench_conv3d(b, 3, 4, 4, 2, 2, 3, REEL_BF16, 1, &r, &err);
    long failures = reel_alloc_failures();
    reel_alloc_fail_after(-1, 0);
    if (failures == 0) {
      assert_int_equal(st, REEL_OK);
      break;
    }
    assert_int_not_equal(st, REEL_OK);
  }
  assert_int_equal(reel_opbench_matmul(b, 4, 4, 4, REEL_F32, 1, &r, &err), REEL_OK);
  reel_backend_destroy(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_figures_and_paths),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_allocation_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
