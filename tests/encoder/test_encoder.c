/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The encoding session and the decoder: testsrc frames encoded to MP4 (file
 * sink), fragmented MP4 (a streaming sink) and Matroska decode back to the same
 * number of frames at the same size within 35 dB PSNR of the input; options are
 * rejected with the field named; storage failures surface as the sink's error.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/alloc.h"
#include "reel/encoder.h"
#include "reel/sink.h"
#include "reel/testsrc.h"
#include "testutil.h"

enum { W = 320, H = 240, N = 24 };

typedef struct {
  char dir[512];
  reel_logger log;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  tu_mkdtemp(f->dir, sizeof f->dir);
  reel_logger_init(&f->log, REEL_LOG_WARN, REEL_LOG_TEXT, 2);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  reel_alloc_fail_after(-1, 0);
  tu_rmtree(f->dir);
  free(f);
  return 0;
}

/* ---- a streaming sink for tests: forwards writes to a file sink, cannot seek, may fail on demand ---- */

typedef struct stream_sink {
  reel_sink base;
  reel_sink *inner;
  uint64_t fail_after; /* fail the write that would pass this many bytes; 0 = never */
  uint64_t written;
} stream_sink;

static reel_status ss_write(reel_sink *s, const void *data, size_t len, reel_error *err) {
  stream_sink *ss = (stream_sink *)s;
  if (ss->fail_after && ss->written + len > ss->fail_after)
    return reel_error_set(err, REEL_ESTORAGE, "url", "test sink: storage went away after %llu bytes",
                          (unsigned long long)ss->written);
  ss->written += len;
  return reel_sink_write(ss->inner, data, len, err);
}

static reel_status ss_close(reel_sink *s, reel_sink_result *res, reel_error *err) {
  stream_sink *ss = (stream_sink *)s;
  reel_status st = reel_sink_close(&ss->inner, res, err);
  free(ss);
  return st;
}

static void ss_abort(reel_sink *s) {
  stream_sink *ss = (stream_sink *)s;
  reel_sink_abort(&ss->inner);
  free(ss);
}

static const reel_sink_ops stream_ops = {"test-stream", ss_write, NULL, NULL, ss_close, ss_abort};

static reel_sink *open_stream_sink(const char *path, uint64_t fail_after) {
  stream_sink *ss = calloc(1, sizeof *ss);
  reel_error err = {0};
  assert_int_equal(reel_sink_open(path, NULL, &ss->inner, &err), REEL_OK);
  ss->base.ops = &stream_ops;
  ss->base.url = reel_sink_url(ss->inner);
  ss->fail_after = fail_after;
  return &ss->base;
}

/* ---- helpers ---- */

static uint8_t *render_all(int w, int h, int n, uint64_t seed) {
  uint8_t *frames = malloc((size_t)w * h * 3 * n);
  reel_testsrc_params p = {w, h, n, seed};
  for (int i = 0; i < n; i++) reel_testsrc_render(&p, i, frames + (size_t)w * h * 3 * i, (size_t)w * 3);
  return frames;
}

static double psnr(const uint8_t *a, const uint8_t *b, size_t n) {
  double se = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)a[i] - (double)b[i];
    se += d * d;
  }
  if (se == 0) return 99.0;
  return 10.0 * log10(255.0 * 255.0 / (se / (double)n));
}

static void base_options(reel_encoder_options *o, const fixture *f) {
  reel_encoder_options_init(o);
  o->width = W;
  o->height = H;
  o->fps_num = 24;
  o->fps_den = 1;
  o->log = &f->log;
}

