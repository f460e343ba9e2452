/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pyzmq-only sample client (samples/python/reel_client.py) against a real
 * broker and worker: it submits, follows events and prints the final record;
 * a bad spec comes back as the broker's error naming the field. Skipped (exit
 * 77) when python3 with pyzmq is not installed.
 */
#include "queue_env.h"

static int setup(void **state) {
  qenv *e = calloc(1, sizeof *e);
  qe_init(e);
  qe_start_broker(e);
  qe_start_worker(e, "py", NULL);
  *state = e;
  return 0;
}

static int teardown(void **state) {
  qenv *e = *state;
  qe_fini(e);
  free(e);
  return 0;
}

static void test_python_client(void **state) {
  qenv *e = *state;
  char cmd[2000], *out = NULL;
  snprintf(cmd, sizeof cmd,
           "python3 '%s/samples/python/reel_client.py' --broker %s --frames 8 --size 64x48 "
           "--seed 7 'a python prompt' 2>'%s/py.err'",
           tu_source_dir(), e->endpoint, e->dir);
  int rc = tu_run(cmd, &out);
  char errpath[700];
  snprintf(errpath, sizeof errpath, "%s/py.err", e->dir);
  char *err = tu_read_file(errpath, NULL);
  if (rc != 0) fail_msg("reel_client.py exited %d: %s %s", rc, out, err);
  json_error_t je;
  json_t *rec = json_loads(out, 0, &je);
  if (!rec) fail_msg("not JSON: %s", out);
  assert_string_equal(json_string_value(json_object_get(rec, "state")), "succeeded");
  assert_int_equal(json_integer_value(json_object_get(rec, "seed")), 7);
  assert_string_equal(json_string_value(json_object_get(json_object_get(rec, "spec"), "prompt")), "a python prompt");
  const char *url = json_string_value(json_object_get(json_array_get(json_object_get(rec, "outputs"), 0), "url"));
  assert_non_null(url);
  struct stat sb;
  assert_int_equal(stat(url + strlen("file://"), &sb), 0);
  assert_true(sb.st_size > 0);
  /* It followed the job: the events were printed. */
  assert_non_null(strstr(err, "accepted"));
  assert_non_null(strstr(err, "succeeded"));
  json_decref(rec);
  free(out);
  free(err);
  /* A spec the broker rejects: exit 1 with the broker's code and field. */
  snprintf(cmd, sizeof cmd, "python3 '%s/samples/python/reel_client.py' --broker %s --frames 99999 x 2>&1",
           tu_source_dir(), e->endpoint);
  assert_int_equal(tu_run(cmd, &out), 1);
  assert_non_null(strstr(out, "ERANGE"));
  assert_non_null(strstr(out, "job.frames"));
  free(out);
}

int main(void) {
  if (system("python3 -c 'import zmq' >/dev/null 2>&1") != 0) {
    fprintf(stderr, "python3 with pyzmq is not installed: skipped\n");
    return 77;
  }
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_python_client, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
