/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `reel serve` (a broker and a model-serving worker in one process) with the
 * tiny WanPipeline fixture, driven by the C client: a job succeeds with its
 * output, checksum, frame count, per-stage timings and peak memory in the
 * record; then each failure ends in the right state with a clear error while
 * the worker keeps serving — bad parameters (the broker's limits and the
 * model's rules), a missing and a corrupt model folder, a job over the memory
 * budget, NaN latents through the test hook (REEL_TEST_NAN_MARKER in serve's
 * environment), a cancel in the middle of denoising — and a last job gives the
 * same bytes as the first. Progress arrives per step at most 4 times a second,
 * with preview PNGs for a job that asks for them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "queue_env.h"
#include "reel/json.h"

#define NAN_MARKER "__poison_with_nan__"

typedef struct fixture {
  qenv e;
  pid_t serve;
  char tiny[1024];
  char corrupt[700], missing[700];
  reel_client *c;
} fixture;

static void start_serve(fixture *f) {
  qenv *e = &f->e;
  char epfile[700], storage[700];
  snprintf(epfile, sizeof epfile, "%s/endpoint", e->dir);
  snprintf(storage, sizeof storage, "file://%s", e->storage);
  setenv("REEL_TEST_NAN_MARKER", NAN_MARKER, 1);
  char *argv[] = {(char *)e->bin, "serve",        "--listen",  "tcp://127.0.0.1:*", "--endpoint-file", epfile,
                  "--workers",    "1",            "--model",   f->tiny,             "--model",         f->corrupt,
                  "--model",      f->missing,     "--storage", storage,             "--heartbeat-ms",  QE_HEARTBEAT,
                  "--memory-budget", "96M",       "--threads", "2",                 "-v",              NULL};
  f->serve = qe_spawn(e, "serve.log", argv);
  unsetenv("REEL_TEST_NAN_MARKER");
  for (int i = 0; i < 1000; i++) {
    char *s = tu_read_file(epfile, NULL);
    if (s && strchr(s, '\n')) {
      *strchr(s, '\n') = '\0';
      snprintf(e->endpoint, sizeof e->endpoint, "%s", s);
      free(s);
      return;
    }
    free(s);
    reel_sleep_ms(10);
  }
  fail_msg("reel serve did not start");
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  qe_init(&f->e);
  const char *src = getenv("REEL_SOURCE_DIR");
  assert_non_null(src);
  snprintf(f->tiny, sizeof f->tiny, "%s/tests/fixtures/tiny-wan", src);
  /* A corrupt copy: the transformer's weights cut in half. */
  snprintf(f->corrupt, sizeof f->corrupt, "%s/corrupt-wan", f->e.dir);
  snprintf(f->missing, sizeof f->missing, "%s/missing-wan", f->e.dir);
  char cmd[3000];
  snprintf(cmd, sizeof cmd,
           "cp -r '%s' '%s' && f='%s/transformer/diffusion_pytorch_model.safetensors' && "
           "truncate -s $(( $(stat -c %%s \"$f\") / 2 )) \"$f\"",
           f->tiny, f->corrupt, f->corrupt);
  assert_int_equal(tu_run(cmd, NULL), 0);
  start_serve(f);
  f->c = qe_client(&f->e, NULL);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  reel_client_destroy(&f->c);
  if (f->serve) {
    /* A clean stop: SIGTERM, the worker finishes and says BYE, the broker stops. */
    kill(f->serve, SIGTERM);
    int status = 0;
    waitpid(f->serve, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
  }
  qe_fini(&f->e);
  free(f);
  return 0;
}

static void serve_alive(fixture *f) {
  int status;
  if (waitpid(f->serve, &status, WNOHANG) == f->serve) {
    f->serve = 0;
    char log[700];
    snprintf(log, sizeof log, "%s/serve.log", f->e.dir);
    char *text = tu_read_file(log, NULL);
    fail_msg("reel serve exited: %s", text ? text : "");
  }
}

/* Submits and waits for the end; returns the final record. */
static json_t *run(fixture *f, const char *spec, char **id_out) {
  char *id = qe_submit(f->c, spec);
  json_t *job = qe_wait_state(f->c, id, NULL, 120000);
  if (id_out)
    *id_out = id;
  else
    free(id);
  serve_alive(f);
  return job;
}

static const char *error_code(const json_t *job) {
  return json_string_value(json_object_get(json_object_get(job, "error"), "code"));
}
static const char *error_field(const json_t *job) {
  return json_string_value(json_object_get(json_object_get(job, "error"), "field"));
}

static void expect_failed(fixture *f, const char *spec, const char *code, const char *field_prefix) {
  char *id = NULL;
  json_t *job = run(f, spec, &id);
  const char *msg = json_string_value(json_object_get(json_object_get(job, "error"), "message"));
  printf("%s -> %s %s %s: %s\n", spec, qe_state(job), error_code(job), error_field(job), msg ? msg : "");
  assert_string_equal(qe_state(job), "failed");
  assert_string_equal(error_code(job), code);
  assert_true(!strncmp(error_field(job), field_prefix, strlen(field_prefix)));
  assert_true(msg && msg[0]);
  /* Failed for good (not retried), and nothing in storage. */
  assert_int_equal(json_integer_value(json_object_get(job, "attempts")), 1);
  char path[800];
  snprintf(path, sizeof path, "%s/%s.mp4", f->e.storage, id);
  struct stat sb;
  assert_int_not_equal(stat(path, &sb), 0);
  json_decref(job);
  free(id);
}

#define GOOD "{\"prompt\":\"a cat bakes a cake\",\"model\":\"tiny-wan\",\"width\":48,\"height\":32,\"frames\":9,\"steps\":4,\"seed\":11}"

static json_t *output0(const json_t *job) { return json_array_get(json_object_get(job, "outputs"), 0); }

static void check_good(fixture *f, const json_t *job, const char *id) {
  assert_string_equal(qe_state(job), "succeeded");
  const json_t *o = output0(job);
  char url[800];
  snprintf(url, sizeof url, "file://%s/%s.mp4", f->e.storage, id);
  assert_string_equal(json_string_value(json_object_get(o, "url")), url);
  assert_int_equal(json_integer_value(json_object_get(o, "frames")), 9);
  assert_int_equal(json_integer_value(json_object_get(o, "width")), 48);
  assert_int_equal(json_integer_value(json_object_get(o, "height")), 32);
  assert_string_equal(json_string_value(json_object_get(o, "content_type")), "video/mp4");
  assert_int_equal(strlen(json_string_value(json_object_get(o, "sha256"))), 64);
  struct stat sb;
  assert_int_equal(stat(url + 7, &sb), 0);
  assert_int_equal(sb.st_size, json_integer_value(json_object_get(o, "bytes")));
  const json_t *t = json_object_get(job, "timings");
  for (const char *const *k = (const char *const[]){"total_ms", "text_ms", "denoise_ms", "decode_ms", "encode_ms",
                                                     "upload_ms", "peak_rss_bytes", "peak_scratch_bytes", NULL};
       *k; k++)
    if (!json_is_number(json_object_get(t, *k))) fail_msg("timings.%s missing", *k);
  assert_true(json_integer_value(json_object_get(t, "peak_scratch_bytes")) > 0);
  assert_int_equal(json_integer_value(json_object_get(job, "seed")), 11);
}

static void test_failures_leave_the_worker_serving(void **state) {
  fixture *f = *state;
  char *id = NULL;
  json_t *first = run(f, GOOD, &id);
  check_good(f, first, id);
  free(id);

  /* The broker's limits: refused at submit. */
  json_error_t je;
  json_t *spec = json_loads("{\"prompt\":\"x\",\"model\":\"tiny-wan\",\"frames\":5000}", 0, &je);
  json_t *acc = NULL;
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_client_submit(f->c, spec, &acc, &err), REEL_ERANGE);
  assert_string_equal(err.field, "job.frames");
  json_decref(spec);
  /* The model's rules: failed by the worker before any compute. */
  expect_failed(f, "{\"prompt\":\"x\",\"model\":\"tiny-wan\",\"width\":48,\"height\":32,\"frames\":8,\"steps\":2}",
                "EINVAL", "job.frames");
  expect_failed(f, "{\"prompt\":\"x\",\"model\":\"tiny-wan\",\"width\":40,\"height\":32,\"frames\":5,\"steps\":2}",
                "EINVAL", "job.width");
  /* Model folders: missing, corrupt. */
  expect_failed(f, "{\"prompt\":\"x\",\"model\":\"missing-wan\",\"width\":48,\"height\":32,\"frames\":5}", "ENOTFOUND",
                "job.model");
  char corrupt[900];
  snprintf(corrupt, sizeof corrupt, "{\"prompt\":\"x\",\"model\":\"%s\",\"width\":48,\"height\":32,\"frames\":5}",
           f->corrupt);
  {
    char *cid = NULL;
    json_t *job = run(f, corrupt, &cid);
    printf("corrupt model -> %s %s %s\n", qe_state(job), error_code(job), error_field(job));
    assert_string_equal(qe_state(job), "failed");
    assert_true(!strcmp(error_code(job), "EFORMAT") || !strcmp(error_code(job), "EMODEL") ||
                !strcmp(error_code(job), "EIO"));
    assert_true(!strncmp(error_field(job), "model:", 6));
    json_decref(job);
    free(cid);
  }
  /* Over the memory budget (96 MiB for the model and the job's scratch). */
  expect_failed(f, "{\"prompt\":\"x\",\"model\":\"tiny-wan\",\"width\":832,\"height\":480,\"frames\":81,\"steps\":2}",
                "ENOMEM", "job");
  /* NaN in the latents (test hook). */
  expect_failed(f,
                "{\"prompt\":\"" NAN_MARKER "\",\"model\":\"tiny-wan\",\"width\":48,\"height\":32,\"frames\":5,"
                "\"steps\":3}",
                "ENONFINITE", "denoise");

  /* Side outputs are storage keys, never paths of the worker's machine. */
  expect_failed(f,
                "{\"prompt\":\"x\",\"model\":\"tiny-wan\",\"width\":48,\"height\":32,\"frames\":5,\"steps\":2,"
                "\"poster\":\"/tmp/evil.png\"}",
                "EINVAL", "job.poster");
  {
    char *pid = NULL;
    json_t *job = run(f,
                      "{\"prompt\":\"x\",\"model\":\"tiny-wan\",\"width\":48,\"height\":32,\"frames\":5,"
                      "\"steps\":2,\"poster\":\"posters/p.png\"}",
                      &pid);
    if (strcmp(qe_state(job), "succeeded") != 0)
      fail_msg("poster job: %s %s %s", qe_state(job), error_code(job),
               json_string_value(json_object_get(json_object_get(job, "error"), "message")));
    const json_t *poster = json_array_get(json_object_get(job, "outputs"), 1);
    char url[800];
    snprintf(url, sizeof url, "file://%s/posters/p.png", f->e.storage);
    assert_string_equal(json_string_value(json_object_get(poster, "url")), url);
    struct stat sb;
    assert_int_equal(stat(url + 7, &sb), 0);
    json_decref(job);
    free(pid);
  }

  /* Still serving: the same job again gives the same bytes. */
  json_t *again = run(f, GOOD, &id);
  check_good(f, again, id);
  free(id);
  assert_string_equal(json_string_value(json_object_get(output0(first), "sha256")),
                      json_string_value(json_object_get(output0(again), "sha256")));
  json_decref(first);
  json_decref(again);
}

/* Progress events of one job: count, stages, previews. */
typedef struct watch {
  int progress, denoising, previews, png_ok, with_header;
  int max_step, steps;
  int64_t first_ms, last_ms;
} watch;

static void on_event(void *ud, const json_t *ev) {
  watch *w = ud;
  if (strcmp(json_string_value(json_object_get(ev, "event")), "progress") != 0) return;
  int64_t now = reel_now_ms();
  if (!w->progress) w->first_ms = now;
  w->last_ms = now;
  w->progress++;
  if (json_object_get(ev, "preview")) w->with_header++;
  if (!strcmp(json_string_value(json_object_get(ev, "stage")), "denoising")) {
    w->denoising++;
    int step = (int)json_integer_value(json_object_get(ev, "step"));
    if (step > w->max_step) w->max_step = step;
    w->steps = (int)json_integer_value(json_object_get(ev, "steps"));
    assert_true(json_is_integer(json_object_get(ev, "eta_ms")) || step == 0);
  }
}

static void on_preview(void *ud, const json_t *ev, const void *payload, size_t len) {
  watch *w = ud;
  w->previews++;
  static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  const json_t *p = json_object_get(ev, "preview");
  if (len > 8 && !memcmp(payload, sig, 8) && json_integer_value(json_object_get(p, "bytes")) == (json_int_t)len)
    w->png_ok++;
}

static void test_progress_previews_cancel(void **state) {
  fixture *f = *state;
  watch w;
  memset(&w, 0, sizeof w);
  reel_client_set_event_handler(f->c, on_event, &w);
  reel_client_set_preview_handler(f->c, on_preview, &w);
  /* A second or so of denoising, a preview every 10 steps. */
  char *id = qe_submit(f->c, "{\"prompt\":\"clouds\",\"model\":\"tiny-wan\",\"width\":96,\"height\":64,\"frames\":9,"
                             "\"steps\":200,\"preview_every\":10,\"seed\":2}");
  json_t *job = NULL;
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_client_wait(f->c, id, 120000, NULL, NULL, &job, &err), REEL_OK);
  printf("progress events %d (denoising %d, max step %d/%d), previews %d (png %d) over %lld ms\n", w.progress,
         w.denoising, w.max_step, w.steps, w.previews, w.png_ok, (long long)(w.last_ms - w.first_ms));
  assert_string_equal(qe_state(job), "succeeded");
  assert_true(w.denoising >= 1);
  assert_int_equal(w.steps, 200);
  assert_true(w.previews >= 1);
  assert_int_equal(w.previews, w.png_ok);
  assert_int_equal(w.previews, w.with_header);
  /* At most 4 reports a second (the worker's throttle), whatever the machine's speed. */
  assert_true(w.progress <= 4 * (w.last_ms - w.first_ms) / 1000 + 2);
  json_decref(job);
  free(id);

  /* Cancel in the middle of denoising: canceled at a step boundary, nothing in storage. */
  memset(&w, 0, sizeof w);
  id = qe_submit(f->c, "{\"prompt\":\"long\",\"model\":\"tiny-wan\",\"width\":96,\"height\":64,\"frames\":9,"
                       "\"steps\":1000,\"seed\":3}");
  int64_t until = reel_now_ms() + 60000;
  for (;;) {
    json_t *s = qe_status(f->c, id);
    const json_t *p = json_object_get(s, "progress");
    int denoising = p && !strcmp(json_string_value(json_object_get(p, "stage")), "denoising") &&
                    json_integer_value(json_object_get(p, "step")) >= 1;
    json_decref(s);
    if (denoising) break;
    if (reel_now_ms() > until) fail_msg("the job never reported denoising progress");
    reel_sleep_ms(20);
  }
  assert_int_equal(reel_client_cancel(f->c, id, NULL, &err), REEL_OK);
  job = qe_wait_state(f->c, id, NULL, 60000);
  assert_string_equal(qe_state(job), "canceled");
  assert_string_equal(error_code(job), "ECANCELED");
  const json_t *p = json_object_get(job, "progress");
  assert_true(!p || json_integer_value(json_object_get(p, "step")) < 1000);
  char path[800];
  snprintf(path, sizeof path, "%s/%s.mp4", f->e.storage, id);
  struct stat sb;
  assert_int_not_equal(stat(path, &sb), 0);
  json_decref(job);
  free(id);
  serve_alive(f);
  reel_client_set_event_handler(f->c, NULL, NULL);
  reel_client_set_preview_handler(f->c, NULL, NULL);
  /* And it serves the next one. */
  job = run(f, GOOD, &id);
  check_good(f, job, id);
  json_decref(job);
  free(id);
}

int main(void) {
  reel_json_use_reel_alloc();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_failures_leave_the_worker_serving, setup, teardown),
      cmocka_unit_test_setup_teardown(test_progress_previews_cancel, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
