/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `reel bench` and `reel tune` end to end on tiny jobs: the JSON each prints
 * has the documented fields (docs/bench.md) with values that agree with each
 * other (runs counted, percentiles ordered, throughput = runs / time, cost =
 * latency x rate, GFLOP/s = flop / seconds, the tuned best is a measured
 * candidate that the others do not beat by more than the 2% noise margin),
 * temporary output is removed, and
 * bad flags exit 2 naming the flag. Speeds are never asserted.
 * The binary comes from $REEL_BIN (set by CMake to $<TARGET_FILE:reel>).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "reel/json.h"
#include "testutil.h"

typedef struct {
  char dir[512];
  char tmp[600]; /* TMPDIR of the runs: must be empty afterwards */
  const char *bin;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  f->bin = getenv("REEL_BIN");
  if (!f->bin || !f->bin[0]) fail_msg("REEL_BIN is not set (CMake sets it to the built reel binary)");
  tu_mkdtemp(f->dir, sizeof f->dir);
  snprintf(f->tmp, sizeof f->tmp, "%s/tmp", f->dir);
  mkdir(f->tmp, 0700);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  tu_rmtree(f->dir);
  free(f);
  return 0;
}

static int run_reel(const fixture *f, const char *args, int both, char **out) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "cd '%s' && TMPDIR='%s' '%s' %s </dev/null %s", f->dir, f->tmp, f->bin, args,
           both ? "2>&1" : "2>/dev/null");
  return tu_run(cmd, out);
}

static json_t *reel_json(const fixture *f, const char *args) {
  char *out = NULL;
  int rc = run_reel(f, args, 0, &out);
  if (rc != 0) fail_msg("reel %s exited %d", args, rc);
  json_t *o = NULL;
  reel_error err = {0};
  if (reel_json_parse(out, strlen(out), "stdout", &o, &err) != REEL_OK)
    fail_msg("reel %s: --json output does not parse: %s: '%s'", args, err.msg, out);
  free(out);
  return o;
}

static void expect_usage_error(const fixture *f, const char *args, const char *needle) {
  char *out = NULL;
  int rc = run_reel(f, args, 1, &out);
  if (rc != 2) fail_msg("reel %s: exit %d, want 2 (%s)", args, rc, out);
  if (!strstr(out, needle)) fail_msg("reel %s: message '%s' lacks '%s'", args, out, needle);
  free(out);
}

static json_t *get(const json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  if (!v) fail_msg("member '%s' is missing", key);
  return v;
}

static double num(const json_t *o, const char *key) {
  json_t *v = get(o, key);
  if (!json_is_number(v)) fail_msg("member '%s' is not a number", key);
  return json_number_value(v);
}

static const char *str(const json_t *o, const char *key) {
  json_t *v = get(o, key);
  if (!json_is_string(v)) fail_msg("member '%s' is not a string", key);
  return json_string_value(v);
}

static void assert_close(double a, double b, double rel) {
  if (fabs(a - b) > rel * fmax(fabs(a), fabs(b)) + 1e-12) fail_msg("%.12g and %.12g differ by more than %g", a, b, rel);
}

/* A stats object: n samples, all positive (or >= 0 when allow_zero), percentiles ordered. */
static void check_stats(const json_t *s, int n, int allow_zero) {
  assert_true(json_is_object(s));
  assert_int_equal((int)num(s, "n"), n);
  const double mn = num(s, "min"), p50 = num(s, "p50"), p95 = num(s, "p95"), p99 = num(s, "p99"), mx = num(s, "max"),
               mean = num(s, "mean");
  if (allow_zero)
    assert_true(mn >= 0);
  else
    assert_true(mn > 0);
  assert_true(mn <= p50 && p50 <= p95 && p95 <= p99 && p99 <= mx);
  assert_true(mn <= mean && mean <= mx);
}

