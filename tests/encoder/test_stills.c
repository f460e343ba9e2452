/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Poster images and animated previews made by an encoding session. The
 * poster is the frame asked for (PNG: bit-exact; JPEG: closer to that frame
 * than to any other) or the middle one; the GIF preview is what ffprobe says
 * it should be (size, frame count, duration) and each of its frames is the
 * scaled-down source frame due at that time; the WebP preview has the RIFF
 * structure of an animation (canvas, loop forever, one ANMF per frame, the
 * durations adding up) and its first frame decodes, with FFmpeg's WebP decoder,
 * to the scaled-down first frame. Bad options name their field.
 */
#include <jansson.h>
#include <libswscale/swscale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/encoder.h"
#include "reel/image.h"
#include "reel/json.h"
#include "reel/sink.h"
#include "reel/testsrc.h"
#include "testutil.h"

enum { W = 192, H = 128, N = 24, PW = 96, PH = 64 };

typedef struct {
  char dir[512];
  reel_logger log;
  uint8_t *frames; /* N frames of W x H RGB24, 24 fps */
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  if (!tu_have_program("ffprobe")) fail_msg("ffprobe is not installed (Debian package ffmpeg)");
  tu_mkdtemp(f->dir, sizeof f->dir);
  reel_logger_init(&f->log, REEL_LOG_ERROR, REEL_LOG_TEXT, 2);
  f->frames = malloc((size_t)W * H * 3 * N);
  reel_testsrc_params p = {W, H, N, 8};
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

static const uint8_t *frame(const fixture *f, int i) { return f->frames + (size_t)W * H * 3 * i; }

static double psnr(const uint8_t *a, const uint8_t *b, size_t n) {
  double se = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)a[i] - (double)b[i];
    se += d * d;
  }
  return se == 0 ? 99.0 : 10.0 * log10(255.0 * 255.0 / (se / (double)n));
}

/* Source frame i scaled to PW x PH with the area filter the preview uses. */
static void scaled(const fixture *f, int i, uint8_t *out) {
  struct SwsContext *s = sws_getContext(W, H, AV_PIX_FMT_RGB24, PW, PH, AV_PIX_FMT_RGB24, SWS_AREA, NULL, NULL, NULL);
  assert_non_null(s);
  const uint8_t *src[4] = {frame(f, i)};
  const int ss[4] = {W * 3};
  uint8_t *dst[4] = {out};
  const int ds[4] = {PW * 3};
  sws_scale(s, src, ss, 0, H, dst, ds);
  sws_freeContext(s);
}

static json_t *probe(const char *path) {
  char cmd[1024], *out = NULL;
  snprintf(cmd, sizeof cmd,
           "ffprobe -v error -count_frames -select_streams v:0 -show_entries "
           "stream=codec_name,width,height,nb_read_frames:format=format_name,duration -of json '%s'",
           path);
  int rc = tu_run(cmd, &out);
  if (rc != 0) fail_msg("ffprobe %s exited %d: %s", path, rc, out ? out : "");
  json_t *root = NULL;
  reel_error err = {0};
  assert_int_equal(reel_json_parse(out, strlen(out), "ffprobe", &root, &err), REEL_OK);
  free(out);
  return root;
}

static json_t *stream0(json_t *root) { return json_array_get(json_object_get(root, "streams"), 0); }

/* Encodes the fixture's frames (from frame `from` on, `n` of them) with o; returns finish's stats. */
static void encode(const fixture *f, reel_encoder_options *o, int n, reel_encoder_stats *stats) {
  char path[700];
  snprintf(path, sizeof path, "%s/clip.mkv", f->dir);
  reel_error err = {0};
  reel_sink *sink = NULL;
  reel_encoder *enc = NULL;
  assert_int_equal(reel_sink_open(path, NULL, &sink, &err), REEL_OK);
  if (reel_encoder_open(o, sink, &enc, &err)) fail_msg("open: %s: %s", err.field, err.msg);
  for (int i = 0; i < n; i++) assert_int_equal(reel_encoder_push_rgb(enc, frame(f, i), W * 3, &err), REEL_OK);
  if (reel_encoder_finish(enc, stats, &err)) fail_msg("finish: %s: %s", err.field, err.msg);
  reel_encoder_destroy(&enc);
  assert_int_equal(reel_sink_close(&sink, NULL, &err), REEL_OK);
}

