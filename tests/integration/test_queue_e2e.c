/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The queue end to end with real processes on loopback: `reel broker`, `reel
 * worker` (real encode, real files), the C client. 200 jobs over 4 workers each
 * succeed exactly once with every file present; a worker killed with SIGKILL
 * mid-job loses the job to another worker; a broker killed with SIGKILL (and a
 * torn record appended to its journal) comes back with every accepted job, and
 * the jobs complete; cancel of queued and running jobs; idempotent resubmit and
 * `reel status --json` through the CLI; malformed frames against the process.
 */
#include <zmq.h>

#include "queue_env.h"
#include "reel/worker_conn.h"

static int setup(void **state) {
  qenv *e = calloc(1, sizeof *e);
  qe_init(e);
  *state = e;
  return 0;
}

static int teardown(void **state) {
  qenv *e = *state;
  qe_fini(e);
  free(e);
  return 0;
}

static int file_exists(const char *url) {
  if (strncmp(url, "file://", 7) != 0) return 0;
  struct stat sb;
  return stat(url + 7, &sb) == 0 && sb.st_size > 0;
}

static void test_200_jobs_4_workers(void **state) {
  qenv *e = *state;
  /* "Exactly once" needs leases that a starved worker on a loaded 2-core machine does not lose. */
  e->heartbeat = "1000";
  qe_start_broker(e);
  for (int i = 0; i < 4; i++) {
    char name[16];
    snprintf(name, sizeof name, "w%d", i);
    qe_start_worker(e, name, NULL);
  }
  reel_client *c = qe_client(e, NULL);
  enum { N = 200 };
  char *ids[N];
  for (int i = 0; i < N; i++) {
    char spec[160];
    snprintf(spec, sizeof spec,
             "{\"prompt\":\"job %d\",\"model\":\"builtin:testsrc\",\"frames\":6,\"width\":64,"
             "\"height\":48}",
             i);
    ids[i] = qe_submit(c, spec);
  }
  int per_worker[4] = {0};
  for (int i = 0; i < N; i++) {
    json_t *job = qe_wait_state(c, ids[i], NULL, 120000);
    if (strcmp(qe_state(job), "succeeded") != 0) fail_msg("job %d is %s", i, qe_state(job));
    /* Exactly once: one attempt, one history entry, one output that exists. */
    assert_int_equal(json_integer_value(json_object_get(job, "attempts")), 1);
    json_t *hist = json_object_get(job, "history");
    assert_int_equal(json_array_size(hist), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(hist, 0), "outcome")), "succeeded");
    const char *w = json_string_value(json_object_get(json_array_get(hist, 0), "worker"));
    per_worker[w[1] - '0']++;
    json_t *outs = json_object_get(job, "outputs");
    assert_int_equal(json_array_size(outs), 1);
    const char *url = json_string_value(json_object_get(json_array_get(outs, 0), "url"));
    assert_non_null(strstr(url, ids[i]));
    if (!file_exists(url)) fail_msg("output of job %d missing: %s", i, url);
    json_decref(job);
  }
  /* Every worker took part. */
  for (int i = 0; i < 4; i++)
    if (per_worker[i] == 0) fail_msg("worker w%d ran no job", i);
  /* Exactly N files in storage. */
  char cmd[700], *out = NULL;
  snprintf(cmd, sizeof cmd, "ls '%s' | grep -c '\\.mp4$'", e->storage);
  assert_int_equal(tu_run(cmd, &out), 0);
  assert_int_equal(atoi(out), N);
  free(out);
  for (int i = 0; i < N; i++) free(ids[i]);
  reel_client_destroy(&c);
}

/* A job long enough to be killed or canceled in the middle (about 4 s of encoding). */
#define LONG_JOB "{\"prompt\":\"long\",\"frames\":1025,\"width\":640,\"height\":480}"

