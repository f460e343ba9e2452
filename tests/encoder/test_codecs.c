/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every codec x container pair the encoder offers, checked by a reader we did
 * not write: ffprobe must see the codec, the pixel format, BT.709 limited-range
 * tags and exactly the frames pushed (and the hvc1 sample entry for HEVC in
 * MP4); decoding the file back must be within 35 dB PSNR of the input frames at
 * the codec's default quality. Fragmented MP4 goes through a sink that cannot
 * seek, as an s3:// upload would. 10-bit output, bit-rate mode, and the
 * combinations a container cannot carry (rejected naming "container") too.
 *
 * Frames are small (192x128, 8 frames) so that the whole matrix takes seconds;
 * presets are the codecs' defaults (x265's ultrafast and SVT-AV1's fastest
 * presets fall below 35 dB on this detailed pattern at their default CRF).
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/encoder.h"
#include "reel/json.h"
#include "reel/sink.h"
#include "reel/testsrc.h"
#include "testutil.h"

enum { W = 192, H = 128, N = 8 };

typedef struct {
  char dir[512];
  reel_logger log;
  uint8_t *frames; /* N frames of W x H RGB24 */
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  if (!tu_have_program("ffprobe")) fail_msg("ffprobe is not installed (Debian package ffmpeg)");
  tu_mkdtemp(f->dir, sizeof f->dir);
  reel_logger_init(&f->log, REEL_LOG_WARN, REEL_LOG_TEXT, 2);
  f->frames = malloc((size_t)W * H * 3 * N);
  reel_testsrc_params p = {W, H, N, 21};
  for (int i = 0; i < N; i++) reel_testsrc_render(&p, i, f->frames + (size_t)W * H * 3 * i, (size_t)W * 3);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  tu_rmtree(f->dir);
  free(f->frames);
  free(f);
  return 0;
}

/* ---- a sink that cannot seek (forwards to a file sink) ---- */

typedef struct stream_sink {
  reel_sink base;
  reel_sink *inner;
} stream_sink;

static reel_status ss_write(reel_sink *s, const void *data, size_t len, reel_error *err) {
  return reel_sink_write(((stream_sink *)s)->inner, data, len, err);
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

static reel_sink *open_sink(const char *path, int streaming) {
  reel_sink *inner = NULL;
  reel_error err = {0};
  assert_int_equal(reel_sink_open(path, NULL, &inner, &err), REEL_OK);
  if (!streaming) return inner;
  stream_sink *ss = calloc(1, sizeof *ss);
  ss->inner = inner;
  ss->base.ops = &stream_ops;
  ss->base.url = reel_sink_url(inner);
  return &ss->base;
}

/* ---- checks ---- */

static double psnr(const uint8_t *a, const uint8_t *b, size_t n) {
  double se = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)a[i] - (double)b[i];
    se += d * d;
  }
  return se == 0 ? 99.0 : 10.0 * log10(255.0 * 255.0 / (se / (double)n));
}

/* Decodes path with reel's decoder: N frames, each within 35 dB of the input. Returns the lowest PSNR. */
static double decoded_psnr(const fixture *f, const char *path) {
  reel_decoder *d = NULL;
  reel_error err = {0};
  if (reel_decoder_open(path, 1, NULL, &d, &err) != REEL_OK) fail_msg("%s: %s: %s", path, err.field, err.msg);
  uint8_t out[W * H * 3];
  double worst = 1e9;
  int count = 0;
  reel_status st;
  while ((st = reel_decoder_next_rgb(d, out, W * 3, &err)) == REEL_OK) {
    assert_true(count < N);
    double p = psnr(out, f->frames + (size_t)W * H * 3 * count, sizeof out);
    if (p < worst) worst = p;
    count++;
  }
  assert_int_equal(st, REEL_EOF);
  assert_int_equal(count, N);
  reel_decoder_destroy(&d);
  if (worst < 35.0) fail_msg("%s: lowest PSNR %.2f dB < 35", path, worst);
  return worst;
}

static json_t *probe(const char *path) {
  char cmd[1024], *out = NULL;
  snprintf(cmd, sizeof cmd,
           "ffprobe -v error -count_frames -select_streams v:0 -show_entries "
           "stream=codec_name,codec_tag_string,width,height,nb_read_frames,pix_fmt,color_space,color_primaries,"
           "color_transfer,color_range:format=format_name -of json '%s'",
           path);
  int rc = tu_run(cmd, &out);
  if (rc != 0) fail_msg("ffprobe %s exited %d: %s", path, rc, out ? out : "");
  json_t *root = NULL;
  reel_error err = {0};
  assert_int_equal(reel_json_parse(out, strlen(out), "ffprobe", &root, &err), REEL_OK);
  free(out);
  return root;
}