static void base_options(reel_encoder_options *o, const fixture *f) {
  reel_encoder_options_init(o);
  o->width = W;
  o->height = H;
  o->fps_num = 24;
  o->fps_den = 1;
  o->preset = "ultrafast";
  o->container = REEL_CONTAINER_MKV;
  o->log = &f->log;
}

/* Decodes a single image file into w x h RGB24. */
static void decode_image(const char *path, int w, int h, uint8_t *out) {
  reel_decoder *d = NULL;
  reel_error err = {0};
  if (reel_decoder_open(path, 1, NULL, &d, &err)) fail_msg("%s: %s", path, err.msg);
  reel_video_info info;
  reel_decoder_info(d, &info);
  assert_int_equal(info.width, w);
  assert_int_equal(info.height, h);
  assert_int_equal(reel_decoder_next_rgb(d, out, (size_t)w * 3, &err), REEL_OK);
  reel_decoder_destroy(&d);
}

static void test_png_poster_is_the_frame(void **state) {
  fixture *f = *state;
  char poster[700];
  snprintf(poster, sizeof poster, "%s/poster.png", f->dir);
  reel_encoder_options o;
  base_options(&o, f);
  o.poster = poster;
  o.poster_frame = 5;
  reel_encoder_stats stats;
  encode(f, &o, N, &stats);
  assert_int_equal(stats.poster_frame, 5);
  assert_non_null(strstr(stats.poster_url, "poster.png"));
  assert_string_equal(stats.preview_url, "");
  json_t *root = probe(poster);
  assert_string_equal(json_string_value(json_object_get(stream0(root), "codec_name")), "png");
  assert_int_equal(json_integer_value(json_object_get(stream0(root), "width")), W);
  json_decref(root);
  static uint8_t img[W * H * 3];
  decode_image(poster, W, H, img);
  assert_memory_equal(img, frame(f, 5), sizeof img); /* PNG is lossless: exactly frame 5 */
}

static void test_jpeg_poster_middle_frame(void **state) {
  fixture *f = *state;
  char poster[700];
  snprintf(poster, sizeof poster, "%s/poster.jpg", f->dir);
  reel_encoder_options o;
  base_options(&o, f);
  o.poster = poster;
  o.expected_frames = N; /* poster_frame -1: the middle, frame 12 */
  reel_encoder_stats stats;
  encode(f, &o, N, &stats);
  assert_int_equal(stats.poster_frame, N / 2);
  json_t *root = probe(poster);
  assert_string_equal(json_string_value(json_object_get(stream0(root), "codec_name")), "mjpeg");
  json_decref(root);
  static uint8_t img[W * H * 3];
  decode_image(poster, W, H, img);
  int best = -1;
  double best_p = 0;
  for (int i = 0; i < N; i++) {
    double p = psnr(img, frame(f, i), sizeof img);
    if (p > best_p) {
      best_p = p;
      best = i;
    }
  }
  assert_int_equal(best, N / 2);
  if (best_p < 30.0) fail_msg("JPEG poster: %.2f dB from frame 12", best_p);
}

static void test_poster_past_the_end_is_the_last_frame(void **state) {
  fixture *f = *state;
  char poster[700];
  snprintf(poster, sizeof poster, "%s/late.png", f->dir);
  reel_encoder_options o;
  base_options(&o, f);
  o.poster = poster;
  o.poster_frame = 100; /* expected_frames unknown: accepted, then the last frame */
  reel_logger quiet;
  reel_logger_init(&quiet, REEL_LOG_OFF, REEL_LOG_TEXT, 2);
  o.log = &quiet;
  reel_encoder_stats stats;
  encode(f, &o, 7, &stats);
  assert_int_equal(stats.poster_frame, 6);
  static uint8_t img[W * H * 3];
  decode_image(poster, W, H, img);
  assert_memory_equal(img, frame(f, 6), sizeof img);
}