/* Waits until a running job has reported progress (so its worker is really working on it). */
static json_t *wait_progress(reel_client *c, const char *id) {
  int64_t until = reel_now_ms() + 30000;
  for (;;) {
    json_t *job = qe_status(c, id);
    if (json_object_get(job, "progress")) return job;
    if (reel_now_ms() > until) fail_msg("job %s never reported progress (state %s)", id, qe_state(job));
    json_decref(job);
    reel_sleep_ms(20);
  }
}

static void test_worker_killed_mid_job(void **state) {
  qenv *e = *state;
  qe_start_broker(e);
  int w1 = qe_start_worker(e, "first", NULL);
  reel_client *c = qe_client(e, NULL);
  char *id = qe_submit(c, LONG_JOB);
  json_t *job = wait_progress(c, id);
  assert_string_equal(json_string_value(json_object_get(job, "worker")), "first");
  json_decref(job);
  qe_start_worker(e, "second", NULL);
  qe_kill_worker(e, w1, SIGKILL);
  job = qe_wait_state(c, id, NULL, 60000);
  assert_string_equal(qe_state(job), "succeeded");
  assert_int_equal(json_integer_value(json_object_get(job, "attempts")), 2);
  json_t *hist = json_object_get(job, "history");
  assert_int_equal(json_array_size(hist), 2);
  assert_string_equal(json_string_value(json_object_get(json_array_get(hist, 0), "worker")), "first");
  assert_string_equal(json_string_value(json_object_get(json_array_get(hist, 0), "outcome")), "lost");
  assert_string_equal(json_string_value(json_object_get(json_array_get(hist, 1), "worker")), "second");
  assert_string_equal(json_string_value(json_object_get(json_array_get(hist, 1), "outcome")), "succeeded");
  assert_true(
      file_exists(json_string_value(json_object_get(json_array_get(json_object_get(job, "outputs"), 0), "url"))));
  json_decref(job);
  free(id);
  reel_client_destroy(&c);
}

static void append_torn_record(qenv *e) {
  char path[700];
  snprintf(path, sizeof path, "%s/journal.log", e->journal);
  FILE *f = fopen(path, "ab");
  assert_non_null(f);
  /* A header promising 200 bytes followed by 11: a write cut by the crash. */
  const unsigned char torn[19] = {200, 0, 0, 0, 1, 2, 3, 4, '{', '"', 'o', 'p', '"', ':', '"', 's', 'u', 'b', 'm'};
  assert_int_equal(fwrite(torn, 1, sizeof torn, f), sizeof torn);
  fclose(f);
}

static void test_broker_killed(void **state) {
  qenv *e = *state;
  qe_start_broker(e);
  int w = qe_start_worker(e, "steady", NULL);
  reel_client *c = qe_client(e, NULL);
  /* One job running on the worker, then one accepted that no worker can take yet. */
  char *running = qe_submit(c, LONG_JOB);
  json_decref(wait_progress(c, running));
  char *queued = qe_submit(c, "{\"prompt\":\"accepted before the crash\",\"frames\":4,\"width\":32,\"height\":32}");
  json_t *job = qe_status(c, queued);
  assert_string_equal(qe_state(job), "queued");
  json_decref(job);
  qe_kill_broker(e, SIGKILL);
  append_torn_record(e);
  qe_start_broker(e);
  /* The client notices the new broker by itself; both jobs complete. */
  json_t *r = qe_wait_state(c, running, NULL, 60000);
  assert_string_equal(qe_state(r), "succeeded");
  /* The worker kept the job through the restart: one attempt only. */
  assert_int_equal(json_integer_value(json_object_get(r, "attempts")), 1);
  json_decref(r);
  json_t *q = qe_wait_state(c, queued, NULL, 60000);
  assert_string_equal(qe_state(q), "succeeded");
  json_decref(q);
  char log[700];
  snprintf(log, sizeof log, "%s/broker.log", e->dir);
  char *text = tu_read_file(log, NULL);
  assert_non_null(strstr(text, "torn last record"));
  free(text);
  /* reel_client_wait resumes following after a restart too. */
  char *third = qe_submit(c, "{\"prompt\":\"third\",\"frames\":4,\"width\":32,\"height\":32}");
  json_t *fin = NULL;
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_client_wait(c, third, 30000, NULL, NULL, &fin, &err), REEL_OK);
  assert_string_equal(qe_state(fin), "succeeded");
  json_decref(fin);
  assert_true(reel_client_reconnects(c) >= 0);
  qe_kill_worker(e, w, SIGTERM);
  free(running);
  free(queued);
  free(third);
  reel_client_destroy(&c);
}