/* Decodes path and checks frame count, size and per-frame PSNR against the input; returns the lowest PSNR. */
static double check_decoded(const char *path, const uint8_t *frames, int w, int h, int n) {
  reel_decoder *d = NULL;
  reel_error err = {0};
  assert_int_equal(reel_decoder_open(path, 0, NULL, &d, &err), REEL_OK);
  reel_video_info info;
  reel_decoder_info(d, &info);
  assert_int_equal(info.width, w);
  assert_int_equal(info.height, h);
  assert_string_equal(info.codec, "h264");
  uint8_t *out = malloc((size_t)w * h * 3);
  double worst = 1e9;
  int count = 0;
  reel_status st;
  while ((st = reel_decoder_next_rgb(d, out, (size_t)w * 3, &err)) == REEL_OK) {
    assert_true(count < n);
    double p = psnr(out, frames + (size_t)w * h * 3 * count, (size_t)w * h * 3);
    if (p < worst) worst = p;
    count++;
  }
  assert_int_equal(st, REEL_EOF);
  assert_int_equal(count, n);
  if (worst < 35.0) fail_msg("%s: lowest PSNR %.2f dB < 35", path, worst);
  free(out);
  reel_decoder_destroy(&d);
  return worst;
}

/* ---- tests ---- */

static void test_mp4_round_trip(void **state) {
  fixture *f = *state;
  char path[600];
  snprintf(path, sizeof path, "%s/clip.mp4", f->dir);
  uint8_t *frames = render_all(W, H, N, 5);
  reel_encoder_options o;
  base_options(&o, f);
  reel_error err = {0};
  reel_sink *sink = NULL;
  reel_encoder *enc = NULL;
  assert_int_equal(reel_sink_open(path, NULL, &sink, &err), REEL_OK);
  assert_int_equal(reel_encoder_open(&o, sink, &enc, &err), REEL_OK);
  for (int i = 0; i < N; i++)
    assert_int_equal(reel_encoder_push_rgb(enc, frames + (size_t)W * H * 3 * i, W * 3, &err), REEL_OK);
  reel_encoder_stats stats;
  assert_int_equal(reel_encoder_finish(enc, &stats, &err), REEL_OK);
  assert_int_equal(stats.frames, N);
  assert_int_equal(stats.packets, N);
  assert_string_equal(stats.encoder, "libx264");
  assert_string_equal(stats.container, "mp4");
  /* Finished sessions refuse more frames. */
  assert_int_equal(reel_encoder_push_rgb(enc, frames, W * 3, &err), REEL_ESTATE);
  reel_error_clear(&err);
  reel_encoder_destroy(&enc);
  assert_null(enc);
  reel_sink_result res;
  assert_int_equal(reel_sink_close(&sink, &res, &err), REEL_OK);
  assert_true(res.bytes > stats.packet_bytes);
  /* faststart: the index (moov) precedes the media data (mdat). */
  size_t len = 0;
  char *bytes = tu_read_file(path, &len);
  assert_int_equal(len, res.bytes);
  assert_memory_equal(bytes + 4, "ftyp", 4);
  uint32_t ftyp = (uint32_t)(uint8_t)bytes[0] << 24 | (uint32_t)(uint8_t)bytes[1] << 16 |
                  (uint32_t)(uint8_t)bytes[2] << 8 | (uint8_t)bytes[3];
  assert_memory_equal(bytes + ftyp + 4, "moov", 4);
  free(bytes);
  reel_video_info info;
  reel_decoder *d = NULL;
  assert_int_equal(reel_decoder_open(path, 1, NULL, &d, &err), REEL_OK);
  reel_decoder_info(d, &info);
  assert_int_equal(info.fps_num, 24);
  assert_int_equal(info.fps_den, 1);
  assert_int_equal(info.frames, N);
  reel_decoder_destroy(&d);
  double worst = check_decoded(path, frames, W, H, N);
  print_message("mp4: %llu bytes, lowest PSNR %.2f dB\n", (unsigned long long)res.bytes, worst);
  free(frames);
}

