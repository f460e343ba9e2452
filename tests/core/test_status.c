/* SPDX-License-Identifier: Apache-2.0 */
/* Status codes and the error context. */
#include <string.h>

#include "reel/status.h"
#include "testutil.h"

static void test_strerror_names(void **state) {
  (void)state;
  assert_string_equal(reel_strerror(REEL_OK), "success");
  assert_string_equal(reel_strerror(REEL_ENOMEM), "out of memory");
  assert_string_equal(reel_status_name(REEL_ELIMIT), "ELIMIT");
  assert_string_equal(reel_strerror((reel_status)-9999), "unknown error");
  assert_string_equal(reel_status_name((reel_status)12345), "UNKNOWN");
  reel_status st;
  assert_int_equal(reel_status_from_name("ECANCELED", &st), REEL_OK);
  assert_int_equal(st, REEL_ECANCELED);
  assert_int_equal(reel_status_from_name("NOPE", &st), REEL_ENOTFOUND);
}

static void test_codes_unique_and_negative(void **state) {
  (void)state;
  static const int codes[] = {
#define X(n, v, m) v,
      REEL_STATUS_MAP(X)
#undef X
  };
  size_t n = sizeof codes / sizeof codes[0];
  assert_int_equal(codes[0], 0);
  for (size_t i = 1; i < n; i++) {
    assert_true(codes[i] < 0);
    for (size_t j = 0; j < i; j++) assert_int_not_equal(codes[i], codes[j]);
    /* Every code round-trips through its name. */
    reel_status back;
    assert_int_equal(reel_status_from_name(reel_status_name((reel_status)codes[i]), &back), REEL_OK);
    assert_int_equal(back, codes[i]);
  }
}

static void test_error_first_wins(void **state) {
  (void)state;
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_error_set(&err, REEL_ERANGE, "job.frames", "must be in %d..%d, got %d", 1, 1025, 2000),
                   REEL_ERANGE);
  assert_int_equal(reel_error_set(&err, REEL_EIO, "other", "cleanup failed"), REEL_EIO);
  assert_int_equal(err.code, REEL_ERANGE);
  assert_string_equal(err.field, "job.frames");
  assert_string_equal(err.msg, "must be in 1..1025, got 2000");
  char buf[256];
  assert_string_equal(reel_error_format(&err, buf, sizeof buf), "job.frames: must be in 1..1025, got 2000 (ERANGE)");
  reel_error_reset(&err, REEL_EIO, NULL, "disk");
  assert_string_equal(reel_error_format(&err, buf, sizeof buf), "disk (EIO)");
  /* NULL error context is allowed everywhere. */
  assert_int_equal(reel_error_set(NULL, REEL_EINVAL, "x", "y"), REEL_EINVAL);
  reel_error_clear(NULL);
}

static void test_error_prefix(void **state) {
  (void)state;
  reel_error err;
  reel_error_clear(&err);
  reel_error_set(&err, REEL_ENOTFOUND, "blocks.0.attn1.to_q.weight", "missing tensor");
  reel_error_prefix_field(&err, "transformer", '/');
  assert_string_equal(err.field, "transformer/blocks.0.attn1.to_q.weight");
  /* Long fields are truncated, never overflow. */
  char longp[300];
  memset(longp, 'a', sizeof longp - 1);
  longp[sizeof longp - 1] = '\0';
  reel_error_prefix_field(&err, longp, '/');
  assert_int_equal(strlen(err.field), REEL_ERROR_FIELD_MAX - 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_strerror_names),
      cmocka_unit_test(test_codes_unique_and_negative),
      cmocka_unit_test(test_error_first_wins),
      cmocka_unit_test(test_error_prefix),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