static const char *stream_str(json_t *root, const char *k) {
  json_t *s = json_array_get(json_object_get(root, "streams"), 0);
  json_t *v = json_object_get(s, k);
  if (!json_is_string(v)) fail_msg("ffprobe: stream '%s' missing", k);
  return json_string_value(v);
}

#define EXPECT_STR(root, key, want)                                                                 \
  do {                                                                                              \
    const char *got_ = stream_str(root, key);                                                       \
    if (strcmp(got_, want)) fail_msg("%s: ffprobe %s is '%s', want '%s'", path, key, got_, (want)); \
  } while (0)

typedef struct {
  reel_codec codec;
  const char *probe_name; /* ffprobe's codec_name */
  const char *preset;     /* NULL = the default */
  const char *encoder;
} codec_case;

static const codec_case codecs[] = {
    {REEL_CODEC_H264, "h264", "veryfast", "libx264"},
    {REEL_CODEC_HEVC, "hevc", NULL, "libx265"},
    {REEL_CODEC_AV1, "av1", NULL, "libsvtav1"},
    {REEL_CODEC_VP9, "vp9", NULL, "libvpx-vp9"},
};

typedef struct {
  reel_container container;
  const char *ext;
  const char *format; /* ffprobe's format_name starts with this */
  int streaming;      /* through a sink that cannot seek */
} container_case;

static const container_case containers[] = {
    {REEL_CONTAINER_MP4, "mp4", "mov,mp4", 0},
    {REEL_CONTAINER_FMP4, "mp4", "mov,mp4", 1},
    {REEL_CONTAINER_MKV, "mkv", "matroska", 0},
    {REEL_CONTAINER_WEBM, "webm", "matroska", 0},
};

/* Encodes the fixture's frames; returns the status of open (the rest must succeed). */
static reel_status encode(const fixture *f, const reel_encoder_options *o, const char *path, int streaming,
                          reel_encoder_stats *stats, reel_error *err) {
  reel_sink *sink = open_sink(path, streaming);
  reel_encoder *enc = NULL;
  reel_status st = reel_encoder_open(o, sink, &enc, err);
  if (st != REEL_OK) {
    assert_null(enc);
    reel_sink_abort(&sink);
    return st;
  }
  for (int i = 0; i < N; i++)
    if (reel_encoder_push_rgb(enc, f->frames + (size_t)W * H * 3 * i, W * 3, err) != REEL_OK)
      fail_msg("%s: frame %d: %s: %s", path, i, err->field, err->msg);
  if (reel_encoder_finish(enc, stats, err) != REEL_OK) fail_msg("%s: finish: %s: %s", path, err->field, err->msg);
  reel_encoder_destroy(&enc);
  assert_int_equal(reel_sink_close(&sink, NULL, err), REEL_OK);
  return REEL_OK;
}

static void base_options(reel_encoder_options *o, const fixture *f, const codec_case *cc) {
  reel_encoder_options_init(o);
  o->codec = cc->codec;
  o->preset = cc->preset;
  o->width = W;
  o->height = H;
  o->fps_num = 24;
  o->fps_den = 1;
  o->gop = 4;
  o->log = &f->log;
}

static void check_probe(const char *path, const codec_case *cc, const container_case *ct, const char *pix_fmt) {
  json_t *root = probe(path);
  EXPECT_STR(root, "codec_name", cc->probe_name);
  EXPECT_STR(root, "pix_fmt", pix_fmt);
  EXPECT_STR(root, "color_range", "tv");
  EXPECT_STR(root, "color_space", "bt709");
  EXPECT_STR(root, "color_primaries", "bt709");
  EXPECT_STR(root, "color_transfer", "bt709");
  EXPECT_STR(root, "nb_read_frames", "8");
  if (cc->codec == REEL_CODEC_HEVC && ct->container != REEL_CONTAINER_MKV) EXPECT_STR(root, "codec_tag_string", "hvc1");
  const char *fmt = json_string_value(json_object_get(json_object_get(root, "format"), "format_name"));
  if (!fmt || strncmp(fmt, ct->format, strlen(ct->format)))
    fail_msg("%s: format '%s', want '%s'", path, fmt ? fmt : "?", ct->format);
  json_decref(root);
}