static void test_float_frames(void **state) {
  fixture *f = *state;
  char path[600];
  snprintf(path, sizeof path, "%s/float.mp4", f->dir);
  enum { n = 6 };
  uint8_t *frames = render_all(W, H, n, 9);
  float *ff = malloc(sizeof(float) * (W * 3 + 6) * H);
  reel_encoder_options o;
  base_options(&o, f);
  reel_error err = {0};
  reel_sink *sink = NULL;
  reel_encoder *enc = NULL;
  assert_int_equal(reel_sink_open(path, NULL, &sink, &err), REEL_OK);
  assert_int_equal(reel_encoder_open(&o, sink, &enc, &err), REEL_OK);
  for (int i = 0; i < n; i++) {
    const uint8_t *src = frames + (size_t)W * H * 3 * i;
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W * 3; x++) ff[(size_t)y * (W * 3 + 6) + x] = src[(size_t)y * W * 3 + x] / 255.0f;
    ff[0] = -0.5f; /* out of range values clamp */
    ff[1] = 7.0f;
    assert_int_equal(reel_encoder_push_rgbf(enc, ff, W * 3 + 6, &err), REEL_OK);
  }
  assert_int_equal(reel_encoder_finish(enc, NULL, &err), REEL_OK);
  reel_encoder_destroy(&enc);
  assert_int_equal(reel_sink_close(&sink, NULL, &err), REEL_OK);
  check_decoded(path, frames, W, H, n);
  /* NaN is an error naming the frame and pixel, and poisons the session. */
  snprintf(path, sizeof path, "%s/nan.mp4", f->dir);
  assert_int_equal(reel_sink_open(path, NULL, &sink, &err), REEL_OK);
  assert_int_equal(reel_encoder_open(&o, sink, &enc, &err), REEL_OK);
  ff[(size_t)3 * (W * 3 + 6) + 5 * 3 + 1] = NAN;
  assert_int_equal(reel_encoder_push_rgbf(enc, ff, W * 3 + 6, &err), REEL_ENONFINITE);
  assert_string_equal(err.field, "rgb");
  assert_non_null(strstr(err.msg, "frame 0 pixel (5, 3) channel 1 is NaN"));
  reel_error_clear(&err);
  assert_int_equal(reel_encoder_finish(enc, NULL, &err), REEL_ESTATE);
  reel_encoder_destroy(&enc);
  reel_sink_abort(&sink);
  free(ff);
  free(frames);
}

static void test_fragmented_mp4_on_a_stream(void **state) {
  fixture *f = *state;
  char path[600];
  snprintf(path, sizeof path, "%s/stream.mp4", f->dir);
  uint8_t *frames = render_all(W, H, N, 11);
  reel_encoder_options o;
  base_options(&o, f);
  o.gop = 8; /* three fragments */
  reel_error err = {0};
  reel_sink *sink = open_stream_sink(path, 0);
  assert_false(reel_sink_seekable(sink));
  reel_encoder *enc = NULL;
  /* A plain MP4 needs to seek; the error says so and names the field. */
  o.container = REEL_CONTAINER_MP4;
  assert_int_equal(reel_encoder_open(&o, sink, &enc, &err), REEL_EINVAL);
  assert_string_equal(err.field, "container");
  assert_non_null(strstr(err.msg, "fmp4"));
  reel_error_clear(&err);
  o.container = REEL_CONTAINER_AUTO;
  assert_int_equal(reel_encoder_open(&o, sink, &enc, &err), REEL_OK);
  for (int i = 0; i < N; i++)
    assert_int_equal(reel_encoder_push_rgb(enc, frames + (size_t)W * H * 3 * i, W * 3, &err), REEL_OK);
  reel_encoder_stats stats;
  assert_int_equal(reel_encoder_finish(enc, &stats, &err), REEL_OK);
  assert_string_equal(stats.container, "fmp4");
  reel_encoder_destroy(&enc);
  assert_int_equal(reel_sink_close(&sink, NULL, &err), REEL_OK);
  /* Top-level boxes: ftyp, moov (empty), then moof/mdat pairs, one per keyframe interval. */
  size_t len = 0;
  uint8_t *b = (uint8_t *)tu_read_file(path, &len);
  int moofs = 0;
  char first[5] = "", second[5] = "";
  for (size_t at = 0; at + 8 <= len;) {
    uint32_t sz = (uint32_t)b[at] << 24 | (uint32_t)b[at + 1] << 16 | (uint32_t)b[at + 2] << 8 | b[at + 3];
    if (!first[0])
      memcpy(first, b + at + 4, 4);
    else if (!second[0])
      memcpy(second, b + at + 4, 4);
    if (!memcmp(b + at + 4, "moof", 4)) moofs++;
    assert_true(sz >= 8);
    at += sz;
  }
  assert_string_equal(first, "ftyp");
  assert_string_equal(second, "moov");
  assert_int_equal(moofs, 3);
  free(b);
  check_decoded(path, frames, W, H, N);
  free(frames);
}

