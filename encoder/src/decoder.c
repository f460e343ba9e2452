/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Decoding any local file FFmpeg reads (video or still image) into RGB24
 * frames: demux → decode → swscale from the stream's own colour space and
 * range. Tests use it to measure what the encoder wrote; image and video
 * conditioning will use it later. Only the file protocol is allowed, so a
 * crafted path cannot make reel open network connections.
 */
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "av_common.h"
#include "reel/alloc.h"
#include "reel/encoder.h"

struct reel_decoder {
  reel__av_owner owner; /* first: FFmpeg contexts point here */
  char *path;
  AVFormatContext *fmt;
  AVCodecContext *cc;
  int stream;
  AVPacket *pkt;
  AVFrame *frame;
  struct SwsContext *sws;
  int sws_space, sws_full; /* colour space and range the scaler is set up for */
  int flushing;            /* the demuxer hit its end; the decoder is being drained */
  int64_t decoded;
  reel_video_info info;
};

void reel_decoder_destroy(reel_decoder **dp) {
  if (!dp || !*dp) return;
  reel_decoder *d = *dp;
  *dp = NULL;
  sws_freeContext(d->sws);
  av_frame_free(&d->frame);
  av_packet_free(&d->pkt);
  avcodec_free_context(&d->cc);
  avformat_close_input(&d->fmt);
  reel_free(d->path);
  reel_free(d);
}