static void test_gif_preview(void **state) {
  fixture *f = *state;
  char gif[700];
  snprintf(gif, sizeof gif, "%s/preview.gif", f->dir);
  reel_encoder_options o;
  base_options(&o, f);
  o.preview_anim = gif;
  o.preview_width = PW;
  reel_encoder_stats stats;
  encode(f, &o, N, &stats); /* one second at 24 fps; the preview runs at 6 fps */
  assert_int_equal(stats.preview_frames, 6);
  assert_non_null(strstr(stats.preview_url, "preview.gif"));
  json_t *root = probe(gif);
  json_t *s = stream0(root);
  assert_string_equal(json_string_value(json_object_get(s, "codec_name")), "gif");
  assert_int_equal(json_integer_value(json_object_get(s, "width")), PW);
  assert_int_equal(json_integer_value(json_object_get(s, "height")), PH);
  assert_string_equal(json_string_value(json_object_get(s, "nb_read_frames")), "6");
  const char *dur = json_string_value(json_object_get(json_object_get(root, "format"), "duration"));
  if (!dur || fabs(atof(dur) - 1.0) > 0.015) fail_msg("GIF duration %s, want 1.00", dur ? dur : "?");
  json_decref(root);
  /* Each GIF frame is the scaled source frame due at its time: frames 0, 4, 8, ... */
  reel_decoder *d = NULL;
  reel_error err = {0};
  assert_int_equal(reel_decoder_open(gif, 1, NULL, &d, &err), REEL_OK);
  static uint8_t got[PW * PH * 3], want[PW * PH * 3];
  for (int k = 0; k < 6; k++) {
    assert_int_equal(reel_decoder_next_rgb(d, got, PW * 3, &err), REEL_OK);
    scaled(f, 4 * k, want);
    double p = psnr(got, want, sizeof got);
    if (p < 24.0) fail_msg("GIF frame %d: %.2f dB from source frame %d", k, p, 4 * k);
    /* Closer to its own frame than to the next one shown. */
    uint8_t *other = malloc(sizeof want);
    scaled(f, 4 * k + 2, other);
    assert_true(p > psnr(got, other, sizeof got));
    free(other);
  }
  reel_decoder_destroy(&d);
}