static void test_mkv(void **state) {
  fixture *f = *state;
  char path[600];
  snprintf(path, sizeof path, "%s/clip.mkv", f->dir);
  enum { n = 5 };
  uint8_t *frames = render_all(W, H, n, 3);
  reel_encoder_options o;
  base_options(&o, f);
  o.container = REEL_CONTAINER_MKV;
  o.crf = 18;
  o.preset = "veryfast";
  reel_error err = {0};
  reel_sink *sink = NULL;
  reel_encoder *enc = NULL;
  assert_int_equal(reel_sink_open(path, NULL, &sink, &err), REEL_OK);
  assert_int_equal(reel_encoder_open(&o, sink, &enc, &err), REEL_OK);
  for (int i = 0; i < n; i++)
    assert_int_equal(reel_encoder_push_rgb(enc, frames + (size_t)W * H * 3 * i, W * 3, &err), REEL_OK);
  reel_encoder_stats stats;
  assert_int_equal(reel_encoder_finish(enc, &stats, &err), REEL_OK);
  assert_string_equal(stats.container, "mkv");
  reel_encoder_destroy(&enc);
  assert_int_equal(reel_sink_close(&sink, NULL, &err), REEL_OK);
  size_t len = 0;
  uint8_t *b = (uint8_t *)tu_read_file(path, &len);
  assert_memory_equal(b, "\x1a\x45\xdf\xa3", 4); /* EBML magic */
  free(b);
  check_decoded(path, frames, W, H, n);
  free(frames);
}

static void expect_rejected(reel_encoder_options *o, int seekable, reel_status code, const char *field,
                            const char *needle) {
  reel_error err = {0};
  reel_status st = reel_encoder_check_options(o, seekable, &err);
  if (st != code || strcmp(err.field, field) != 0)
    fail_msg("expected %s on '%s', got %s on '%s' (%s)", reel_status_name(code), field, reel_status_name(st), err.field,
             err.msg);
  if (needle && !strstr(err.msg, needle)) fail_msg("message '%s' lacks '%s'", err.msg, needle);
}