reel_status reel_decoder_open(const char *path, int threads, const reel_logger *log, reel_decoder **out,
                              reel_error *err) {
  if (!out) return reel_error_set(err, REEL_EINVAL, "out", "must not be NULL");
  *out = NULL;
  if (!path || !path[0]) return reel_error_set(err, REEL_EINVAL, "path", "must be a non-empty file path");
  if (threads < 0 || threads > 256)
    return reel_error_set(err, REEL_ERANGE, "threads", "must be in 0..256 (0 = automatic), got %d", threads);
  reel_status st = REEL_OK;
  AVDictionary *opts = NULL;
  int r;
  reel_decoder *d = reel_calloc(1, sizeof *d);
  if (!d) return reel_error_set(err, REEL_ENOMEM, "decoder", "out of memory");
  d->owner.magic = REEL__AV_OWNER_MAGIC;
  d->owner.log = log;
  d->owner.module = "decoder";
  d->sws_space = -1;
  d->path = reel_strdup(path);
  d->fmt = avformat_alloc_context();
  d->pkt = av_packet_alloc();
  d->frame = av_frame_alloc();
  if (!d->path || !d->fmt || !d->pkt || !d->frame || av_dict_set(&opts, "protocol_whitelist", "file", 0) < 0) {
    st = reel_error_set(err, REEL_ENOMEM, "decoder", "out of memory");
    goto fail;
  }
  d->fmt->opaque = &d->owner;
  r = avformat_open_input(&d->fmt, path, NULL, &opts); /* frees d->fmt on failure */
  if (r < 0) {
    char text[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(r, text, sizeof text);
    st = r == AVERROR(ENOENT)   ? reel_error_set(err, REEL_ENOTFOUND, "path", "'%s': no such file", path)
         : r == AVERROR(ENOMEM) ? reel_error_set(err, REEL_ENOMEM, "decoder", "out of memory")
                                : reel_error_set(err, REEL_EFORMAT, "path", "'%s': cannot be read: %s", path, text);
    goto fail;
  }
  r = avformat_find_stream_info(d->fmt, NULL);
  if (r < 0) {
    char text[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(r, text, sizeof text);
    st = reel_error_set(err, REEL_EFORMAT, "path", "'%s': no stream information: %s", path, text);
    goto fail;
  }
  const AVCodec *codec = NULL;
  r = av_find_best_stream(d->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
  if (r < 0) {
    st = r == AVERROR_DECODER_NOT_FOUND
             ? reel_error_set(err, REEL_ECODEC, "path", "'%s': no decoder for its video stream", path)
             : reel_error_set(err, REEL_EFORMAT, "path", "'%s': has no video stream", path);
    goto fail;
  }
  d->stream = r;
  AVStream *vs = d->fmt->streams[r];
  d->cc = avcodec_alloc_context3(codec);
  if (!d->cc) {
    st = reel_error_set(err, REEL_ENOMEM, "decoder", "out of memory");
    goto fail;
  }
  if ((r = avcodec_parameters_to_context(d->cc, vs->codecpar)) < 0) {
    st = reel__av_fail(err, "codec", r, "copying stream parameters");
    goto fail;
  }
  d->cc->opaque = &d->owner;
  d->cc->thread_count = threads;
  d->cc->pkt_timebase = vs->time_base;
  if ((r = avcodec_open2(d->cc, codec, NULL)) < 0) {
    st = reel__av_fail(err, "codec", r, "opening the decoder");
    goto fail;
  }
  if (d->cc->width <= 0 || d->cc->height <= 0 || d->cc->width > 16384 || d->cc->height > 16384) {
    st = reel_error_set(err, REEL_EFORMAT, "path", "'%s': frame size %dx%d is outside 1..16384", path, d->cc->width,
                        d->cc->height);
    goto fail;
  }
  reel_video_info *in = &d->info;
  in->width = d->cc->width;
  in->height = d->cc->height;
  AVRational fr = vs->avg_frame_rate.num > 0 ? vs->avg_frame_rate : vs->r_frame_rate;
  in->fps_num = fr.num > 0 && fr.den > 0 ? fr.num : 0;
  in->fps_den = fr.num > 0 && fr.den > 0 ? fr.den : 1;
  in->frames = vs->nb_frames > 0 ? vs->nb_frames : -1;
  in->duration = d->fmt->duration > 0 ? (double)d->fmt->duration / AV_TIME_BASE : -1.0;
  snprintf(in->codec, sizeof in->codec, "%s", codec->name);
  av_dict_free(&opts);
  *out = d;
  return REEL_OK;
fail:
  av_dict_free(&opts);
  reel_decoder_destroy(&d);
  return st;
}

void reel_decoder_info(const reel_decoder *d, reel_video_info *info) {
  if (d && info) *info = d->info;
}

static int sws_space_of(enum AVColorSpace cs) {
  switch (cs) {
    case AVCOL_SPC_BT709:
      return SWS_CS_ITU709;
    case AVCOL_SPC_FCC:
      return SWS_CS_FCC;
    case AVCOL_SPC_SMPTE240M:
      return SWS_CS_SMPTE240M;
    case AVCOL_SPC_BT2020_NCL:
    case AVCOL_SPC_BT2020_CL:
      return SWS_CS_BT2020;
    case AVCOL_SPC_BT470BG:
    case AVCOL_SPC_SMPTE170M:
      return SWS_CS_ITU601;
    default:
      return SWS_CS_DEFAULT;
  }
}

static int is_full_range(const AVFrame *f) {
  if (f->color_range == AVCOL_RANGE_JPEG) return 1;
  switch (f->format) {
    case AV_PIX_FMT_YUVJ420P:
    case AV_PIX_FMT_YUVJ422P:
    case AV_PIX_FMT_YUVJ444P:
    case AV_PIX_FMT_YUVJ440P:
    case AV_PIX_FMT_YUVJ411P:
      return 1;
    default:
      return 0;
  }
}

/* The non-deprecated twin of a full-range "J" format (swscale warns about the J ones); others unchanged. */
static enum AVPixelFormat unjay(enum AVPixelFormat f) {
  switch (f) {
    case AV_PIX_FMT_YUVJ420P:
      return AV_PIX_FMT_YUV420P;
    case AV_PIX_FMT_YUVJ422P:
      return AV_PIX_FMT_YUV422P;
    case AV_PIX_FMT_YUVJ444P:
      return AV_PIX_FMT_YUV444P;
    case AV_PIX_FMT_YUVJ440P:
      return AV_PIX_FMT_YUV440P;
    case AV_PIX_FMT_YUVJ411P:
      return AV_PIX_FMT_YUV411P;
    default:
      return f;
  }
}

static reel_status convert(reel_decoder *d, uint8_t *rgb, size_t stride, reel_error *err) {
  AVFrame *f = d->frame;
  /*
   * Chroma is repeated over its 2x2 block, which is exact for the centre-sited
   * chroma reel writes. For 8-bit 4:2:0 swscale's direct YUV→RGB path does that
   * by itself; other inputs (10-bit) go through its generic path, where only
   * point sampling with full horizontal chroma interpolation avoids filtering
   * chroma with an offset (SWS_BICUBIC or SWS_AREA there cost 10 dB of PSNR on
   * saturated edges: 34 dB instead of 62 for a near-lossless 10-bit clip).
   */
  /* is_full_range() below still sees the J format and sets full range explicitly. */
  struct SwsContext *s =
      sws_getCachedContext(d->sws, f->width, f->height, unjay(f->format), d->info.width, d->info.height,
                           AV_PIX_FMT_RGB24, SWS_POINT | SWS_FULL_CHR_H_INT, NULL, NULL, NULL);
  if (!s)
    return reel_error_set(err, REEL_ECODEC, "frame", "'%s': swscale cannot convert %dx%d %s to RGB24", d->path,
                          f->width, f->height, av_get_pix_fmt_name(f->format) ? av_get_pix_fmt_name(f->format) : "?");
  if (s != d->sws) d->sws_space = -1;
  d->sws = s;
  int space = sws_space_of(f->colorspace), full = is_full_range(f);
  if (space != d->sws_space || full != d->sws_full) {
    const int *coef = sws_getCoefficients(space);
    sws_setColorspaceDetails(s, coef, full, coef, 1, 0, 1 << 16, 1 << 16);
    d->sws_space = space;
    d->sws_full = full;
  }
  uint8_t *dst[4] = {rgb, NULL, NULL, NULL};
  int dst_stride[4] = {(int)stride, 0, 0, 0};
  int r = sws_scale(s, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dst, dst_stride);
  if (r <= 0) return reel__av_fail(err, "frame", r < 0 ? r : AVERROR_BUG, "converting to RGB");
  return REEL_OK;
}

reel_status reel_decoder_next_rgb(reel_decoder *d, uint8_t *rgb, size_t stride, reel_error *err) {
  if (!d) return reel_error_set(err, REEL_EINVAL, "decoder", "must not be NULL");
  if (!rgb) return reel_error_set(err, REEL_EINVAL, "rgb", "must not be NULL");
  size_t min = (size_t)d->info.width * 3;
  if (stride < min || stride > INT_MAX)
    return reel_error_set(err, REEL_EINVAL, "stride", "must be at least %zu (width * 3), got %zu", min, stride);
  for (;;) {
    int r = avcodec_receive_frame(d->cc, d->frame);
    if (r == 0) {
      reel_status st = convert(d, rgb, stride, err);
      av_frame_unref(d->frame);
      if (st == REEL_OK) d->decoded++;
      return st;
    }
    if (r == AVERROR_EOF) return REEL_EOF;
    if (r != AVERROR(EAGAIN)) return reel__av_fail(err, "codec", r, "decoding");
    if (d->flushing) return REEL_EOF; /* defensive: a drained decoder that still says EAGAIN */
    r = av_read_frame(d->fmt, d->pkt);
    if (r == AVERROR_EOF) {
      d->flushing = 1;
      r = avcodec_send_packet(d->cc, NULL);
      if (r < 0 && r != AVERROR_EOF) return reel__av_fail(err, "codec", r, "flushing the decoder");
      continue;
    }
    if (r < 0) {
      char text[AV_ERROR_MAX_STRING_SIZE];
      av_strerror(r, text, sizeof text);
      return reel_error_set(err, REEL_EFORMAT, "path", "'%s': reading after frame %lld: %s", d->path,
                            (long long)d->decoded, text);
    }
    if (d->pkt->stream_index != d->stream) {
      av_packet_unref(d->pkt);
      continue;
    }
    r = avcodec_send_packet(d->cc, d->pkt);
    av_packet_unref(d->pkt);
    if (r < 0 && r != AVERROR(EAGAIN)) {
      char text[AV_ERROR_MAX_STRING_SIZE];
      av_strerror(r, text, sizeof text);
      return reel_error_set(err, REEL_EFORMAT, "path", "'%s': bad data after frame %lld: %s", d->path,
                            (long long)d->decoded, text);
    }
  }
}