static uint32_t le32(const uint8_t *p) {
  return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint32_t le24(const uint8_t *p) { return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16; }

static void test_webp_preview(void **state) {
  fixture *f = *state;
  char webp[700];
  snprintf(webp, sizeof webp, "%s/preview.webp", f->dir);
  reel_encoder_options o;
  base_options(&o, f);
  o.preview_anim = webp;
  o.preview_width = PW;
  o.preview_fps = 8;
  reel_encoder_stats stats;
  encode(f, &o, N, &stats);
  assert_int_equal(stats.preview_frames, 8);
  json_t *root = probe(webp); /* FFmpeg 5.1 knows it is WebP, though it cannot decode animations */
  assert_string_equal(json_string_value(json_object_get(stream0(root), "codec_name")), "webp");
  json_decref(root);
  size_t len = 0;
  uint8_t *b = (uint8_t *)tu_read_file(webp, &len);
  assert_true(len > 30);
  assert_memory_equal(b, "RIFF", 4);
  assert_int_equal(le32(b + 4), len - 8);
  assert_memory_equal(b + 8, "WEBP", 4);
  int anmf = 0, have_anim = 0;
  uint32_t total_ms = 0;
  for (size_t at = 12; at + 8 <= len;) {
    uint32_t sz = le32(b + at + 4);
    const uint8_t *c = b + at + 8;
    assert_true(at + 8 + sz <= len);
    if (!memcmp(b + at, "VP8X", 4)) {
      assert_true(c[0] & 0x02); /* animation flag */
      assert_int_equal(le24(c + 4) + 1, PW);
      assert_int_equal(le24(c + 7) + 1, PH);
    } else if (!memcmp(b + at, "ANIM", 4)) {
      have_anim = 1;
      assert_int_equal(c[4] | c[5] << 8, 0); /* loop forever */
    } else if (!memcmp(b + at, "ANMF", 4)) {
      uint32_t x = 2 * le24(c), y = 2 * le24(c + 3), fw = le24(c + 6) + 1, fh = le24(c + 9) + 1;
      assert_true(x + fw <= PW && y + fh <= PH);
      total_ms += le24(c + 12);
      if (anmf == 0) {
        /* The first frame covers the canvas: write its VP8 bitstream as a still WebP and decode that. */
        assert_true(x == 0 && y == 0 && fw == PW && fh == PH);
        const uint8_t *sub = c + 16;
        while (memcmp(sub, "VP8 ", 4)) sub += 8 + ((le32(sub + 4) + 1) & ~1u);
        uint32_t vsz = le32(sub + 4);
        size_t still_len = 12 + 8 + vsz + (vsz & 1);
        uint8_t *still = calloc(1, still_len);
        memcpy(still, "RIFF", 4);
        uint32_t riff = (uint32_t)still_len - 8;
        for (int k = 0; k < 4; k++) still[4 + k] = (uint8_t)(riff >> (8 * k));
        memcpy(still + 8, "WEBP", 4);
        memcpy(still + 12, sub, 8 + vsz);
        char path[800];
        snprintf(path, sizeof path, "%s/first.webp", f->dir);
        tu_write_file(path, still, still_len);
        free(still);
        static uint8_t got[PW * PH * 3], want[PW * PH * 3];
        decode_image(path, PW, PH, got);
        scaled(f, 0, want);
        double p = psnr(got, want, sizeof got);
        scaled(f, 12, want);
        double p12 = psnr(got, want, sizeof got);
        /* Lossy WebP at quality 75 on this busy pattern at 96x64: about 25 dB; another frame: about 12. */
        if (p < 22.0 || p < p12 + 8.0)
          fail_msg("first WebP frame: %.2f dB from source frame 0, %.2f from frame 12", p, p12);
      }
      anmf++;
    }
    at += 8 + sz + (sz & 1);
  }
  assert_true(have_anim);
  assert_int_equal(anmf, 8);
  /* Eight frames at 8 fps: one second, give or take the last frame's rounding. */
  if (total_ms < 990 || total_ms > 1010) fail_msg("frame durations add up to %u ms, want 1000", total_ms);
  free(b);
}

/* Float frames (10-bit path) feed the poster and the preview too. */
static void test_float_frames_feed_side_outputs(void **state) {
  fixture *f = *state;
  char poster[700], gif[700], path[700];
  snprintf(poster, sizeof poster, "%s/f.png", f->dir);
  snprintf(gif, sizeof gif, "%s/f.gif", f->dir);
  snprintf(path, sizeof path, "%s/f.mkv", f->dir);
  reel_encoder_options o;
  base_options(&o, f);
  o.pix_fmt = REEL_PIX_YUV420P10;
  o.poster = poster;
  o.poster_frame = 3;
  o.preview_anim = gif;
  reel_error err = {0};
  reel_sink *sink = NULL;
  reel_encoder *enc = NULL;
  assert_int_equal(reel_sink_open(path, NULL, &sink, &err), REEL_OK);
  assert_int_equal(reel_encoder_open(&o, sink, &enc, &err), REEL_OK);
  float *ff = malloc(sizeof(float) * W * H * 3);
  for (int i = 0; i < 8; i++) {
    for (int k = 0; k < W * H * 3; k++) ff[k] = frame(f, i)[k] / 255.0f;
    assert_int_equal(reel_encoder_push_rgbf(enc, ff, W * 3, &err), REEL_OK);
  }
  free(ff);
  reel_encoder_stats stats;
  assert_int_equal(reel_encoder_finish(enc, &stats, &err), REEL_OK);
  reel_encoder_destroy(&enc);
  assert_int_equal(reel_sink_close(&sink, NULL, &err), REEL_OK);
  assert_int_equal(stats.preview_frames, 2); /* 8 frames at 24 fps: t = 0 and 1/6 s */
  static uint8_t img[W * H * 3];
  decode_image(poster, W, H, img);
  assert_memory_equal(img, frame(f, 3), sizeof img);
}

static void expect_rejected(const reel_encoder_options *o, reel_status code, const char *field, const char *needle) {
  reel_error err = {0};
  reel_status st = reel_encoder_check_options(o, 1, &err);
  if (st != code || strcmp(err.field, field) != 0)
    fail_msg("expected %s on '%s', got %s on '%s' (%s)", reel_status_name(code), field, reel_status_name(st), err.field,
             err.msg);
  if (needle && !strstr(err.msg, needle)) fail_msg("message '%s' lacks '%s'", err.msg, needle);
}

static void test_bad_side_options(void **state) {
  fixture *f = *state;
  reel_encoder_options o;
  base_options(&o, f);
  o.poster = "poster.bmp";
  o.poster_frame = 0;
  expect_rejected(&o, REEL_EINVAL, "poster", ".png, .jpg or .jpeg");
  o.poster = "poster.png";
  o.poster_frame = -1;
  expect_rejected(&o, REEL_EINVAL, "poster_frame", "expected_frames");
  o.expected_frames = 24;
  o.poster_frame = 24;
  expect_rejected(&o, REEL_ERANGE, "poster_frame", "24 frames");
  o.poster_frame = -2;
  expect_rejected(&o, REEL_ERANGE, "poster_frame", NULL);
  base_options(&o, f);
  o.preview_anim = "preview.mp4";
  expect_rejected(&o, REEL_EINVAL, "preview_anim", ".webp or .gif");
  o.preview_anim = "preview.gif";
  o.preview_width = W + 2;
  expect_rejected(&o, REEL_ERANGE, "preview_width", "16..192");
  o.preview_width = 0;
  o.preview_fps = 31;
  expect_rejected(&o, REEL_ERANGE, "preview_fps", "1..30");
  /* A preview into a directory that does not exist fails at open, before any encoding. */
  base_options(&o, f);
  char path[700], bad[700];
  snprintf(path, sizeof path, "%s/clip.mkv", f->dir);
  snprintf(bad, sizeof bad, "%s/no/such/dir/p.gif", f->dir);
  o.preview_anim = bad;
  reel_error err = {0};
  reel_sink *sink = NULL;
  reel_encoder *enc = NULL;
  assert_int_equal(reel_sink_open(path, NULL, &sink, &err), REEL_OK);
  assert_int_equal(reel_encoder_open(&o, sink, &enc, &err), REEL_ENOTFOUND);
  assert_string_equal(err.field, "preview_anim");
  assert_null(enc);
  reel_error_clear(&err);
  /* A poster there fails at finish, naming the poster; the clip itself was fine. */
  base_options(&o, f);
  snprintf(bad, sizeof bad, "%s/no/such/dir/p.png", f->dir);
  o.poster = bad;
  o.poster_frame = 0;
  assert_int_equal(reel_encoder_open(&o, sink, &enc, &err), REEL_OK);
  assert_int_equal(reel_encoder_push_rgb(enc, frame(f, 0), W * 3, &err), REEL_OK);
  assert_int_equal(reel_encoder_finish(enc, NULL, &err), REEL_ENOTFOUND);
  assert_string_equal(err.field, "poster");
  reel_encoder_destroy(&enc);
  reel_sink_abort(&sink);
}

int main(void) {
  reel_json_use_reel_alloc();
  reel_ffmpeg_route_logs();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_png_poster_is_the_frame, setup, teardown),
      cmocka_unit_test_setup_teardown(test_jpeg_poster_middle_frame, setup, teardown),
      cmocka_unit_test_setup_teardown(test_poster_past_the_end_is_the_last_frame, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gif_preview, setup, teardown),
      cmocka_unit_test_setup_teardown(test_webp_preview, setup, teardown),
      cmocka_unit_test_setup_teardown(test_float_frames_feed_side_outputs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_side_options, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
