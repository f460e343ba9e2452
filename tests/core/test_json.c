/* SPDX-License-Identifier: Apache-2.0 */
/* Validating JSON accessors: types, ranges, missing fields, unknown keys, errors naming the field. */
#include <string.h>

#include "reel/json.h"
#include "testutil.h"

static json_t *parse(const char *s) {
  json_t *v = NULL;
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_json_parse(s, strlen(s), "t", &v, &err), REEL_OK);
  return v;
}

static void test_parse_errors(void **state) {
  (void)state;
  json_t *v = NULL;
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_json_parse("{\"a\":1,\"a\":2}", 13, "spec", &v, &err), REEL_EFORMAT);
  assert_null(v);
  assert_string_equal(err.field, "spec");
  reel_error_clear(&err);
  assert_int_equal(reel_json_parse("{\"a\":1} x", 9, "spec", &v, &err), REEL_EFORMAT);
  reel_error_clear(&err);
  assert_int_equal(reel_json_parse("{\"a\":", 5, "spec", &v, &err), REEL_EFORMAT);
  assert_non_null(strstr(err.msg, "line 1"));
}

static void test_getters(void **state) {
  (void)state;
  json_t *o = parse("{\"n\":5,\"r\":2.5,\"f\":3.0,\"s\":\"hi\",\"b\":true,\"big\":\"18446744073709551615\",\"nul\":null}");
  reel_error err;
  reel_error_clear(&err);
  int64_t n = -1;
  assert_int_equal(reel_json_get_int(o, "job", "n", REEL_JSON_REQUIRED, 1, 10, &n, &err), REEL_OK);
  assert_int_equal(n, 5);
  assert_int_equal(reel_json_get_int(o, "job", "f", REEL_JSON_REQUIRED, 1, 10, &n, &err), REEL_OK);
  assert_int_equal(n, 3);
  assert_int_equal(reel_json_get_int(o, "job", "r", REEL_JSON_REQUIRED, 1, 10, &n, &err), REEL_EINVAL);
  assert_string_equal(err.field, "job.r");
  reel_error_clear(&err);
  assert_int_equal(reel_json_get_int(o, "job", "n", REEL_JSON_REQUIRED, 6, 10, &n, &err), REEL_ERANGE);
  assert_string_equal(err.msg, "must be in 6..10, got 5");
  reel_error_clear(&err);
  n = 42;
  assert_int_equal(reel_json_get_int(o, "job", "absent", REEL_JSON_OPTIONAL, 0, 1, &n, &err), REEL_OK);
  assert_int_equal(reel_json_get_int(o, "job", "nul", REEL_JSON_OPTIONAL, 0, 1, &n, &err), REEL_OK);
  assert_int_equal(n, 42);
  assert_int_equal(reel_json_get_int(o, "job", "absent", REEL_JSON_REQUIRED, 0, 1, &n, &err), REEL_EINVAL);
  assert_string_equal(err.field, "job.absent");
  reel_error_clear(&err);
  uint64_t u = 0;
  assert_int_equal(reel_json_get_u64(o, "job", "big", REEL_JSON_REQUIRED, &u, &err), REEL_OK);
  assert_true(u == UINT64_MAX);
  double d = 0;
  assert_int_equal(reel_json_get_double(o, "job", "r", REEL_JSON_REQUIRED, 0, 3, &d, &err), REEL_OK);
  assert_true(d == 2.5);
  assert_int_equal(reel_json_get_double(o, "job", "s", REEL_JSON_REQUIRED, 0, 3, &d, &err), REEL_EINVAL);
  reel_error_clear(&err);
  const char *s = NULL;
  assert_int_equal(reel_json_get_string(o, "job", "s", REEL_JSON_REQUIRED, 2, &s, &err), REEL_OK);
  assert_string_equal(s, "hi");
  assert_int_equal(reel_json_get_string(o, "job", "s", REEL_JSON_REQUIRED, 1, &s, &err), REEL_ELIMIT);
  reel_error_clear(&err);
  int b = 0;
  assert_int_equal(reel_json_get_bool(o, "job", "b", REEL_JSON_REQUIRED, &b, &err), REEL_OK);
  assert_int_equal(b, 1);
  static const char *const choices[] = {"lo", "hi", NULL};
  int idx = -1;
  assert_int_equal(reel_json_get_enum(o, "job", "s", REEL_JSON_REQUIRED, choices, &idx, &err), REEL_OK);
  assert_int_equal(idx, 1);
  static const char *const allowed[] = {"n", "r", NULL};
  assert_int_equal(reel_json_check_keys(o, "job", allowed, &err), REEL_EINVAL);
  assert_string_equal(err.msg, "unknown field");
  json_decref(o);
}

static void test_not_object(void **state) {
  (void)state;
  json_t *a = parse("[1,2]");
  reel_error err;
  reel_error_clear(&err);
  int64_t n;
  assert_int_equal(reel_json_get_int(a, "job", "n", REEL_JSON_REQUIRED, 0, 1, &n, &err), REEL_EFORMAT);
  json_decref(a);
}

static void test_load_file(void **state) {
  (void)state;
  char dir[256], path[300];
  tu_mkdtemp(dir, sizeof dir);
  snprintf(path, sizeof path, "%s/c.json", dir);
  tu_write_file(path, "{\"dim\": 16}", 11);
  json_t *v = NULL;
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_json_load_file(path, 1 << 20, &v, &err), REEL_OK);
  json_decref(v);
  assert_int_equal(reel_json_load_file(path, 4, &v, &err), REEL_ELIMIT);
  reel_error_clear(&err);
  snprintf(path, sizeof path, "%s/missing.json", dir);
  assert_int_equal(reel_json_load_file(path, 1 << 20, &v, &err), REEL_ENOTFOUND);
  tu_rmtree(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_errors),
      cmocka_unit_test(test_getters),
      cmocka_unit_test(test_not_object),
      cmocka_unit_test(test_load_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
