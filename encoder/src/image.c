/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PNG and JPEG still images through libavcodec (png on RGB24; mjpeg on
 * full-range 4:2:0 after swscale) written through a reel_sink. See reel/image.h.
 */
#include <libavcodec/avcodec.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>
#include <string.h>
#include <strings.h>

#include "av_common.h"
#include "reel/image.h"
#include "reel/sink.h"

reel_status reel_image_format_from_name(const char *name, const char *field, reel_image_format *out, reel_error *err) {
  const char *dot = name ? strrchr(name, '.') : NULL;
  if (dot && !strcasecmp(dot, ".png")) {
    *out = REEL_IMAGE_PNG;
    return REEL_OK;
  }
  if (dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"))) {
    *out = REEL_IMAGE_JPEG;
    return REEL_OK;
  }
  return reel_error_set(err, REEL_EINVAL, field, "'%s': image names must end in .png, .jpg or .jpeg", name ? name : "");
}

reel_status reel_image_write(const char *url, reel_image_format format, const uint8_t *rgb, int width, int height,
                             size_t stride, int quality, const reel_logger *log, reel_error *err) {
  reel_sink_options so = {0};
  so.log = log;
  return reel_image_write_to(url, &so, format, rgb, width, height, stride, quality, NULL, err);
}

reel_status reel_image_write_to(const char *url, const reel_sink_options *sink_opts, reel_image_format format,
                                const uint8_t *rgb, int width, int height, size_t stride, int quality,
                                reel_sink_result *res, reel_error *err) {
  if (!rgb) return reel_error_set(err, REEL_EINVAL, "image", "no pixels");
  if (width < 1 || height < 1 || width > 16384 || height > 16384)
    return reel_error_set(err, REEL_ERANGE, "image", "size must be 1..16384 on each side, got %dx%d", width, height);
  if (stride < (size_t)width * 3) return reel_error_set(err, REEL_EINVAL, "image", "stride smaller than a row");
  if (quality < 0 || quality > 100)
    return reel_error_set(err, REEL_ERANGE, "quality", "must be in 1..100, got %d", quality);
  if (format == REEL_IMAGE_JPEG && (width % 2 || height % 2))
    return reel_error_set(err, REEL_EINVAL, "image", "JPEG output needs even sizes, got %dx%d", width, height);
  const AVCodec *codec = avcodec_find_encoder(format == REEL_IMAGE_PNG ? AV_CODEC_ID_PNG : AV_CODEC_ID_MJPEG);
  if (!codec)
    return reel_error_set(err, REEL_ECODEC, "image", "this FFmpeg has no %s encoder",
                          format == REEL_IMAGE_PNG ? "PNG" : "JPEG");
  reel_status st = REEL_OK;
  AVCodecContext *ctx = NULL;
  AVFrame *frame = NULL;
  AVPacket *pkt = NULL;
  struct SwsContext *sws = NULL;
  reel_sink *sink = NULL;
  int ret;
  ctx = avcodec_alloc_context3(codec);
  frame = av_frame_alloc();
  pkt = av_packet_alloc();
  if (!ctx || !frame || !pkt) {
    st = reel_error_set(err, REEL_ENOMEM, "image", "out of memory");
    goto end;
  }
  ctx->width = width;
  ctx->height = height;
  ctx->time_base = (AVRational){1, 25};
  if (format == REEL_IMAGE_PNG) {
    ctx->pix_fmt = AV_PIX_FMT_RGB24;
  } else {
    /* mjpeg wants full-range 4:2:0 (yuvj420p) and a quantiser from the quality. */
    ctx->pix_fmt = AV_PIX_FMT_YUVJ420P;
    ctx->color_range = AVCOL_RANGE_JPEG;
    int q = quality ? quality : 90;
    int qscale = 2 + (100 - q) * 29 / 99; /* 1..100 -> 31..2 */
    ctx->flags |= AV_CODEC_FLAG_QSCALE;
    ctx->global_quality = FF_QP2LAMBDA * qscale;
    ctx->qmin = ctx->qmax = qscale;
  }
  if ((ret = avcodec_open2(ctx, codec, NULL)) < 0) {
    st = reel__av_fail(err, "image", ret, "opening the image encoder");
    goto end;
  }
  frame->format = ctx->pix_fmt;
  frame->width = width;
  frame->height = height;
  if ((ret = av_frame_get_buffer(frame, 0)) < 0) {
    st = reel__av_fail(err, "image", ret, "allocating the frame");
    goto end;
  }
  if (format == REEL_IMAGE_PNG) {
    for (int y = 0; y < height; y++)
      memcpy(frame->data[0] + (size_t)y * frame->linesize[0], rgb + (size_t)y * stride, (size_t)width * 3);
  } else {
    /* Into the yuvj420p frame as full-range yuv420p (the same layout): swscale warns about the J formats. */
    sws = sws_getContext(width, height, AV_PIX_FMT_RGB24, width, height, AV_PIX_FMT_YUV420P, SWS_BICUBIC, NULL, NULL,
                         NULL);
    if (!sws) {
      st = reel_error_set(err, REEL_ECODEC, "image", "cannot convert RGB to YUV");
      goto end;
    }
    const int *bt601 = sws_getCoefficients(SWS_CS_ITU601);
    sws_setColorspaceDetails(sws, bt601, 1, bt601, 1, 0, 1 << 16, 1 << 16);
    const uint8_t *src[1] = {rgb};
    int src_stride[1] = {(int)stride};
    sws_scale(sws, src, src_stride, 0, height, frame->data, frame->linesize);
  }
  frame->pts = 0;
  if ((ret = avcodec_send_frame(ctx, frame)) < 0 || (ret = avcodec_send_frame(ctx, NULL)) < 0) {
    st = reel__av_fail(err, "image", ret, "encoding the image");
    goto end;
  }
  reel_sink_options so = {0};
  if (sink_opts) so = *sink_opts;
  so.content_type = format == REEL_IMAGE_PNG ? "image/png" : "image/jpeg";
  if ((st = reel_sink_open(url, &so, &sink, err))) goto end;
  for (;;) {
    ret = avcodec_receive_packet(ctx, pkt);
    if (ret == AVERROR_EOF) break;
    if (ret < 0) {
      st = reel__av_fail(err, "image", ret, "encoding the image");
      goto end;
    }
    st = reel_sink_write(sink, pkt->data, (size_t)pkt->size, err);
    av_packet_unref(pkt);
    if (st) goto end;
  }
  st = reel_sink_close(&sink, res, err);
end:
  reel_sink_abort(&sink);
  sws_freeContext(sws);
  av_packet_free(&pkt);
  av_frame_free(&frame);
  avcodec_free_context(&ctx);
  return st;
}