static void check_machine(const json_t *o) {
  const json_t *m = get(o, "machine");
  assert_true(strlen(str(m, "cpu")) > 0);
  assert_true(num(m, "cores") >= 1);
  assert_true(num(m, "cpus_allowed") >= 1 && num(m, "cpus_allowed") <= num(m, "cores"));
  assert_true(num(m, "memory_bytes") > 0);
  assert_true(json_is_string(get(m, "features")));
  assert_true(strlen(str(m, "date")) >= 20);
}

/* Nothing is left in the TMPDIR the runs used. */
static void assert_tmp_empty(const fixture *f) {
  char cmd[700], *ls = NULL;
  snprintf(cmd, sizeof cmd, "ls -A '%s'", f->tmp);
  assert_int_equal(tu_run(cmd, &ls), 0);
  assert_string_equal(ls, "");
  free(ls);
}

static void test_generate_testsrc(void **state) {
  fixture *f = *state;
  json_t *o = reel_json(f, "bench generate --model builtin:testsrc --size 96x64 --frames 8 --fps 16 --runs 2 --json");
  assert_string_equal(str(o, "bench"), "generate");
  check_machine(o);
  assert_int_equal((int)num(o, "runs"), 2);
  assert_int_equal((int)num(o, "warmup"), 1);
  const json_t *c = get(o, "config");
  assert_string_equal(str(c, "model"), "builtin:testsrc");
  assert_string_equal(str(c, "backend"), "none");
  assert_int_equal((int)num(c, "width"), 96);
  assert_int_equal((int)num(c, "height"), 64);
  assert_int_equal((int)num(c, "frames"), 8);
  assert_close(num(c, "fps"), 16.0, 1e-12);
  assert_int_equal((int)num(c, "seed"), 42); /* fixed when the job gives none */
  assert_string_equal(str(c, "codec"), "h264");
  const json_t *st = get(o, "stages");
  check_stats(get(st, "render"), 2, 1);
  check_stats(get(st, "encode"), 2, 0);
  check_stats(get(st, "commit"), 2, 0);
  assert_null(json_object_get(st, "denoise")); /* a test pattern has no model stages */
  const json_t *lat = get(o, "latency");
  check_stats(lat, 2, 0);
  const json_t *samples = get(o, "latency_samples");
  assert_int_equal((int)json_array_size(samples), 2);
  const double s0 = json_number_value(json_array_get(samples, 0)), s1 = json_number_value(json_array_get(samples, 1));
  assert_close(num(lat, "min"), fmin(s0, s1), 1e-9);
  assert_close(num(lat, "max"), fmax(s0, s1), 1e-9);
  assert_close(num(lat, "p50"), 0.5 * (s0 + s1), 1e-9);
  const json_t *tp = get(o, "throughput");
  assert_close(num(tp, "clips_per_minute"), 60.0 * 2 / (s0 + s1), 1e-9);
  assert_close(num(tp, "video_seconds_per_clip"), 0.5, 1e-12);
  assert_close(num(tp, "realtime_factor"), 0.5 / num(lat, "p50"), 1e-9);
  assert_true(num(get(o, "memory"), "peak_rss_bytes") > 0);
  assert_true(json_is_null(get(o, "cost")));
  const json_t *out = get(o, "output");
  assert_true(json_is_null(get(out, "url"))); /* discarded */
  assert_true(num(out, "bytes") > 0);
  assert_int_equal((int)strlen(str(out, "sha256")), 64);
  assert_true(json_is_true(get(out, "identical"))); /* fixed seed: every run wrote the same clip */
  json_decref(o);
  assert_tmp_empty(f);

  /* Cost = p50 latency x rate; per minute of video = that / (clip seconds / 60). */
  o = reel_json(f,
                "bench generate --model builtin:testsrc --size 96x64 --frames 8 --fps 16 --runs 3 --warmup 0 "
                "--cost-per-hour 7.2 --json 'a prompt'");
  assert_int_equal((int)num(o, "runs"), 3);
  assert_int_equal((int)num(o, "warmup"), 0);
  check_stats(get(o, "latency"), 3, 0);
  const json_t *cost = get(o, "cost");
  const double p50 = num(get(o, "latency"), "p50");
  assert_close(num(cost, "per_hour_usd"), 7.2, 1e-12);
  assert_close(num(cost, "per_clip_usd"), 7.2 * p50 / 3600.0, 1e-9);
  assert_close(num(cost, "per_video_minute_usd"), num(cost, "per_clip_usd") / (0.5 / 60.0), 1e-9);
  json_decref(o);
  assert_tmp_empty(f);
}

