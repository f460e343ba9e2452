/* SPDX-License-Identifier: Apache-2.0 */
/* Logger rendering: logfmt and JSON lines, escaping, levels. */
#include <jansson.h>
#include <string.h>
#include <unistd.h>

#include "reel/log.h"
#include "testutil.h"

static void test_text(void **state) {
  (void)state;
  char buf[512];
  reel_log_render(REEL_LOG_TEXT, 0, REEL_LOG_INFO, "encoder", "job-1", "clip encoded",
                  "frames=12 codec=h264 note=\"two words\"", buf, sizeof buf);
  assert_string_equal(buf, "ts=1970-01-01T00:00:00.000Z level=info module=encoder job=job-1 msg=\"clip encoded\" "
                           "frames=12 codec=h264 note=\"two words\"");
}

static void test_json(void **state) {
  (void)state;
  char buf[512];
  reel_log_render(REEL_LOG_JSON, 1500, REEL_LOG_ERROR, "queue", NULL, "bad \"frame\"\n",
                  "size=12.5 ok=true name=x id=\"007\" neg=-3 lead=01", buf, sizeof buf);
  json_error_t je;
  json_t *o = json_loads(buf, 0, &je);
  assert_non_null(o);
  assert_string_equal(json_string_value(json_object_get(o, "level")), "error");
  assert_string_equal(json_string_value(json_object_get(o, "ts")), "1970-01-01T00:00:01.500Z");
  assert_string_equal(json_string_value(json_object_get(o, "msg")), "bad \"frame\"\n");
  assert_true(json_is_real(json_object_get(o, "size")));
  assert_true(json_is_true(json_object_get(o, "ok")));
  assert_string_equal(json_string_value(json_object_get(o, "id")), "007");
  assert_int_equal(json_integer_value(json_object_get(o, "neg")), -3);
  assert_string_equal(json_string_value(json_object_get(o, "lead")), "01");
  assert_null(json_object_get(o, "job"));
  json_decref(o);
}

static void test_truncation_stays_valid(void **state) {
  (void)state;
  char buf[64];
  char fields[400];
  memset(fields, 'k', sizeof fields);
  memcpy(fields, "a=", 2);
  fields[sizeof fields - 1] = '\0';
  size_t n = reel_log_render(REEL_LOG_JSON, 0, REEL_LOG_INFO, "m", NULL, "x", fields, buf, sizeof buf);
  assert_true(n < sizeof buf);
  assert_int_equal(buf[n - 1], '}');
}

static void test_levels_and_write(void **state) {
  (void)state;
  reel_log_level l;
  assert_int_equal(reel_log_level_parse("DEBUG", &l), REEL_OK);
  assert_int_equal(l, REEL_LOG_DEBUG);
  assert_int_equal(reel_log_level_parse("loud", &l), REEL_EINVAL);
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  reel_logger lg;
  reel_logger_init(&lg, REEL_LOG_INFO, REEL_LOG_TEXT, fds[1]);
  assert_false(reel_log_enabled(&lg, REEL_LOG_DEBUG));
  reel_log(&lg, REEL_LOG_DEBUG, "m", NULL, "hidden", NULL);
  reel_log(&lg, REEL_LOG_WARN, "m", NULL, "shown", "n=%d", 7);
  close(fds[1]);
  char buf[512];
  ssize_t r = read(fds[0], buf, sizeof buf - 1);
  close(fds[0]);
  assert_true(r > 0);
  buf[r] = '\0';
  assert_null(strstr(buf, "hidden"));
  assert_non_null(strstr(buf, "msg=shown n=7\n"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_text),
      cmocka_unit_test(test_json),
      cmocka_unit_test(test_truncation_stays_valid),
      cmocka_unit_test(test_levels_and_write),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