static void test_bad_options(void **state) {
  fixture *f = *state;
  reel_encoder_options o;
  reel_error err = {0};
  base_options(&o, f);
  assert_int_equal(reel_encoder_check_options(&o, 1, &err), REEL_OK);
  o.width = 321;
  expect_rejected(&o, 1, REEL_ERANGE, "width", "even");
  base_options(&o, f);
  o.height = 8;
  expect_rejected(&o, 1, REEL_ERANGE, "height", "16..8192");
  base_options(&o, f);
  o.fps_num = 0;
  expect_rejected(&o, 1, REEL_ERANGE, "fps", NULL);
  base_options(&o, f);
  o.fps_num = 5000;
  expect_rejected(&o, 1, REEL_ERANGE, "fps", "at most 1000");
  base_options(&o, f);
  o.crf = 52;
  expect_rejected(&o, 1, REEL_ERANGE, "crf", "0..51");
  base_options(&o, f);
  o.preset = "turbo";
  expect_rejected(&o, 1, REEL_EINVAL, "preset", "veryfast");
  base_options(&o, f);
  o.codec = (reel_codec)9;
  expect_rejected(&o, 1, REEL_EUNSUPPORTED, "codec", "h264, hevc, av1, vp9");
  base_options(&o, f);
  o.container = REEL_CONTAINER_WEBM;
  expect_rejected(&o, 1, REEL_EINVAL, "container", "webm carries only av1 or vp9, not h264");
  base_options(&o, f);
  o.gop = -1;
  expect_rejected(&o, 1, REEL_ERANGE, "gop", NULL);
  base_options(&o, f);
  o.threads = 1000;
  expect_rejected(&o, 1, REEL_ERANGE, "threads", NULL);
  base_options(&o, f);
  o.container = REEL_CONTAINER_MP4;
  expect_rejected(&o, 0, REEL_EINVAL, "container", "seek");
  /* open applies the same checks and leaves nothing allocated. */
  char path[600];
  snprintf(path, sizeof path, "%s/x.mp4", f->dir);
  reel_sink *sink = NULL;
  reel_encoder *enc = (reel_encoder *)(uintptr_t)1;
  assert_int_equal(reel_sink_open(path, NULL, &sink, &err), REEL_OK);
  base_options(&o, f);
  o.crf = 99;
  assert_int_equal(reel_encoder_open(&o, sink, &enc, &err), REEL_ERANGE);
  assert_null(enc);
  assert_string_equal(err.field, "crf");
  reel_error_clear(&err);
  /* Bad frames: a stride below width * 3. */
  base_options(&o, f);
  assert_int_equal(reel_encoder_open(&o, sink, &enc, &err), REEL_OK);
  uint8_t row[W * 3];
  assert_int_equal(reel_encoder_push_rgb(enc, row, W * 3 - 1, &err), REEL_EINVAL);
  assert_string_equal(err.field, "stride");
  reel_error_clear(&err);
  assert_int_equal(reel_encoder_push_rgb(enc, NULL, W * 3, &err), REEL_EINVAL);
  assert_string_equal(err.field, "rgb");
  reel_encoder_destroy(&enc); /* unfinished: fine */
  reel_sink_abort(&sink);
  reel_encoder_destroy(NULL);
}

static void test_storage_failure_is_reported(void **state) {
  fixture *f = *state;
  char path[600];
  snprintf(path, sizeof path, "%s/fail.mp4", f->dir);
  uint8_t *frames = render_all(W, H, N, 2);
  reel_encoder_options o;
  base_options(&o, f);
  reel_logger quiet;
  reel_logger_init(&quiet, REEL_LOG_OFF, REEL_LOG_TEXT, 2);
  o.log = &quiet;
  o.gop = 4;
  reel_error err = {0};
  reel_sink *sink = open_stream_sink(path, 4000);
  reel_encoder *enc = NULL;
  reel_status st = reel_encoder_open(&o, sink, &enc, &err);
  for (int i = 0; st == REEL_OK && i < N; i++)
    st = reel_encoder_push_rgb(enc, frames + (size_t)W * H * 3 * i, W * 3, &err);
  if (st == REEL_OK) st = reel_encoder_finish(enc, NULL, &err);
  /* The sink's own error comes through, not a generic I/O error from FFmpeg. */
  assert_int_equal(st, REEL_ESTORAGE);
  assert_non_null(strstr(err.msg, "storage went away"));
  reel_encoder_destroy(&enc);
  reel_sink_abort(&sink);
  free(frames);
}