static void test_generate_tiny_wan(void **state) {
  fixture *f = *state;
  char args[1024];
  snprintf(args, sizeof args,
           "bench generate --model '%s/tests/fixtures/tiny-wan' --size 48x32 --frames 9 --fps 12 --steps 3 --cfg 4 "
           "--runs 2 --warmup 0 --threads 1 --cost-per-hour 2 -o out.mp4 --json",
           tu_source_dir());
  json_t *o = reel_json(f, args);
  const json_t *c = get(o, "config");
  assert_string_equal(str(c, "family"), "wan2.1");
  assert_string_equal(str(c, "backend"), "cpu");
  assert_int_equal((int)num(c, "threads"), 1);
  assert_string_equal(str(c, "matmul"), "auto");
  assert_string_equal(str(c, "activations"), "f32");
  assert_int_equal((int)num(c, "steps"), 3);
  assert_close(num(c, "guidance"), 4.0, 1e-12);
  assert_int_equal((int)num(c, "width"), 48);
  assert_int_equal((int)num(c, "frames"), 9);
  assert_true(num(o, "load_seconds") > 0);
  const json_t *st = get(o, "stages");
  check_stats(get(st, "text"), 2, 0);
  check_stats(get(st, "denoise"), 2, 0);
  check_stats(get(st, "step"), 2 * 3, 0); /* every step of every timed run */
  check_stats(get(st, "decode"), 2, 0);
  check_stats(get(st, "encode"), 2, 0);
  /* A step is part of the denoising loop. */
  assert_true(num(get(st, "step"), "min") <= num(get(st, "denoise"), "max"));
  check_stats(get(o, "latency"), 2, 0);
  const json_t *mem = get(o, "memory");
  assert_true(num(mem, "model_bytes") > 0);
  assert_true(num(mem, "peak_scratch_bytes") > 0);
  const json_t *paths = get(o, "paths");
  assert_non_null(strstr(str(paths, "matmul"), "cpu-"));
  assert_true(strlen(str(paths, "attention")) > 0);
  assert_true(strlen(str(paths, "denoise")) > 0);
  assert_close(num(get(o, "cost"), "per_clip_usd"), 2.0 * num(get(o, "latency"), "p50") / 3600.0, 1e-9);
  const json_t *out = get(o, "output");
  assert_non_null(strstr(str(out, "url"), "/out.mp4"));
  assert_true(json_is_true(get(out, "identical")));
  char path[700];
  snprintf(path, sizeof path, "%s/out.mp4", f->dir);
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal((double)sb.st_size, num(out, "bytes"));
  json_decref(o);

  /* The portable GEMM path is there on every machine and build; bf16 activations are not on the CPU. */
  snprintf(args, sizeof args,
           "bench generate --model '%s/tests/fixtures/tiny-wan' --size 48x32 --frames 5 --steps 2 --runs 1 --warmup 0 "
           "--matmul portable --json",
           tu_source_dir());
  o = reel_json(f, args);
  assert_string_equal(str(get(o, "config"), "matmul"), "portable");
  assert_string_equal(str(get(o, "paths"), "matmul"), "cpu-portable-4x8");
  json_decref(o);
  snprintf(args, sizeof args,
           "bench generate --model '%s/tests/fixtures/tiny-wan' --size 48x32 --frames 5 --steps 2 --runs 1 "
           "--backend cpu --activations bf16",
           tu_source_dir());
  expect_usage_error(f, args, "--activations: bf16 activations need");
  assert_tmp_empty(f);
}

