/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The encoder with frames in CUDA device memory (label gpu; exits 77, ctest's
 * skip code, when there is no CUDA device):
 *  - tensors on a CUDA backend with hw=auto: NVENC with the CUDA frame pool
 *    where the GPU has NVENC, otherwise (H100/H200/A100) the software encoder fed
 *    by the conversion on the GPU; either way the clip decodes back within 35 dB
 *    of the source and the PNG poster is the source frame exactly;
 *  - hw=off on the GPU: the staged path (convert on the GPU, download, x264);
 *  - hw=require: NVENC with its frame pool, or REEL_EUNSUPPORTED naming "hw"
 *    with the reason on a GPU without NVENC;
 *  - raw device memory (reel_encoder_push_cuda_rgbf) from cudaMalloc'd frames.
 */
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/backend.h"
#include "reel/encoder.h"
#include "reel/sink.h"
#include "reel/testsrc.h"
#include "testutil.h"

enum { W = 256, H = 144, N = 12 };

static struct {
  char dir[512];
  reel_logger log;
  reel_backend *gpu;
  uint8_t *frames; /* N frames of W x H RGB24 */
  float *planar;   /* the same as [N][3][H][W] floats in [0, 1] */
} fx;

static const uint8_t *frame(int i) { return fx.frames + (size_t)W * H * 3 * i; }

static double psnr(const uint8_t *a, const uint8_t *b, size_t n) {
  double se = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)a[i] - (double)b[i];
    se += d * d;
  }
  return se == 0 ? 99.0 : 10.0 * log10(255.0 * 255.0 / (se / (double)n));
}

static double lowest_psnr(const char *path) {
  reel_decoder *d = NULL;
  reel_error err = {0};
  if (reel_decoder_open(path, 1, NULL, &d, &err)) fail_msg("%s: %s", path, err.msg);
  static uint8_t out[W * H * 3];
  double worst = 1e9;
  int n = 0;
  while (reel_decoder_next_rgb(d, out, W * 3, &err) == REEL_OK) {
    assert_true(n < N);
    double p = psnr(out, frame(n), sizeof out);
    if (p < worst) worst = p;
    n++;
  }
  assert_int_equal(n, N);
  reel_decoder_destroy(&d);
  return worst;
}

static void base_options(reel_encoder_options *o) {
  reel_encoder_options_init(o);
  o->width = W;
  o->height = H;
  o->fps_num = 24;
  o->fps_den = 1;
  o->log = &fx.log;
  o->backend = fx.gpu;
}

/* Encodes all frames from a [N, 3, H, W] f32 tensor on the GPU, one [3, H, W] slice at a time. */
static reel_status encode_from_gpu(reel_encoder_options *o, const char *name, reel_encoder_stats *stats,
                                   reel_error *err) {
  char path[700];
  snprintf(path, sizeof path, "%s/%s", fx.dir, name);
  reel_tensor all;
  const int64_t shape[4] = {N, 3, H, W};
  assert_int_equal(reel_tensor_new(fx.gpu, REEL_F32, 4, shape, &all, err), REEL_OK);
  assert_int_equal(reel_tensor_upload(&all, fx.planar, sizeof(float) * N * 3 * H * W, err), REEL_OK);
  reel_sink *sink = NULL;
  reel_encoder *enc = NULL;
  assert_int_equal(reel_sink_open(path, NULL, &sink, err), REEL_OK);
  reel_status st = reel_encoder_open(o, sink, &enc, err);
  if (st != REEL_OK) {
    reel_sink_abort(&sink);
    reel_tensor_free(&all);
    return st;
  }
  for (int i = 0; i < N; i++) {
    reel_tensor one, view;
    assert_int_equal(reel_tensor_slice(&all, 0, i, 1, &one, err), REEL_OK);
    const int64_t s3[3] = {3, H, W};
    assert_int_equal(reel_tensor_reshape(&one, 3, s3, &view, err), REEL_OK);
    if (reel_encoder_push_tensor(enc, &view, 0.0f, 1.0f, err))
      fail_msg("%s frame %d: %s: %s", name, i, err->field, err->msg);
  }
  if (reel_encoder_finish(enc, stats, err)) fail_msg("%s: finish: %s: %s", name, err->field, err->msg);
  reel_encoder_destroy(&enc);
  assert_int_equal(reel_sink_close(&sink, NULL, err), REEL_OK);
  reel_tensor_free(&all);
  double worst = lowest_psnr(path);
  print_message("%-10s %-11s frame pool %d: lowest PSNR %.2f dB\n", name, stats->encoder, stats->hw_frames, worst);
  if (worst < 35.0) fail_msg("%s (%s): lowest PSNR %.2f dB < 35", name, stats->encoder, worst);
  return REEL_OK;
}

static void test_auto(void **state) {
  (void)state;
  char poster[700];
  snprintf(poster, sizeof poster, "%s/poster.png", fx.dir);
  reel_encoder_options o;
  base_options(&o);
  o.poster = poster;
  o.poster_frame = 5;
  reel_encoder_stats stats;
  reel_error err = {0};
  assert_int_equal(encode_from_gpu(&o, "auto.mp4", &stats, &err), REEL_OK);
  if (!strcmp(stats.encoder, "h264_nvenc"))
    assert_int_equal(stats.hw_frames, 1); /* frames went from the backend into the CUDA frame pool */
  else
    assert_string_equal(stats.encoder, "libx264");
  reel_decoder *d = NULL;
  static uint8_t img[W * H * 3];
  assert_int_equal(reel_decoder_open(poster, 1, NULL, &d, &err), REEL_OK);
  assert_int_equal(reel_decoder_next_rgb(d, img, W * 3, &err), REEL_OK);
  reel_decoder_destroy(&d);
  assert_memory_equal(img, frame(5), sizeof img);
}