static void test_cancel_queued_and_running(void **state) {
  qenv *e = *state;
  qe_start_broker(e);
  qe_start_worker(e, "busy", NULL);
  reel_client *c = qe_client(e, NULL);
  char *running = qe_submit(c, LONG_JOB);
  json_decref(wait_progress(c, running));
  char *queued = qe_submit(c, "{\"prompt\":\"never runs\",\"frames\":4}");
  json_t *job = NULL;
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_client_cancel(c, queued, &job, &err), REEL_OK);
  assert_string_equal(qe_state(job), "canceled");
  json_decref(job);
  assert_int_equal(reel_client_cancel(c, running, &job, &err), REEL_OK);
  assert_true(json_is_true(json_object_get(job, "cancel_requested")));
  json_decref(job);
  job = qe_wait_state(c, running, NULL, 30000);
  assert_string_equal(qe_state(job), "canceled");
  assert_string_equal(json_string_value(json_object_get(json_object_get(job, "error"), "code")), "ECANCELED");
  json_decref(job);
  /* Nothing was committed for the canceled job. */
  char path[800];
  snprintf(path, sizeof path, "%s/%s.mp4", e->storage, running);
  assert_int_equal(access(path, F_OK), -1);
  /* Canceling a finished job is a state error. */
  reel_error_clear(&err);
  assert_int_equal(reel_client_cancel(c, running, NULL, &err), REEL_ESTATE);
  /* The worker is free again. */
  char *after = qe_submit(c, "{\"prompt\":\"after\",\"frames\":4,\"width\":32,\"height\":32}");
  job = qe_wait_state(c, after, NULL, 30000);
  assert_string_equal(qe_state(job), "succeeded");
  json_decref(job);
  free(after);
  free(running);
  free(queued);
  reel_client_destroy(&c);
}

static void test_cli_idempotency_and_status(void **state) {
  qenv *e = *state;
  qe_start_broker(e);
  qe_start_worker(e, "cli", NULL);
  char cmd[1500], *out1 = NULL, *out2 = NULL, *out3 = NULL;
  snprintf(cmd, sizeof cmd, "'%s' submit --broker %s --idempotency-key same-key --frames 4 --size 32x32 hello 2>&1",
           e->bin, e->endpoint);
  assert_int_equal(tu_run(cmd, &out1), 0);
  assert_int_equal(tu_run(cmd, &out2), 0);
  assert_string_equal(out1, out2); /* the same job id */
  out1[strcspn(out1, "\n")] = '\0';
  assert_int_equal(strlen(out1), REEL_PROTO_JOB_ID_LEN);
  snprintf(cmd, sizeof cmd, "'%s' submit --broker %s --wait --json --frames 4 --size 32x32 waited", e->bin,
           e->endpoint);
  assert_int_equal(tu_run(cmd, &out3), 0);
  json_error_t je;
  json_t *rec = json_loads(out3, 0, &je);
  assert_non_null(rec);
  assert_string_equal(qe_state(rec), "succeeded");
  json_decref(rec);
  free(out3);
  /* status --json: one object with a state field. */
  for (int i = 0; i < 500; i++) {
    snprintf(cmd, sizeof cmd, "'%s' status --broker %s --json %s", e->bin, e->endpoint, out1);
    assert_int_equal(tu_run(cmd, &out3), 0);
    rec = json_loads(out3, 0, &je);
    assert_non_null(rec);
    free(out3);
    int done = !strcmp(qe_state(rec), "succeeded");
    json_decref(rec);
    if (done) break;
    reel_sleep_ms(20);
  }
  /* Unknown job: exit 1 naming ENOTFOUND. */
  snprintf(cmd, sizeof cmd, "'%s' status --broker %s 0000000000ff-00000 2>&1", e->bin, e->endpoint);
  assert_int_equal(tu_run(cmd, &out3), 1);
  assert_non_null(strstr(out3, "ENOTFOUND"));
  free(out3);
  /* jobs and workers list them. */
  snprintf(cmd, sizeof cmd, "'%s' jobs --broker %s --json", e->bin, e->endpoint);
  assert_int_equal(tu_run(cmd, &out3), 0);
  assert_non_null(strstr(out3, out1));
  free(out3);
  snprintf(cmd, sizeof cmd, "'%s' workers --broker %s", e->bin, e->endpoint);
  assert_int_equal(tu_run(cmd, &out3), 0);
  assert_non_null(strstr(out3, "cli"));
  free(out3);
  /* A bad job option is a usage error naming the flag, before anything is sent. */
  snprintf(cmd, sizeof cmd, "'%s' submit --broker %s --frames 0 x 2>&1", e->bin, e->endpoint);
  assert_int_equal(tu_run(cmd, &out3), 2);
  assert_non_null(strstr(out3, "--frames"));
  free(out3);
  free(out1);
  free(out2);
}