/* The FLOP count each op's shape implies. */
static double expected_flop(const char *op, const json_t *shape) {
  double d[6] = {0};
  for (size_t i = 0; i < json_array_size(shape) && i < 6; i++)
    d[i] = (double)json_integer_value(json_array_get(shape, i));
  if (!strcmp(op, "matmul")) return 2 * d[0] * d[1] * d[2];
  if (!strcmp(op, "attention")) return 4 * d[0] * d[2] * d[1] * d[1] * d[3];
  /* conv3d: [frames, H, W, cin, cout, k] -> (frames - k + 1) * H * W outputs of cout, cin * k^3 each */
  return 2 * (d[0] - d[5] + 1) * d[1] * d[2] * d[4] * d[3] * d[5] * d[5] * d[5];
}

static void test_ops(void **state) {
  fixture *f = *state;
  json_t *o = reel_json(f,
                        "bench ops --backend cpu --shapes tiny --rows 16 --tokens 16,32 --conv-size 8x8 --reps 2 "
                        "--paths auto,portable --json");
  assert_string_equal(str(o, "bench"), "ops");
  check_machine(o);
  assert_string_equal(str(o, "backend"), "cpu");
  assert_string_equal(str(o, "shapes"), "tiny");
  assert_int_equal((int)num(o, "reps"), 2);
  const json_t *res = get(o, "results");
  int counts[3] = {0, 0, 0};
  const char *ops[3] = {"matmul", "attention", "conv3d"};
  for (size_t i = 0; i < json_array_size(res); i++) {
    const json_t *r = json_array_get(res, i);
    const char *op = str(r, "op");
    int k = !strcmp(op, "matmul") ? 0 : !strcmp(op, "attention") ? 1 : !strcmp(op, "conv3d") ? 2 : -1;
    assert_true(k >= 0);
    counts[k]++;
    /* auto and portable exist everywhere; the attention's avx512 kernel only on some CPUs */
    if (strcmp(str(r, "status"), "ok") != 0) {
      assert_string_equal(str(r, "status"), "unavailable");
      assert_string_equal(str(r, "asked"), "avx512");
      continue;
    }
    assert_true(strlen(str(r, "path")) > 0);
    assert_true(num(r, "seconds") > 0 && num(r, "seconds_min") > 0 && num(r, "seconds_min") <= num(r, "seconds"));
    assert_int_equal((int)num(r, "reps"), 2);
    assert_close(num(r, "flop"), expected_flop(op, get(r, "shape")), 1e-12);
    assert_close(num(r, "gflops"), num(r, "flop") / num(r, "seconds") / 1e9, 1e-6);
    if (!strcmp(str(r, "asked"), "auto")) assert_close(num(r, "ratio"), 1.0, 1e-12); /* the reference of its row */
    if (!strcmp(str(r, "asked"), "portable") && k != 1) {
      assert_string_equal(str(r, "path"), k == 0 ? "cpu-portable-4x8" : "cpu-conv-im2col-gemm");
    }
  }
  assert_int_equal(counts[0], 4 * 2 * 2); /* 4 shapes x f32/bf16 x 2 paths */
  assert_int_equal(counts[1], 2 * 3);     /* 2 token counts x auto/avx512/portable */
  assert_int_equal(counts[2], 2 * 2);     /* 2 VAE widths x 2 paths */
  (void)ops;
  json_decref(o);
}