static void test_open_alloc_failures(void **state) {
  fixture *f = *state;
  char path[600];
  snprintf(path, sizeof path, "%s/inj.mp4", f->dir);
  reel_encoder_options o;
  base_options(&o, f);
  o.job_id = "job-1";
  int ok = 0;
  for (long k = 0; k < 50 && !ok; k++) {
    reel_error err = {0};
    reel_sink *sink = NULL;
    assert_int_equal(reel_sink_open(path, NULL, &sink, &err), REEL_OK);
    reel_encoder *enc = NULL;
    reel_alloc_fail_after(k, 0);
    reel_status st = reel_encoder_open(&o, sink, &enc, &err);
    reel_alloc_fail_after(-1, 0);
    if (st == REEL_OK) {
      ok = 1;
      reel_encoder_destroy(&enc);
    } else {
      assert_int_equal(st, REEL_ENOMEM);
      assert_null(enc);
    }
    reel_sink_abort(&sink);
  }
  assert_true(ok);
}

static void test_decoder_errors(void **state) {
  fixture *f = *state;
  reel_decoder *d = (reel_decoder *)(uintptr_t)1;
  reel_error err = {0};
  char path[600];
  snprintf(path, sizeof path, "%s/missing.mp4", f->dir);
  assert_int_equal(reel_decoder_open(path, 0, NULL, &d, &err), REEL_ENOTFOUND);
  assert_null(d);
  assert_string_equal(err.field, "path");
  reel_error_clear(&err);
  snprintf(path, sizeof path, "%s/text.mp4", f->dir);
  tu_write_file(path, "this is not a video file at all\n", 32);
  reel_logger quiet;
  reel_logger_init(&quiet, REEL_LOG_OFF, REEL_LOG_TEXT, 2);
  assert_int_equal(reel_decoder_open(path, 0, &quiet, &d, &err), REEL_EFORMAT);
  assert_string_equal(err.field, "path");
  reel_error_clear(&err);
  assert_int_equal(reel_decoder_open("", 0, NULL, &d, &err), REEL_EINVAL);
  reel_error_clear(&err);
  /* Other protocols are refused. */
  assert_int_not_equal(reel_decoder_open("http://127.0.0.1:9/x.mp4", 0, &quiet, &d, &err), REEL_OK);
  assert_null(d);
  reel_decoder_destroy(NULL);
}

static void test_fps_fraction(void **state) {
  (void)state;
  int n, d;
  assert_int_equal(reel_fps_to_fraction(24, &n, &d), REEL_OK);
  assert_true(n == 24 && d == 1);
  assert_int_equal(reel_fps_to_fraction(23.976, &n, &d), REEL_OK);
  assert_true(n == 24000 && d == 1001);
  assert_int_equal(reel_fps_to_fraction(29.97, &n, &d), REEL_OK);
  assert_true(n == 30000 && d == 1001);
  assert_int_equal(reel_fps_to_fraction(59.94, &n, &d), REEL_OK);
  assert_true(n == 60000 && d == 1001);
  assert_int_equal(reel_fps_to_fraction(12.5, &n, &d), REEL_OK);
  assert_true(n == 25 && d == 2);
  assert_int_equal(reel_fps_to_fraction(0.5, &n, &d), REEL_OK);
  assert_true(n == 1 && d == 2);
  assert_int_equal(reel_fps_to_fraction(0, &n, &d), REEL_ERANGE);
  assert_int_equal(reel_fps_to_fraction(NAN, &n, &d), REEL_ERANGE);
  assert_int_equal(reel_fps_to_fraction(1001, &n, &d), REEL_ERANGE);
}

int main(void) {
  reel_ffmpeg_route_logs();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_mp4_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_float_frames, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fragmented_mp4_on_a_stream, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mkv, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
      cmocka_unit_test_setup_teardown(test_storage_failure_is_reported, setup, teardown),
      cmocka_unit_test_setup_teardown(test_open_alloc_failures, setup, teardown),
      cmocka_unit_test_setup_teardown(test_decoder_errors, setup, teardown),
      cmocka_unit_test(test_fps_fraction),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