static void raw_send(void *s, const char *const *frames, int n) {
  for (int i = 0; i < n; i++) zmq_send(s, frames[i], strlen(frames[i]), i + 1 < n ? ZMQ_SNDMORE : 0);
}

/* Receives one reply; returns its header's "code" (or command when not an error) in buf. */
static void raw_reply(void *s, char *buf, size_t size) {
  int timeout = 5000;
  zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
  char frames[3][4096];
  int sizes[3] = {0};
  for (int i = 0; i < 3; i++) {
    sizes[i] = zmq_recv(s, frames[i], sizeof frames[i] - 1, 0);
    if (sizes[i] < 0) fail_msg("no reply from the broker");
    frames[i][sizes[i] < (int)sizeof frames[i] ? sizes[i] : (int)sizeof frames[i] - 1] = '\0';
  }
  json_error_t je;
  json_t *h = json_loads(frames[2], 0, &je);
  assert_non_null(h);
  const char *code = json_string_value(json_object_get(h, "code"));
  snprintf(buf, size, "%.60s", code ? code : frames[1]);
  json_decref(h);
}

static void test_malformed_against_process(void **state) {
  qenv *e = *state;
  qe_start_broker(e);
  void *ctx = zmq_ctx_new();
  void *s = zmq_socket(ctx, ZMQ_DEALER);
  assert_int_equal(zmq_connect(s, e->endpoint), 0);
  char code[64];
  const char *wrong_version[3] = {"reel/9", "PING", "{}"};
  raw_send(s, wrong_version, 3);
  raw_reply(s, code, sizeof code);
  assert_string_equal(code, "EPROTO");
  const char *bad_json[3] = {"reel/1", "SUBMIT", "{\"job\":"};
  raw_send(s, bad_json, 3);
  raw_reply(s, code, sizeof code);
  assert_string_equal(code, "EFORMAT");
  const char *unknown[3] = {"reel/1", "EXPLODE", "{}"};
  raw_send(s, unknown, 3);
  raw_reply(s, code, sizeof code);
  assert_string_equal(code, "EUNSUPPORTED");
  const char *one[1] = {"garbage"};
  raw_send(s, one, 1);
  raw_reply(s, code, sizeof code);
  assert_string_equal(code, "EPROTO");
  char *big = malloc(200001);
  memset(big, 'a', 200000);
  big[200000] = '\0';
  const char *oversized[3] = {"reel/1", "PING", big};
  raw_send(s, oversized, 3);
  free(big);
  raw_reply(s, code, sizeof code);
  assert_string_equal(code, "ELIMIT");
  /* Still serving: a normal client works. */
  const char *ping[3] = {"reel/1", "PING", "{}"};
  raw_send(s, ping, 3);
  raw_reply(s, code, sizeof code);
  assert_string_equal(code, "PONG");
  int zero = 0;
  zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
  zmq_close(s);
  zmq_ctx_term(ctx);
  int status;
  assert_int_equal(waitpid(e->broker, &status, WNOHANG), 0); /* alive */
}