static void test_queue(void **state) {
  fixture *f = *state;
#ifndef REEL_TEST_HAVE_QUEUE
  skip(); /* reel was built without the queue (libzmq) */
#endif
  json_t *o = reel_json(f, "bench queue --jobs 200 --json");
  assert_string_equal(str(o, "bench"), "queue");
  check_machine(o);
  const json_t *c = get(o, "config");
  assert_int_equal((int)num(c, "jobs"), 200);
  assert_string_equal(str(c, "journal"), "on");
  const json_t *a = get(o, "accept");
  assert_int_equal((int)num(a, "accepted"), 200);
  assert_int_equal((int)num(a, "errors"), 0);
  assert_close(num(a, "per_second"), 200 / num(a, "seconds"), 1e-9);
  /* Durable: every accept was behind a commit; group commit may take several per commit. */
  assert_true(num(a, "journal_commits") >= 1 && num(a, "journal_commits") <= 200);
  const json_t *d = get(o, "drain");
  assert_int_equal((int)num(d, "completed"), 200);
  assert_close(num(d, "per_second"), 200 / num(d, "seconds"), 1e-9);
  const json_t *l = get(o, "latency");
  assert_int_equal((int)num(l, "jobs"), 200);
  assert_int_equal((int)num(l, "errors"), 0);
  check_stats(get(l, "ack_ms"), 200, 0);
  check_stats(get(l, "dispatch_ms"), 200, 0);
  json_decref(o);
  assert_tmp_empty(f); /* the journal directory is gone */

  o = reel_json(f, "bench queue --jobs 50 --latency-jobs 10 --journal off --clients 2 --workers 1 --json");
  assert_string_equal(str(get(o, "config"), "journal"), "off");
  assert_int_equal((int)num(get(o, "accept"), "accepted"), 50);
  assert_int_equal((int)num(get(o, "drain"), "completed"), 50);
  check_stats(get(get(o, "latency"), "dispatch_ms"), 10, 0);
  json_decref(o);
}

/* The best is one of the measured candidates and none measured was faster; the reference comes first. */
static void check_tune(const json_t *o) {
  assert_string_equal(str(o, "bench"), "tune");
  check_machine(o);
  const json_t *cands = get(o, "candidates");
  assert_true(json_array_size(cands) >= 1);
  const json_t *ref = json_array_get(cands, 0);
  assert_string_equal(str(ref, "status"), "measured");
  assert_string_equal(str(ref, "note"), "reference");
  assert_close(num(ref, "speedup"), 1.0, 1e-12);
  const json_t *best = get(o, "best");
  const int idx = (int)num(best, "index");
  assert_true(idx >= 0 && idx < (int)json_array_size(cands));
  const json_t *b = json_array_get(cands, (size_t)idx);
  assert_string_equal(str(b, "status"), "measured");
  assert_int_equal((int)num(b, "threads"), (int)num(best, "threads"));
  assert_string_equal(str(b, "matmul"), str(best, "matmul"));
  assert_string_equal(str(b, "activations"), str(best, "activations"));
  assert_close(num(get(b, "latency"), "p50"), num(best, "latency_p50"), 1e-12);
  const int runs = (int)num(o, "runs");
  for (size_t i = 0; i < json_array_size(cands); i++) {
    const json_t *c = json_array_get(cands, i);
    const char *s = str(c, "status");
    assert_true(!strcmp(s, "measured") || !strcmp(s, "unavailable") || !strcmp(s, "same") || !strcmp(s, "skipped"));
    if (strcmp(s, "measured") != 0) continue;
    check_stats(get(c, "latency"), runs, 0);
    /* A later candidate must be more than 2% faster to become the best. */
    assert_true(num(get(c, "latency"), "p50") >= 0.98 * num(best, "latency_p50"));
    assert_close(num(c, "speedup"), num(get(ref, "latency"), "p50") / num(get(c, "latency"), "p50"), 1e-9);
    assert_true(num(c, "threads") >= 1 && num(c, "threads") <= num(get(o, "machine"), "cpus_allowed"));
  }
  char want[64];
  snprintf(want, sizeof want, "--threads %d", (int)num(best, "threads"));
  assert_non_null(strstr(str(best, "bench_flags"), want));
  assert_non_null(strstr(str(best, "worker_flags"), want));
}

