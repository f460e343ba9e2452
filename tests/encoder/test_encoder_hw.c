/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The encoder's hardware-facing paths that run anywhere:
 *  - the NVENC choice: hw=off always encodes in software; hw=auto falls back to
 *    software (saying why in the log) where NVENC cannot open, and hw=require
 *    then fails naming "hw" with the reason; x264 presets map to NVENC's p1..p7;
 *  - frames held by a compute backend (reel_encoder_push_tensor), here the CPU
 *    backend: planar float frames, an interleaved frame seen through a permuted
 *    view, bf16 frames and 10-bit output all decode back within 35 dB of the
 *    source, and a PNG poster made from tensor frames is the source frame exactly;
 *  - the errors: no backend, a tensor of another shape or dtype, lo >= hi, raw
 *    device frames without a CUDA backend, and the kernels' device-memory calls
 *    on the CPU backend.
 * The same paths on a GPU (CUDA frame pool, NVENC) are in test_encoder_gpu.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hw.h"
#include "reel/backend.h"
#include "reel/encoder.h"
#include "reel/sink.h"
#include "reel/testsrc.h"
#include "testutil.h"

enum { W = 128, H = 96, N = 6 };

typedef struct {
  char dir[512];
  reel_logger log;
  reel_backend *cpu;
  uint8_t *frames; /* N frames of W x H RGB24 */
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  tu_mkdtemp(f->dir, sizeof f->dir);
  reel_logger_init(&f->log, REEL_LOG_WARN, REEL_LOG_TEXT, 2);
  reel_error err = {0};
  f->cpu = reel_backend_new_cpu(1, &err);
  assert_non_null(f->cpu);
  f->frames = malloc((size_t)W * H * 3 * N);
  reel_testsrc_params p = {W, H, N, 3};
  for (int i = 0; i < N; i++) reel_testsrc_render(&p, i, f->frames + (size_t)W * H * 3 * i, (size_t)W * 3);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  reel_backend_destroy(&f->cpu);
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

static double lowest_psnr(const fixture *f, const char *path) {
  reel_decoder *d = NULL;
  reel_error err = {0};
  if (reel_decoder_open(path, 1, NULL, &d, &err)) fail_msg("%s: %s", path, err.msg);
  static uint8_t out[W * H * 3];
  double worst = 1e9;
  int n = 0;
  while (reel_decoder_next_rgb(d, out, W * 3, &err) == REEL_OK) {
    assert_true(n < N);
    double p = psnr(out, frame(f, n), sizeof out);
    if (p < worst) worst = p;
    n++;
  }
  assert_int_equal(n, N);
  reel_decoder_destroy(&d);
  return worst;
}

static void base_options(reel_encoder_options *o, const fixture *f) {
  reel_encoder_options_init(o);
  o->width = W;
  o->height = H;
  o->fps_num = 24;
  o->fps_den = 1;
  o->preset = "medium";
  o->log = &f->log;
  o->backend = f->cpu;
}

static void test_hw_choice(void **state) {
  fixture *f = *state;
  const reel_encoder_hw modes[3] = {REEL_HW_OFF, REEL_HW_AUTO, REEL_HW_REQUIRE};
  for (int m = 0; m < 3; m++) {
    char path[700];
    snprintf(path, sizeof path, "%s/hw%d.mp4", f->dir, m);
    reel_encoder_options o;
    base_options(&o, f);
    o.hw = modes[m];
    reel_error err = {0};
    reel_sink *sink = NULL;
    reel_encoder *enc = NULL;
    assert_int_equal(reel_sink_open(path, NULL, &sink, &err), REEL_OK);
    reel_status st = reel_encoder_open(&o, sink, &enc, &err);
    if (modes[m] == REEL_HW_REQUIRE && st != REEL_OK) {
      /* No NVENC here: the error names the option and says why. */
      assert_int_equal(st, REEL_EUNSUPPORTED);
      assert_string_equal(err.field, "hw");
      assert_non_null(strstr(err.msg, "NVENC was required, but "));
      if (!reel__cuda_driver_present()) assert_non_null(strstr(err.msg, "no CUDA driver"));
      assert_null(enc);
      reel_sink_abort(&sink);
      continue;
    }
    assert_int_equal(st, REEL_OK);
    for (int i = 0; i < N; i++) assert_int_equal(reel_encoder_push_rgb(enc, frame(f, i), W * 3, &err), REEL_OK);
    reel_encoder_stats stats;
    assert_int_equal(reel_encoder_finish(enc, &stats, &err), REEL_OK);
    reel_encoder_destroy(&enc);
    assert_int_equal(reel_sink_close(&sink, NULL, &err), REEL_OK);
    if (modes[m] == REEL_HW_OFF || !reel__cuda_driver_present()) assert_string_equal(stats.encoder, "libx264");
    if (modes[m] == REEL_HW_REQUIRE) assert_string_equal(stats.encoder, "h264_nvenc");
    assert_int_equal(stats.hw_frames, 0); /* host frames never use the CUDA frame pool */
    double worst = lowest_psnr(f, path);
    if (worst < 35.0) fail_msg("%s: lowest PSNR %.2f dB", stats.encoder, worst);
  }
  assert_string_equal(reel__nvenc_preset("ultrafast"), "p1");
  assert_string_equal(reel__nvenc_preset("veryfast"), "p2");
  assert_string_equal(reel__nvenc_preset("medium"), "p4");
  assert_string_equal(reel__nvenc_preset("slower"), "p6");
  assert_string_equal(reel__nvenc_preset("placebo"), "p7");
  assert_string_equal(reel__nvenc_preset(NULL), "p4");
  reel_encoder_options o;
  base_options(&o, f);
  o.hw = (reel_encoder_hw)3;
  reel_error err = {0};
  assert_int_equal(reel_encoder_check_options(&o, 1, &err), REEL_EINVAL);
  assert_string_equal(err.field, "hw");
}

/* Encodes the fixture's frames given as tensors by `make` (frame index -> tensor on f->cpu). */
typedef void (*make_fn)(const fixture *f, int i, reel_tensor *t, float *lo, float *hi);

static reel_tensor scratch; /* the tensor make_* fill; freed by the caller */

static void make_planar_f32(const fixture *f, int i, reel_tensor *t, float *lo, float *hi) {
  reel_error err = {0};
  if (!scratch.buf) {
    const int64_t shape[3] = {3, H, W};
    assert_int_equal(reel_tensor_new(f->cpu, REEL_F32, 3, shape, &scratch, &err), REEL_OK);
  }
  float *p = reel_buffer_host_ptr(scratch.buf);
  /* Values in [-1, 1] as a VAE gives them. */
  for (int c = 0; c < 3; c++)
    for (int k = 0; k < W * H; k++) p[(size_t)c * W * H + k] = frame(f, i)[3 * k + c] / 127.5f - 1.0f;
  *t = scratch;
  *lo = -1.0f;
  *hi = 1.0f;
}

static void make_interleaved_view(const fixture *f, int i, reel_tensor *t, float *lo, float *hi) {
  reel_error err = {0};
  if (!scratch.buf) {
    const int64_t shape[3] = {H, W, 3};
    assert_int_equal(reel_tensor_new(f->cpu, REEL_F32, 3, shape, &scratch, &err), REEL_OK);
  }
  float *p = reel_buffer_host_ptr(scratch.buf);
  for (int k = 0; k < W * H * 3; k++) p[k] = frame(f, i)[k] / 255.0f;
  const int perm[3] = {2, 0, 1};
  assert_int_equal(reel_tensor_permute(&scratch, perm, t, &err), REEL_OK); /* [3, H, W], strides (1, 3W, 3) */
  *lo = 0.0f;
  *hi = 1.0f;
}

static void make_bf16(const fixture *f, int i, reel_tensor *t, float *lo, float *hi) {
  reel_error err = {0};
  if (!scratch.buf) {
    const int64_t shape[4] = {1, 3, H, W};
    assert_int_equal(reel_tensor_new(f->cpu, REEL_BF16, 4, shape, &scratch, &err), REEL_OK);
  }
  uint16_t *p = reel_buffer_host_ptr(scratch.buf);
  for (int c = 0; c < 3; c++)
    for (int k = 0; k < W * H; k++) p[(size_t)c * W * H + k] = reel_f32_to_bf16(frame(f, i)[3 * k + c]);
  *t = scratch;
  *lo = 0.0f;
  *hi = 255.0f;
}

static void encode_tensors(fixture *f, make_fn make, reel_pix_fmt pix, const char *name, const char *poster) {
  char path[700];
  snprintf(path, sizeof path, "%s/%s.mkv", f->dir, name);
  reel_encoder_options o;
  base_options(&o, f);
  o.container = REEL_CONTAINER_MKV;
  o.pix_fmt = pix;
  o.poster = poster;
  o.poster_frame = 2;
  reel_error err = {0};
  reel_sink *sink = NULL;
  reel_encoder *enc = NULL;
  assert_int_equal(reel_sink_open(path, NULL, &sink, &err), REEL_OK);
  assert_int_equal(reel_encoder_open(&o, sink, &enc, &err), REEL_OK);
  for (int i = 0; i < N; i++) {
    reel_tensor t;
    float lo, hi;
    make(f, i, &t, &lo, &hi);
    if (reel_encoder_push_tensor(enc, &t, lo, hi, &err)) fail_msg("%s frame %d: %s: %s", name, i, err.field, err.msg);
  }
  reel_tensor_free(&scratch);
  reel_encoder_stats stats;
  assert_int_equal(reel_encoder_finish(enc, &stats, &err), REEL_OK);
  assert_int_equal(stats.frames, N);
  assert_int_equal(stats.hw_frames, 0);
  reel_encoder_destroy(&enc);
  assert_int_equal(reel_sink_close(&sink, NULL, &err), REEL_OK);
  double worst = lowest_psnr(f, path);
  print_message("%-12s lowest PSNR %.2f dB\n", name, worst);
  if (worst < 35.0) fail_msg("%s: lowest PSNR %.2f dB < 35", name, worst);
}

static void test_tensor_frames(void **state) {
  fixture *f = *state;
  char poster[700];
  snprintf(poster, sizeof poster, "%s/poster.png", f->dir);
  encode_tensors(f, make_planar_f32, REEL_PIX_YUV420P, "planar", poster);
  /* The poster comes from the tensor frames: frame 2, exactly (values k/127.5 - 1 round back to k). */
  reel_decoder *d = NULL;
  reel_error err = {0};
  static uint8_t img[W * H * 3];
  assert_int_equal(reel_decoder_open(poster, 1, NULL, &d, &err), REEL_OK);
  assert_int_equal(reel_decoder_next_rgb(d, img, W * 3, &err), REEL_OK);
  reel_decoder_destroy(&d);
  assert_memory_equal(img, frame(f, 2), sizeof img);
  encode_tensors(f, make_interleaved_view, REEL_PIX_YUV420P, "interleaved", NULL);
  encode_tensors(f, make_bf16, REEL_PIX_YUV420P, "bf16", NULL);
  encode_tensors(f, make_planar_f32, REEL_PIX_YUV420P10, "planar-10bit", NULL);
}

static void test_tensor_errors(void **state) {
  fixture *f = *state;
  char path[700];
  snprintf(path, sizeof path, "%s/e.mp4", f->dir);
  reel_encoder_options o;
  base_options(&o, f);
  o.backend = NULL;
  reel_error err = {0};
  reel_sink *sink = NULL;
  reel_encoder *enc = NULL;
  reel_tensor t;
  const int64_t good[3] = {3, H, W}, bad[3] = {3, H, W + 2};
  assert_int_equal(reel_tensor_new(f->cpu, REEL_F32, 3, good, &t, &err), REEL_OK);
  assert_int_equal(reel_sink_open(path, NULL, &sink, &err), REEL_OK);
  /* No backend in the options. */
  assert_int_equal(reel_encoder_open(&o, sink, &enc, &err), REEL_OK);
  assert_int_equal(reel_encoder_push_tensor(enc, &t, 0, 1, &err), REEL_EINVAL);
  assert_string_equal(err.field, "backend");
  reel_error_clear(&err);
  reel_encoder_destroy(&enc);
  /* A tensor on another backend. */
  reel_backend *other = reel_backend_new_cpu(1, &err);
  o.backend = other;
  assert_int_equal(reel_encoder_open(&o, sink, &enc, &err), REEL_OK);
  assert_int_equal(reel_encoder_push_tensor(enc, &t, 0, 1, &err), REEL_EINVAL);
  assert_string_equal(err.field, "backend");
  assert_non_null(strstr(err.msg, "lives on"));
  reel_error_clear(&err);
  reel_encoder_destroy(&enc);
  reel_backend_destroy(&other);
  /* Shape, dtype, range. */
  o.backend = f->cpu;
  assert_int_equal(reel_encoder_open(&o, sink, &enc, &err), REEL_OK);
  assert_int_equal(reel_encoder_push_tensor(enc, &t, 1, 1, &err), REEL_EINVAL);
  assert_string_equal(err.field, "lo");
  reel_error_clear(&err);
  reel_tensor wrong;
  assert_int_equal(reel_tensor_new(f->cpu, REEL_F32, 3, bad, &wrong, &err), REEL_OK);
  assert_int_equal(reel_encoder_push_tensor(enc, &wrong, 0, 1, &err), REEL_EINVAL);
  assert_string_equal(err.field, "rgb");
  assert_non_null(strstr(err.msg, "[3, 96, 128]"));
  reel_error_clear(&err);
  reel_tensor_free(&wrong);
  reel_encoder_destroy(&enc);
  assert_int_equal(reel_encoder_open(&o, sink, &enc, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(f->cpu, REEL_U8, 3, good, &wrong, &err), REEL_OK);
  assert_int_equal(reel_encoder_push_tensor(enc, &wrong, 0, 1, &err), REEL_EINVAL);
  assert_string_equal(err.field, "rgb");
  assert_non_null(strstr(err.msg, "f32, f16 or bf16"));
  reel_error_clear(&err);
  reel_tensor_free(&wrong);
  reel_encoder_destroy(&enc);
  /* Raw device frames need a CUDA backend. */
  assert_int_equal(reel_encoder_open(&o, sink, &enc, &err), REEL_OK);
  static float host[W * 3];
  assert_int_equal(reel_encoder_push_cuda_rgbf(enc, host, W * 12, &err), REEL_EUNSUPPORTED);
  assert_string_equal(err.field, "backend");
  reel_error_clear(&err);
  reel_encoder_destroy(&enc);
  reel_sink_abort(&sink);
  reel_tensor_free(&t);
  /* The kernels' device-memory calls refuse a host backend. */
  reel_buffer *buf = NULL;
  assert_int_equal(reel_buffer_wrap_device(f->cpu, host, sizeof host, &buf, &err), REEL_EUNSUPPORTED);
  assert_null(buf);
  reel_error_clear(&err);
  int dev = -1;
  void *stream = NULL;
  assert_int_equal(reel_backend_cuda_info(f->cpu, &dev, &stream, &err), REEL_EUNSUPPORTED);
  reel_error_clear(&err);
  /* And the frame pool needs a CUDA backend too. */
  AVBufferRef *frames = NULL;
  assert_int_not_equal(reel__cuda_frames_for_backend(f->cpu, W, H, 4, &frames, &err), REEL_OK);
  assert_null(frames);
}

int main(void) {
  reel_ffmpeg_route_logs();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_hw_choice, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tensor_frames, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tensor_errors, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