static void test_priority_and_fair_share_order(void **state) {
  qenv *e = *state;
  qe_start_broker(e);
  reel_client *a = qe_client(e, "A"), *b = qe_client(e, "B"), *cc = qe_client(e, "C");
  char *ids[12];
  int n = 0;
  for (int i = 0; i < 5; i++) ids[n++] = qe_submit(a, "{\"prompt\":\"a\",\"class\":\"batch\"}");
  for (int i = 0; i < 3; i++) ids[n++] = qe_submit(b, "{\"prompt\":\"b\",\"class\":\"batch\"}");
  ids[n++] = qe_submit(b, "{\"prompt\":\"b-urgent\",\"class\":\"batch\",\"priority\":9}");
  ids[n++] = qe_submit(cc, "{\"prompt\":\"c\"}");
  /* A worker in this process with room for one job at a time records the dispatch order. */
  reel_worker_conn_options o;
  reel_worker_conn_options_init(&o);
  o.endpoint = e->endpoint;
  o.name = "recorder";
  o.heartbeat_ms = 100;
  reel_worker_conn *w = NULL;
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_worker_conn_new(&o, &w, &err), REEL_OK);
  char order[16] = "";
  for (int i = 0; i < n; i++) {
    reel_worker_job *job = NULL;
    assert_int_equal(reel_worker_conn_next(w, 10000, &job, &err), REEL_OK);
    const char *p = job->spec.prompt;
    order[i] = !strcmp(p, "b-urgent") ? 'U' : p[0];
    assert_int_equal(reel_worker_conn_finish(w, &job, REEL_JOB_SUCCEEDED, NULL, NULL, 0, NULL, 0, 0), REEL_OK);
  }
  /* Interactive first; then tenants alternate (B's priority 9 job first within B); A's surplus last. */
  assert_string_equal(order, "caUabababa");
  reel_worker_conn_destroy(&w, 2000);
  for (int i = 0; i < n; i++) {
    json_t *job = qe_wait_state(i < 5 ? a : i < 9 ? b : cc, ids[i], NULL, 10000);
    assert_string_equal(qe_state(job), "succeeded");
    json_decref(job);
    free(ids[i]);
  }
  reel_client_destroy(&a);
  reel_client_destroy(&b);
  reel_client_destroy(&cc);
}

static void test_result_while_broker_down(void **state) {
  qenv *e = *state;
  qe_start_broker(e);
  qe_start_worker(e, "loyal", NULL);
  reel_client *c = qe_client(e, NULL);
  char *id = qe_submit(c, "{\"prompt\":\"finishes alone\",\"frames\":300,\"width\":320,\"height\":240}");
  json_decref(wait_progress(c, id));
  qe_kill_broker(e, SIGKILL);
  /* The job finishes while there is no broker: its file appears. */
  char path[800];
  snprintf(path, sizeof path, "%s/%s.mp4", e->storage, id);
  int64_t until = reel_now_ms() + 60000;
  while (access(path, F_OK) != 0) {
    if (reel_now_ms() > until) fail_msg("the worker did not finish %s without the broker", id);
    reel_sleep_ms(20);
  }
  reel_sleep_ms(300);
  qe_start_broker(e);
  /* The worker reports the result it kept: one attempt, succeeded. */
  json_t *job = qe_wait_state(c, id, NULL, 60000);
  assert_string_equal(qe_state(job), "succeeded");
  assert_int_equal(json_integer_value(json_object_get(job, "attempts")), 1);
  assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(job, "history"), 0), "worker")),
                      "loyal");
  json_decref(job);
  free(id);
  reel_client_destroy(&c);
}