static void test_matrix(void **state) {
  fixture *f = *state;
  for (size_t i = 0; i < sizeof codecs / sizeof codecs[0]; i++) {
    for (size_t j = 0; j < sizeof containers / sizeof containers[0]; j++) {
      const codec_case *cc = &codecs[i];
      const container_case *ct = &containers[j];
      char path[700];
      snprintf(path, sizeof path, "%s/%s-%s.%s", f->dir, cc->probe_name, reel_container_names[ct->container], ct->ext);
      reel_encoder_options o;
      base_options(&o, f, cc);
      o.container = ct->container;
      reel_error err = {0};
      reel_encoder_stats stats;
      int webm_only =
          ct->container == REEL_CONTAINER_WEBM && (cc->codec == REEL_CODEC_H264 || cc->codec == REEL_CODEC_HEVC);
      reel_status st = encode(f, &o, path, ct->streaming, &stats, &err);
      if (webm_only) {
        /* H.264/HEVC in WebM: refused before anything is written, naming the field. */
        assert_int_equal(st, REEL_EINVAL);
        assert_string_equal(err.field, "container");
        assert_non_null(strstr(err.msg, "webm carries only"));
        assert_non_null(strstr(err.msg, cc->probe_name));
        continue;
      }
      if (st != REEL_OK) fail_msg("%s: open: %s: %s", path, err.field, err.msg);
      assert_int_equal(stats.frames, N);
      assert_string_equal(stats.encoder, cc->encoder);
      assert_string_equal(stats.container, reel_container_names[ct->container]);
      assert_string_equal(stats.pix_fmt, "yuv420p");
      check_probe(path, cc, ct, "yuv420p");
      double worst = decoded_psnr(f, path);
      print_message("%-5s %-5s %6llu bytes, lowest PSNR %.2f dB\n", cc->probe_name, reel_container_names[ct->container],
                    (unsigned long long)stats.packet_bytes, worst);
    }
  }
}

/* 10-bit output from 8-bit and from float frames, one container per codec. */
static void test_ten_bit(void **state) {
  fixture *f = *state;
  float *ff = malloc(sizeof(float) * W * H * 3);
  for (size_t i = 0; i < sizeof codecs / sizeof codecs[0]; i++) {
    const codec_case *cc = &codecs[i];
    const container_case *ct = &containers[i % 3]; /* mp4, fmp4, mkv, mp4 */
    for (int from_float = 0; from_float < 2; from_float++) {
      char path[700];
      snprintf(path, sizeof path, "%s/%s-10bit-%d.%s", f->dir, cc->probe_name, from_float, ct->ext);
      reel_encoder_options o;
      base_options(&o, f, cc);
      o.container = ct->container;
      o.pix_fmt = REEL_PIX_YUV420P10;
      reel_error err = {0};
      reel_sink *sink = open_sink(path, ct->streaming);
      reel_encoder *enc = NULL;
      if (reel_encoder_open(&o, sink, &enc, &err)) fail_msg("%s: %s: %s", path, err.field, err.msg);
      for (int k = 0; k < N; k++) {
        const uint8_t *src = f->frames + (size_t)W * H * 3 * k;
        if (from_float) {
          for (int p = 0; p < W * H * 3; p++) ff[p] = src[p] / 255.0f;
          assert_int_equal(reel_encoder_push_rgbf(enc, ff, W * 3, &err), REEL_OK);
        } else {
          assert_int_equal(reel_encoder_push_rgb(enc, src, W * 3, &err), REEL_OK);
        }
      }
      reel_encoder_stats stats;
      assert_int_equal(reel_encoder_finish(enc, &stats, &err), REEL_OK);
      assert_string_equal(stats.pix_fmt, "yuv420p10le");
      reel_encoder_destroy(&enc);
      assert_int_equal(reel_sink_close(&sink, NULL, &err), REEL_OK);
      check_probe(path, cc, ct, "yuv420p10le");
      double worst = decoded_psnr(f, path);
      print_message("%-5s 10-bit (%s input) lowest PSNR %.2f dB\n", cc->probe_name, from_float ? "float" : "8-bit",
                    worst);
    }
  }
  free(ff);
}

