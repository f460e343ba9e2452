/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reel_generate with builtin:testsrc: the model's defaults, the result record
 * (URL, size, digest, seed), progress and cancellation, errors named
 * "job.<field>" with nothing committed, and a streaming sink getting
 * fragmented MP4.
 */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/encoder.h"
#include "reel/generate.h"
#include "reel/sha256.h"
#include "reel/sink.h"
#include "reel/testsrc.h"
#include "testutil.h"

typedef struct {
  char dir[512];
  char real[PATH_MAX];
  reel_logger log;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  tu_mkdtemp(f->dir, sizeof f->dir);
  assert_non_null(realpath(f->dir, f->real));
  reel_logger_init(&f->log, REEL_LOG_WARN, REEL_LOG_TEXT, 2);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  tu_rmtree(f->dir);
  free(f);
  return 0;
}

static int entries(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

static void spec_init(reel_jobspec *s, const char *prompt) {
  reel_jobspec_init(s);
  assert_int_equal(reel_jobspec_set_str(&s->prompt, prompt), REEL_OK);
  assert_int_equal(reel_jobspec_set_str(&s->model, REEL_TESTSRC_MODEL), REEL_OK);
}

typedef struct {
  int calls, last, cancel_at, monotonic, finish;
} progress_log;

static int on_progress(const reel_progress *p, void *user) {
  progress_log *pl = user;
  if (!strcmp(p->stage, "finish")) {
    pl->finish++;
    assert_int_equal(p->frames_done, p->frames_total);
    return 0;
  }
  pl->calls++;
  if (p->frames_done != pl->last + 1) pl->monotonic = 0;
  pl->last = p->frames_done;
  assert_string_equal(p->stage, "encode");
  return pl->cancel_at && p->frames_done >= pl->cancel_at;
}

static void test_defaults_and_result(void **state) {
  fixture *f = *state;
  reel_jobspec spec;
  spec_init(&spec, "a test");
  char path[600], url[PATH_MAX + 32];
  snprintf(path, sizeof path, "%s/clip.mp4", f->dir);
  snprintf(url, sizeof url, "file://%s/clip.mp4", f->real);
  progress_log pl = {0, 0, 0, 1, 0};
  reel_generate_options o = {0};
  o.log = &f->log;
  o.progress = on_progress;
  o.progress_user = &pl;
  reel_generate_result r;
  reel_error err = {0};
  assert_int_equal(reel_generate(&spec, path, &o, &r, &err), REEL_OK);
  assert_string_equal(r.url, url);
  assert_string_equal(r.model, "builtin:testsrc");
  assert_int_equal(r.width, 320);
  assert_int_equal(r.height, 240);
  assert_int_equal(r.frames, 48);
  assert_int_equal(r.fps_num, 24);
  assert_int_equal(r.fps_den, 1);
  assert_string_equal(r.codec, "h264");
  assert_string_equal(r.container, "mp4");
  assert_string_equal(r.encoder, "libx264");
  assert_int_equal(pl.calls, 48);
  assert_int_equal(pl.finish, 1);
  assert_true(pl.monotonic);
  assert_true(r.seconds_total >= r.seconds_encode);
  size_t len = 0;
  char *data = tu_read_file(path, &len);
  assert_int_equal(len, r.bytes);
  uint8_t d[REEL_SHA256_BYTES];
  char hex[REEL_SHA256_HEX];
  reel_sha256_digest(data, len, d);
  assert_string_equal(r.sha256, reel_sha256_hex(d, hex));
  free(data);
  /* Without a seed in the spec one is picked and reported; giving it back reproduces the clip. */
  char again[600];
  snprintf(again, sizeof again, "%s/again.mp4", f->dir);
  spec.seed = r.seed;
  spec.seed_set = 1;
  reel_generate_result r2;
  assert_int_equal(reel_generate(&spec, again, NULL, &r2, &err), REEL_OK);
  assert_string_equal(r2.sha256, r.sha256);
  reel_jobspec_fini(&spec);
}

static void test_cancel_leaves_nothing(void **state) {
  fixture *f = *state;
  reel_jobspec spec;
  spec_init(&spec, "cancel me");
  spec.frames = 30;
  char path[600];
  snprintf(path, sizeof path, "%s/canceled.mp4", f->dir);
  progress_log pl = {0, 0, 5, 1, 0};
  reel_generate_options o = {0};
  o.log = &f->log;
  o.progress = on_progress;
  o.progress_user = &pl;
  reel_error err = {0};
  assert_int_equal(reel_generate(&spec, path, &o, NULL, &err), REEL_ECANCELED);
  assert_int_equal(pl.calls, 5);
  assert_int_equal(pl.finish, 0);
  assert_int_equal(entries(f->dir), 0);
  reel_jobspec_fini(&spec);
}

static void expect_field(fixture *f, reel_jobspec *spec, reel_status code, const char *field) {
  char path[600];
  snprintf(path, sizeof path, "%s/bad.mp4", f->dir);
  reel_error err = {0};
  reel_status st = reel_generate_check(spec, &err);
  if (st != code || strcmp(err.field, field))
    fail_msg("check: want %s on %s, got %s on '%s' (%s)", reel_status_name(code), field, reel_status_name(st),
             err.field, err.msg);
  reel_error_clear(&err);
  st = reel_generate(spec, path, NULL, NULL, &err);
  if (st != code || strcmp(err.field, field))
    fail_msg("generate: want %s on %s, got %s on '%s' (%s)", reel_status_name(code), field, reel_status_name(st),
             err.field, err.msg);
  assert_int_equal(entries(f->dir), 0);
}

static void test_errors_name_job_fields(void **state) {
  fixture *f = *state;
  reel_jobspec spec;
  spec_init(&spec, "p");
  reel_error err = {0};
  assert_int_equal(reel_generate_check(&spec, &err), REEL_OK);
  spec.frames = 5000;
  expect_field(f, &spec, REEL_ERANGE, "job.frames");
  spec.frames = 0;
  spec.crf = 60;
  expect_field(f, &spec, REEL_ERANGE, "job.crf");
  spec.crf = -1;
  assert_int_equal(reel_jobspec_set_str(&spec.preset, "warp"), REEL_OK);
  expect_field(f, &spec, REEL_EINVAL, "job.preset");
  assert_int_equal(reel_jobspec_set_str(&spec.preset, NULL), REEL_OK);
  /* Limits that depend on the codec: AV1's CRF starts at 1 and its frames at 64 pixels; VP9 presets are numbers. */
  spec.codec = REEL_CODEC_AV1;
  spec.crf = 0;
  expect_field(f, &spec, REEL_ERANGE, "job.crf");
  spec.crf = -1;
  spec.width = 32;
  spec.height = 32;
  expect_field(f, &spec, REEL_ERANGE, "job.width");
  spec.width = spec.height = 0;
  spec.codec = REEL_CODEC_VP9;
  assert_int_equal(reel_jobspec_set_str(&spec.preset, "medium"), REEL_OK);
  expect_field(f, &spec, REEL_EINVAL, "job.preset");
  assert_int_equal(reel_jobspec_set_str(&spec.preset, NULL), REEL_OK);
  spec.codec = REEL_CODEC_H264;
  assert_int_equal(reel_jobspec_set_str(&spec.model, "wan2.1-t2v-14b"), REEL_OK);
  expect_field(f, &spec, REEL_ENOTFOUND, "job.model");
  assert_int_equal(reel_jobspec_set_str(&spec.model, REEL_TESTSRC_MODEL), REEL_OK);
  assert_int_equal(reel_jobspec_set_str(&spec.prompt, NULL), REEL_OK);
  expect_field(f, &spec, REEL_EINVAL, "job.prompt");
  assert_int_equal(reel_jobspec_set_str(&spec.prompt, "p"), REEL_OK);
  /* No output anywhere. */
  reel_error_clear(&err);
  assert_int_equal(reel_generate(&spec, NULL, NULL, NULL, &err), REEL_EINVAL);
  assert_string_equal(err.field, "job.output");
  /* spec->output is used when no URL is given. */
  char path[600];
  snprintf(path, sizeof path, "%s/from-spec.mp4", f->dir);
  assert_int_equal(reel_jobspec_set_str(&spec.output, path), REEL_OK);
  spec.frames = 2;
  reel_error_clear(&err);
  assert_int_equal(reel_generate(&spec, NULL, NULL, NULL, &err), REEL_OK);
  assert_int_equal(entries(f->dir), 1);
  reel_jobspec_fini(&spec);
}

/* A sink that cannot seek, forwarding to a file sink: what an upload looks like to the encoder. */
typedef struct {
  reel_sink base;
  reel_sink *inner;
} fwd_sink;

static reel_status fwd_write(reel_sink *s, const void *data, size_t len, reel_error *err) {
  return reel_sink_write(((fwd_sink *)s)->inner, data, len, err);
}
static reel_status fwd_close(reel_sink *s, reel_sink_result *res, reel_error *err) {
  fwd_sink *fs = (fwd_sink *)s;
  reel_status st = reel_sink_close(&fs->inner, res, err);
  free(fs);
  return st;
}
static void fwd_abort(reel_sink *s) {
  fwd_sink *fs = (fwd_sink *)s;
  reel_sink_abort(&fs->inner);
  free(fs);
}
static const reel_sink_ops fwd_ops = {"fwd", fwd_write, NULL, NULL, fwd_close, fwd_abort};

static void test_streaming_sink_gets_fmp4(void **state) {
  fixture *f = *state;
  char path[600];
  snprintf(path, sizeof path, "%s/stream.mp4", f->dir);
  fwd_sink *fs = calloc(1, sizeof *fs);
  reel_error err = {0};
  assert_int_equal(reel_sink_open(path, NULL, &fs->inner, &err), REEL_OK);
  fs->base.ops = &fwd_ops;
  fs->base.url = reel_sink_url(fs->inner);
  reel_sink *sink = &fs->base;
  reel_jobspec spec;
  spec_init(&spec, "stream");
  spec.frames = 10;
  spec.width = 64;
  spec.height = 48;
  reel_generate_result r;
  assert_int_equal(reel_generate_to_sink(&spec, &sink, NULL, &r, &err), REEL_OK);
  assert_null(sink);
  assert_string_equal(r.container, "fmp4");
  assert_int_equal(r.frames, 10);
  size_t len = 0;
  char *data = tu_read_file(path, &len);
  assert_int_equal(len, r.bytes);
  assert_non_null(memmem(data, len, "moof", 4));
  free(data);
  reel_jobspec_fini(&spec);
}

int main(void) {
  reel_ffmpeg_route_logs();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_defaults_and_result, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_leaves_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_errors_name_job_fields, setup, teardown),
      cmocka_unit_test_setup_teardown(test_streaming_sink_gets_fmp4, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