static void test_software_from_gpu(void **state) {
  (void)state;
  reel_encoder_options o;
  base_options(&o);
  o.hw = REEL_HW_OFF;
  reel_encoder_stats stats;
  reel_error err = {0};
  assert_int_equal(encode_from_gpu(&o, "off.mp4", &stats, &err), REEL_OK);
  assert_string_equal(stats.encoder, "libx264");
  assert_int_equal(stats.hw_frames, 0);
  /* 10-bit and HEVC: the conversion on the GPU writes 16-bit samples. */
  base_options(&o);
  o.hw = REEL_HW_OFF;
  o.codec = REEL_CODEC_HEVC;
  o.pix_fmt = REEL_PIX_YUV420P10;
  assert_int_equal(encode_from_gpu(&o, "off10.mkv", &stats, &err), REEL_OK);
  assert_string_equal(stats.pix_fmt, "yuv420p10le");
}

static void test_require(void **state) {
  (void)state;
  const reel_codec codecs[2] = {REEL_CODEC_H264, REEL_CODEC_HEVC};
  for (int k = 0; k < 2; k++) {
    reel_encoder_options o;
    base_options(&o);
    o.hw = REEL_HW_REQUIRE;
    o.codec = codecs[k];
    reel_encoder_stats stats;
    reel_error err = {0};
    reel_status st = encode_from_gpu(&o, k ? "req.hevc.mp4" : "req.h264.mp4", &stats, &err);
    if (st == REEL_OK) {
      assert_string_equal(stats.encoder, k ? "hevc_nvenc" : "h264_nvenc");
      assert_int_equal(stats.hw_frames, 1);
    } else {
      /* A GPU without NVENC (H100, H200, A100): the reason is given. */
      assert_int_equal(st, REEL_EUNSUPPORTED);
      assert_string_equal(err.field, "hw");
      print_message("no NVENC here: %s\n", err.msg);
    }
  }
}

static void test_raw_device_memory(void **state) {
  (void)state;
  const size_t pitch = (size_t)W * 12 + 256; /* padded rows */
  void *dev = NULL;
  assert_int_equal(cudaMalloc(&dev, pitch * H), cudaSuccess);
  float *row = malloc(pitch);
  char path[700];
  snprintf(path, sizeof path, "%s/raw.mkv", fx.dir);
  reel_encoder_options o;
  base_options(&o);
  o.container = REEL_CONTAINER_MKV;
  reel_error err = {0};
  reel_sink *sink = NULL;
  reel_encoder *enc = NULL;
  assert_int_equal(reel_sink_open(path, NULL, &sink, &err), REEL_OK);
  assert_int_equal(reel_encoder_open(&o, sink, &enc, &err), REEL_OK);
  for (int i = 0; i < N; i++) {
    for (int y = 0; y < H; y++) {
      for (int x = 0; x < W * 3; x++) row[x] = frame(i)[(size_t)y * W * 3 + x] / 255.0f;
      assert_int_equal(cudaMemcpy((char *)dev + (size_t)y * pitch, row, (size_t)W * 12, cudaMemcpyHostToDevice),
                       cudaSuccess);
    }
    if (reel_encoder_push_cuda_rgbf(enc, dev, pitch, &err)) fail_msg("frame %d: %s: %s", i, err.field, err.msg);
  }
  reel_encoder_stats stats;
  assert_int_equal(reel_encoder_finish(enc, &stats, &err), REEL_OK);
  reel_encoder_destroy(&enc);
  assert_int_equal(reel_sink_close(&sink, NULL, &err), REEL_OK);
  double worst = lowest_psnr(path);
  print_message("raw device frames (%s): lowest PSNR %.2f dB\n", stats.encoder, worst);
  if (worst < 35.0) fail_msg("raw device frames: lowest PSNR %.2f dB < 35", worst);
  free(row);
  cudaFree(dev);
}

int main(void) {
  reel_error err = {0};
  fx.gpu = reel_backend_new_cuda(0, &err);
  if (!fx.gpu) {
    char buf[700];
    printf("SKIP: no CUDA backend: %s\n", reel_error_format(&err, buf, sizeof buf));
    return 77;
  }
  reel_ffmpeg_route_logs();
  reel_logger_init(&fx.log, REEL_LOG_INFO, REEL_LOG_TEXT, 2); /* shows which encoder was chosen, and why */
  tu_mkdtemp(fx.dir, sizeof fx.dir);
  fx.frames = malloc((size_t)W * H * 3 * N);
  fx.planar = malloc(sizeof(float) * W * H * 3 * N);
  reel_testsrc_params p = {W, H, N, 12};
  for (int i = 0; i < N; i++) {
    reel_testsrc_render(&p, i, fx.frames + (size_t)W * H * 3 * i, (size_t)W * 3);
    for (int c = 0; c < 3; c++)
      for (int k = 0; k < W * H; k++) fx.planar[((size_t)i * 3 + c) * W * H + k] = frame(i)[3 * k + c] / 255.0f;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_auto),
      cmocka_unit_test(test_software_from_gpu),
      cmocka_unit_test(test_require),
      cmocka_unit_test(test_raw_device_memory),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  tu_rmtree(fx.dir);
  free(fx.frames);
  free(fx.planar);
  reel_backend_destroy(&fx.gpu);
  return rc;
}