/* Bit-rate mode: a low and a high target give files in that order, both valid. */
static void test_bitrate(void **state) {
  fixture *f = *state;
  for (size_t i = 0; i < sizeof codecs / sizeof codecs[0]; i++) {
    const codec_case *cc = &codecs[i];
    uint64_t bytes[2];
    const int rates[2] = {20, 2000};
    for (int k = 0; k < 2; k++) {
      char path[700];
      snprintf(path, sizeof path, "%s/%s-%dk.mkv", f->dir, cc->probe_name, rates[k]);
      reel_encoder_options o;
      base_options(&o, f, cc);
      o.container = REEL_CONTAINER_MKV;
      o.bitrate = rates[k];
      reel_error err = {0};
      reel_encoder_stats stats;
      if (encode(f, &o, path, 0, &stats, &err)) fail_msg("%s: %s: %s", path, err.field, err.msg);
      assert_int_equal(stats.frames, N);
      bytes[k] = stats.packet_bytes;
    }
    print_message("%-5s 20 kbit/s: %llu bytes, 2000 kbit/s: %llu bytes\n", cc->probe_name, (unsigned long long)bytes[0],
                  (unsigned long long)bytes[1]);
    if (bytes[0] >= bytes[1])
      fail_msg("%s: 20 kbit/s gave %llu bytes, 2000 kbit/s %llu", cc->probe_name, (unsigned long long)bytes[0],
               (unsigned long long)bytes[1]);
  }
}

static void expect_rejected(const reel_encoder_options *o, reel_status code, const char *field, const char *needle) {
  reel_error err = {0};
  reel_status st = reel_encoder_check_options(o, 1, &err);
  if (st != code || strcmp(err.field, field) != 0)
    fail_msg("expected %s on '%s', got %s on '%s' (%s)", reel_status_name(code), field, reel_status_name(st), err.field,
             err.msg);
  if (needle && !strstr(err.msg, needle)) fail_msg("message '%s' lacks '%s'", err.msg, needle);
}

static void test_codec_limits(void **state) {
  fixture *f = *state;
  reel_encoder_options o;
  /* Each codec's CRF range and presets. */
  base_options(&o, f, &codecs[1]);
  o.crf = 52;
  expect_rejected(&o, REEL_ERANGE, "crf", "0..51 for hevc (libx265)");
  base_options(&o, f, &codecs[2]);
  o.crf = 0;
  expect_rejected(&o, REEL_ERANGE, "crf", "1..63 for av1 (libsvtav1)");
  o.crf = 63;
  expect_rejected(&o, REEL_OK, "", NULL);
  base_options(&o, f, &codecs[3]);
  o.crf = 64;
  expect_rejected(&o, REEL_ERANGE, "crf", "0..63 for vp9");
  base_options(&o, f, &codecs[2]);
  o.preset = "14";
  expect_rejected(&o, REEL_EINVAL, "preset", "0, 1, 2");
  base_options(&o, f, &codecs[3]);
  o.preset = "medium";
  expect_rejected(&o, REEL_EINVAL, "preset", "libvpx-vp9");
  base_options(&o, f, &codecs[1]);
  o.preset = "veryslow";
  expect_rejected(&o, REEL_OK, "", NULL);
  /* SVT-AV1's minimum frame size. */
  base_options(&o, f, &codecs[2]);
  o.height = 48;
  expect_rejected(&o, REEL_ERANGE, "height", "64..8192 for av1");
  o.height = 64;
  o.width = 62;
  expect_rejected(&o, REEL_ERANGE, "width", "64..8192 for av1");
  /* Bit rate: range, and not together with crf. */
  base_options(&o, f, &codecs[0]);
  o.bitrate = -5;
  expect_rejected(&o, REEL_ERANGE, "bitrate", "1..1000000");
  o.bitrate = 1000001;
  expect_rejected(&o, REEL_ERANGE, "bitrate", "kbit/s");
  o.bitrate = 500;
  o.crf = 20;
  expect_rejected(&o, REEL_EINVAL, "bitrate", "crf");
  base_options(&o, f, &codecs[0]);
  o.pix_fmt = (reel_pix_fmt)7;
  expect_rejected(&o, REEL_EINVAL, "pix_fmt", "yuv420p10le");
  /* What WebM carries. */
  base_options(&o, f, &codecs[0]);
  o.container = REEL_CONTAINER_WEBM;
  expect_rejected(&o, REEL_EINVAL, "container", "webm carries only av1 or vp9, not h264");
}

int main(void) {
  reel_json_use_reel_alloc();
  reel_ffmpeg_route_logs();
  setenv("SVT_LOG", "1", 0); /* SVT-AV1 prints its banner to stderr unless told (errors only) */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_matrix, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ten_bit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bitrate, setup, teardown),
      cmocka_unit_test_setup_teardown(test_codec_limits, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
