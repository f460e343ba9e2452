/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test and benchmark driver: encodes N frames (builtin:testsrc, or noise that
 * does not compress, to get clips of many multipart parts) with reel's encoder
 * straight into a sink URL (s3:// streams: the upload runs while encoding) and
 * prints one JSON line with the result and the times from the last frame pushed
 * to the end of reel_encoder_finish (flush + trailer) and to the sink's commit
 * (the upload completed: the object is readable), plus the wall-clock time of
 * the last frame so that a reader polling the server can time it from outside.
 *
 *   reel_test_s3_encode --url s3://bucket/key.mp4 [--frames N] [--size WxH]
 *       [--pattern testsrc|noise] [--codec h264] [--container auto] [--crf N]
 *       [--preset P] [--gop N] [--part-size BYTES] [--in-flight N]
 *
 * Exit status: 0 ok, 1 failure (JSON says which field), 2 bad usage.
 * The s3:// sink reads AWS_* variables as usual.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reel/alloc.h"
#include "reel/clock.h"
#include "reel/encoder.h"
#include "reel/json.h"
#include "reel/sink.h"
#include "reel/testsrc.h"

static void noise_frame(uint8_t *rgb, size_t n, uint64_t seed) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rgb[i] = (uint8_t)(x >> 24);
  }
}

static int fail(const char *stage, const reel_error *err, reel_status st) {
  json_t *o = json_pack("{s:b, s:s, s:s, s:s, s:s}", "ok", 0, "stage", stage, "status", reel_status_name(st), "field",
                        err->field, "error", err->msg);
  char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
  printf("%s\n", s ? s : "{\"ok\":false}");
  free(s);
  json_decref(o);
  return 1;
}

static double realtime_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  reel_json_use_reel_alloc();
  const char *url = NULL, *pattern = "testsrc", *preset = NULL;
  int frames = 48, w = 320, h = 240, crf = -1, gop = 0, in_flight = 0;
  long long part_size = 0;
  reel_encoder_options o;
  reel_encoder_options_init(&o);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) {
      fprintf(stderr, "usage: see the comment at the top of s3_encode.c\n");
      return 2;
    }
    i++;
    int idx;
    if (!strcmp(a, "--url"))
      url = v;
    else if (!strcmp(a, "--frames"))
      frames = atoi(v);
    else if (!strcmp(a, "--size")) {
      if (reel_parse_size(v, &w, &h)) return 2;
    } else if (!strcmp(a, "--pattern"))
      pattern = v;
    else if (!strcmp(a, "--codec") && (idx = reel_name_index(reel_codec_names, v)) >= 0)
      o.codec = (reel_codec)idx;
    else if (!strcmp(a, "--container") && (idx = reel_name_index(reel_container_names, v)) >= 0)
      o.container = (reel_container)idx;
    else if (!strcmp(a, "--crf"))
      crf = atoi(v);
    else if (!strcmp(a, "--preset"))
      preset = v;
    else if (!strcmp(a, "--gop"))
      gop = atoi(v);
    else if (!strcmp(a, "--part-size"))
      part_size = atoll(v);
    else if (!strcmp(a, "--in-flight"))
      in_flight = atoi(v);
    else {
      fprintf(stderr, "s3_encode: bad option %s %s\n", a, v);
      return 2;
    }
  }
  if (!url || frames < 1 || (strcmp(pattern, "testsrc") && strcmp(pattern, "noise"))) {
    fprintf(stderr, "s3_encode: need --url, --frames >= 1, --pattern testsrc|noise\n");
    return 2;
  }
  reel_logger lg;
  reel_logger_init(&lg, REEL_LOG_WARN, REEL_LOG_TEXT, 2);
  reel_ffmpeg_route_logs();
  o.width = w;
  o.height = h;
  o.fps_num = 24;
  o.fps_den = 1;
  o.crf = crf;
  o.preset = preset;
  o.gop = gop;
  o.log = &lg;
  reel_sink_options so = {0};
  so.log = &lg;
  so.part_size = (size_t)part_size;
  so.max_parts_in_flight = in_flight;

  reel_error err = {0};
  reel_sink *sink = NULL;
  reel_encoder *enc = NULL;
  reel_status st = reel_sink_open(url, &so, &sink, &err);
  if (st) return fail("open", &err, st);
  if ((st = reel_encoder_open(&o, sink, &enc, &err))) {
    reel_sink_abort(&sink);
    return fail("open", &err, st);
  }
  size_t stride = (size_t)w * 3;
  uint8_t *rgb = reel_malloc(stride * (size_t)h);
  if (!rgb) return 1;
  reel_testsrc_params tp = {w, h, frames, 1};
  int64_t t_first = reel_now_ns();
  for (int i = 0; i < frames && st == REEL_OK; i++) {
    if (!strcmp(pattern, "noise"))
      noise_frame(rgb, stride * (size_t)h, (uint64_t)i + 1);
    else
      reel_testsrc_render(&tp, i, rgb, stride);
    st = reel_encoder_push_rgb(enc, rgb, stride, &err);
  }
  reel_free(rgb);
  int64_t t_last = reel_now_ns();
  double wall_last = realtime_now();
  if (st) {
    reel_encoder_destroy(&enc);
    reel_sink_abort(&sink);
    return fail("encode", &err, st);
  }
  reel_encoder_stats stats;
  st = reel_encoder_finish(enc, &stats, &err);
  int64_t t_finish = reel_now_ns();
  reel_encoder_destroy(&enc);
  if (st) {
    reel_sink_abort(&sink);
    return fail("finish", &err, st);
  }
  reel_sink_result res;
  st = reel_sink_close(&sink, &res, &err);
  int64_t t_close = reel_now_ns();
  double wall_close = realtime_now();
  if (st) return fail("close", &err, st);
  json_t *out =
      json_pack("{s:b, s:s, s:I, s:s, s:I, s:s, s:s, s:f, s:f, s:f, s:f, s:f}", "ok", 1, "url", res.url, "bytes",
                (json_int_t)res.bytes, "sha256", res.sha256, "frames", (json_int_t)stats.frames, "encoder",
                stats.encoder, "container", stats.container, "encode_ms", (double)(t_last - t_first) / 1e6,
                "last_frame_to_finish_ms", (double)(t_finish - t_last) / 1e6, "last_frame_to_close_ms",
                (double)(t_close - t_last) / 1e6, "wall_last_frame", wall_last, "wall_closed", wall_close);
  char *s = out ? json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
  printf("%s\n", s ? s : "{\"ok\":true}");
  free(s);
  json_decref(out);
  return 0;
}
