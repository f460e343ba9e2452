/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The C sample client (samples/c/submit.c) against a real broker and worker: it
 * submits, prints progress and state events, and prints the final job record;
 * a spec the broker rejects exits 1 with the broker's code and field.
 */
#include "queue_env.h"

static int setup(void **state) {
  qenv *e = calloc(1, sizeof *e);
  qe_init(e);
  qe_start_broker(e);
  qe_start_worker(e, "c", NULL);
  *state = e;
  return 0;
}

static int teardown(void **state) {
  qenv *e = *state;
  qe_fini(e);
  free(e);
  return 0;
}

static void test_c_sample(void **state) {
  qenv *e = *state;
  const char *sample = getenv("REEL_SAMPLE_SUBMIT");
  assert_non_null(sample);
  char cmd[2000], *out = NULL;
  snprintf(cmd, sizeof cmd, "'%s' --broker %s --frames 6 --seed 11 'a prompt from C' 2>'%s/c.err'", sample, e->endpoint,
           e->dir);
  int rc = tu_run(cmd, &out);
  char errpath[700];
  snprintf(errpath, sizeof errpath, "%s/c.err", e->dir);
  char *err = tu_read_file(errpath, NULL);
  if (rc != 0) fail_msg("sample exited %d: %s %s", rc, out, err);
  json_error_t je;
  json_t *rec = json_loads(out, 0, &je);
  if (!rec) fail_msg("not JSON: %s", out);
  assert_string_equal(json_string_value(json_object_get(rec, "state")), "succeeded");
  assert_int_equal(json_integer_value(json_object_get(rec, "seed")), 11);
  const char *url = json_string_value(json_object_get(json_array_get(json_object_get(rec, "outputs"), 0), "url"));
  assert_non_null(url);
  struct stat sb;
  assert_int_equal(stat(url + strlen("file://"), &sb), 0);
  assert_true(sb.st_size > 0);
  assert_non_null(strstr(err, "accepted"));
  assert_non_null(strstr(err, "succeeded"));
  json_decref(rec);
  free(out);
  free(err);
  snprintf(cmd, sizeof cmd, "'%s' --broker %s --frames 99999 x 2>&1", sample, e->endpoint);
  assert_int_equal(tu_run(cmd, &out), 1);
  assert_non_null(strstr(out, "ERANGE"));
  assert_non_null(strstr(out, "job.frames"));
  free(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test_setup_teardown(test_c_sample, setup, teardown)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