static int count_lines(const char *path) {
  char *s = tu_read_file(path, NULL);
  int n = 0;
  for (char *p = s; p && *p; p++) n += *p == '\n';
  free(s);
  return n;
}

static void test_batch_and_resume(void **state) {
  qenv *e = *state;
  qe_start_broker(e);
  qe_start_worker(e, "b1", "--capacity", "2", NULL);
  char file[700], manifest[700], cmd[2500], *out = NULL;
  snprintf(file, sizeof file, "%s/prompts.txt", e->dir);
  snprintf(manifest, sizeof manifest, "%s/manifest.jsonl", e->dir);
  const char *text =
      "# a comment\n"
      "a red circle\n"
      "\n"
      "a blue square\n"
      "{\"prompt\":\"from json\",\"frames\":2,\"seed\":5}\n"
      "{\"prompt\":\"too long\",\"frames\":99999}\n"
      "a green triangle\n"
      "a yellow star\n";
  tu_write_file(file, text, strlen(text));
  snprintf(cmd, sizeof cmd, "'%s' batch --broker %s '%s' --manifest '%s' --concurrency 3 --frames 4 --size 32x32 2>&1",
           e->bin, e->endpoint, file, manifest);
  assert_int_equal(tu_run(cmd, &out), 1); /* one line is bad */
  assert_non_null(strstr(out, "5 of 6 lines succeeded, 1 failed"));
  assert_non_null(strstr(out, "job.frames"));
  free(out);
  assert_int_equal(count_lines(manifest), 6);
  /* Every succeeded line names a job whose file exists; the JSON line kept its own options. */
  char *m = tu_read_file(manifest, NULL);
  int succeeded = 0;
  for (char *line = strtok(m, "\n"); line; line = strtok(NULL, "\n")) {
    json_error_t je;
    json_t *o = json_loads(line, 0, &je);
    assert_non_null(o);
    if (!strcmp(qe_state(o), "succeeded")) {
      succeeded++;
      const char *url = json_string_value(json_object_get(json_array_get(json_object_get(o, "outputs"), 0), "url"));
      assert_true(file_exists(url));
      if (json_integer_value(json_object_get(o, "line")) == 5)
        assert_int_equal(json_integer_value(json_object_get(o, "seed")), 5);
    } else {
      assert_int_equal(json_integer_value(json_object_get(o, "line")), 6);
      assert_string_equal(json_string_value(json_object_get(json_object_get(o, "error"), "field")), "job.frames");
    }
    json_decref(o);
  }
  free(m);
  assert_int_equal(succeeded, 5);
  /* A rerun skips what succeeded and tries the failed line again. */
  assert_int_equal(tu_run(cmd, &out), 1);
  assert_non_null(strstr(out, "5 of 6 lines already succeeded"));
  free(out);
  assert_int_equal(count_lines(manifest), 7);
  /* Fixing the file makes the next rerun complete the batch. */
  const char *fixed =
      "# a comment\n"
      "a red circle\n"
      "\n"
      "a blue square\n"
      "{\"prompt\":\"from json\",\"frames\":2,\"seed\":5}\n"
      "{\"prompt\":\"shorter now\",\"frames\":3}\n"
      "a green triangle\n"
      "a yellow star\n";
  tu_write_file(file, fixed, strlen(fixed));
  assert_int_equal(tu_run(cmd, &out), 0);
  assert_non_null(strstr(out, "6 of 6 lines succeeded"));
  free(out);
  assert_int_equal(count_lines(manifest), 8);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_200_jobs_4_workers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_worker_killed_mid_job, setup, teardown),
      cmocka_unit_test_setup_teardown(test_broker_killed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_queued_and_running, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_idempotency_and_status, setup, teardown),
      cmocka_unit_test_setup_teardown(test_malformed_against_process, setup, teardown),
      cmocka_unit_test_setup_teardown(test_priority_and_fair_share_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_result_while_broker_down, setup, teardown),
      cmocka_unit_test_setup_teardown(test_batch_and_resume, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