static void test_tune(void **state) {
  fixture *f = *state;
  json_t *o = reel_json(f, "tune --model builtin:testsrc --size 96x64 --frames 8 --budget-seconds 5 --runs 2 --json");
  check_tune(o);
  assert_close(num(o, "budget_seconds"), 5.0, 1e-12);
  assert_int_equal((int)num(o, "seed"), 42);
  json_decref(o);
  assert_tmp_empty(f);

  char args[1024];
  snprintf(args, sizeof args,
           "tune --model '%s/tests/fixtures/tiny-wan' --size 48x32 --frames 5 --steps 2 --budget-seconds 5 --runs 1 "
           "--warmup 0 --json",
           tu_source_dir());
  o = reel_json(f, args);
  check_tune(o);
  assert_string_equal(str(o, "backend"), "cpu");
  /* The GEMM paths were candidates; "portable" exists everywhere; bf16 activations cannot run on the CPU. */
  const json_t *cands = get(o, "candidates");
  int portable = 0, bf16 = 0;
  for (size_t i = 0; i < json_array_size(cands); i++) {
    const json_t *c = json_array_get(cands, i);
    if (!strcmp(str(c, "matmul"), "portable")) portable = 1;
    if (!strcmp(str(c, "activations"), "bf16")) {
      bf16 = 1;
      assert_string_equal(str(c, "status"), "unavailable");
    }
  }
  assert_true(portable);
  assert_true(bf16);
  assert_non_null(strstr(str(get(o, "best"), "worker_flags"), "--backend cpu"));
  json_decref(o);
  assert_tmp_empty(f);
}

static void test_bad_flags(void **state) {
  fixture *f = *state;
  expect_usage_error(f, "bench generate --runs 0", "--runs: must be an integer in 1..1000");
  expect_usage_error(f, "bench generate --warmup x", "--warmup");
  expect_usage_error(f, "bench generate --cost-per-hour -1", "--cost-per-hour: must be a number in 0..");
  expect_usage_error(f, "bench generate --cost-per-hour nan", "--cost-per-hour");
  expect_usage_error(f, "bench generate --matmul fast", "--matmul: must be auto, avx512");
  expect_usage_error(f, "bench generate --activations f16", "--activations: must be f32 or bf16");
  expect_usage_error(f, "bench generate --frames 0", "--frames: must be an integer in 1..1025");
  expect_usage_error(f, "bench generate --model builtin:testsrc --matmul auto", "--matmul: builtin:testsrc has no");
  expect_usage_error(f, "bench generate --bogus", "unknown option '--bogus'");
  expect_usage_error(f, "bench ops --reps 0", "--reps: must be an integer in 1..64");
  expect_usage_error(f, "bench ops --tokens 16,x", "--tokens");
  expect_usage_error(f, "bench ops --shapes 7b", "--shapes: must be 1.3b, 14b or tiny");
  expect_usage_error(f, "bench ops --conv-size 8", "--conv-size: must be HxW");
  expect_usage_error(f, "bench ops --paths auto,turbo", "--paths");
  expect_usage_error(f, "bench ops --ops fft", "--ops");
#ifdef REEL_TEST_HAVE_QUEUE
  expect_usage_error(f, "bench queue --jobs 0", "--jobs: must be an integer in 1..1000000");
  expect_usage_error(f, "bench queue --journal maybe", "--journal: must be on or off");
  expect_usage_error(f, "bench queue --clients 65", "--clients");
#endif
  expect_usage_error(f, "tune --budget-seconds 0", "--budget-seconds: must be a number in 1..86400");
  expect_usage_error(f, "tune --runs 0", "--runs");
  expect_usage_error(f, "tune --size 33x32", "--size");
  expect_usage_error(f, "bench generate --model no-such-model", "--model: 'no-such-model' is not available");
  expect_usage_error(f, "tune --model no-such-model", "--model: 'no-such-model' is not available");
  expect_usage_error(f, "bench generate -o /no/such/dir/x.mp4", "-o: '/no/such/dir/x.mp4'");
  char args[1024];
  /* The model's own size rule is checked once it is loaded: still the flag's fault. */
  snprintf(args, sizeof args, "tune --model '%s/tests/fixtures/tiny-wan' --size 56x32 --frames 5 --steps 1",
           tu_source_dir());
  expect_usage_error(f, args, "--size: must be a multiple of 16 for this model");
  expect_usage_error(f, "bench fastest", "unknown benchmark 'fastest'");
  char *out = NULL;
  assert_int_equal(run_reel(f, "bench", 1, &out), 2);
  free(out);
  assert_tmp_empty(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_generate_testsrc, setup, teardown),
      cmocka_unit_test_setup_teardown(test_generate_tiny_wan, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ops, setup, teardown),
      cmocka_unit_test_setup_teardown(test_queue, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tune, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_flags, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
