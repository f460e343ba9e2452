/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Animated previews (see reel/image.h): frames picked at the preview's rate,
 * scaled down with swscale's area filter, then
 *
 *  - WebP: fed one by one to libavcodec's libwebp_anim encoder (BT.601
 *    limited-range 4:2:0, which is what lossy WebP stores), whose single packet
 *    at the end is the whole animated WebP file (loop forever), written as is;
 *  - GIF: kept as RGB until the end, when one palette for every frame is made
 *    by median cut over a 5-bit-per-channel histogram (the palette entries are
 *    the mean colours of their boxes), pixels are mapped to it with 4x4 ordered
 *    dithering, and the frames go through FFmpeg's gif encoder and muxer. One
 *    palette keeps colours from flickering between frames; the muxer writes it
 *    once, as the global colour table.
 *
 * GIF delays are in hundredths of a second: each frame's delay is the
 * difference of the rounded presentation times, so the total stays right.
 */
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libswscale/swscale.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "av_common.h"
#include "reel/alloc.h"
#include "reel/image.h"

enum { HIST_BITS = 5, HIST_SIZE = 1 << (3 * HIST_BITS), PALETTE = 256 };

struct reel_anim {
  reel__av_owner owner; /* first: FFmpeg contexts point here */
  reel_anim_format format;
  int width, height;    /* source */
  int ow, oh;           /* preview */
  int fps_num, fps_den; /* source */
  int out_fps;          /* preview */
  int max_frames;
  int quality;
  reel_sink *sink;
  struct SwsContext *sws;
  int64_t pushed;  /* source frames offered */
  int taken;       /* preview frames */
  int dropped;     /* frames past max_frames that the clock would have taken */
  int64_t *pts_ms; /* [max_frames] presentation time of each preview frame */
  /* WebP */
  AVCodecContext *cc;
  AVFrame *frame;
  AVPacket *pkt;
  /* GIF */
  uint8_t *rgb; /* [max_frames][oh][ow][3], taken frames */
};

reel_status reel_anim_format_from_name(const char *name, const char *field, reel_anim_format *out, reel_error *err) {
  const char *dot = name ? strrchr(name, '.') : NULL;
  const char *slash = name ? strrchr(name, '/') : NULL;
  if (dot && (!slash || dot > slash)) {
    if (!strcasecmp(dot, ".webp")) {
      *out = REEL_ANIM_WEBP;
      return REEL_OK;
    }
    if (!strcasecmp(dot, ".gif")) {
      *out = REEL_ANIM_GIF;
      return REEL_OK;
    }
  }
  return reel_error_set(err, REEL_EINVAL, field, "'%.200s': animated previews must end in .webp or .gif",
                        name ? name : "");
}

void reel_anim_destroy(reel_anim **ap) {
  if (!ap || !*ap) return;
  reel_anim *a = *ap;
  *ap = NULL;
  reel_sink_abort(&a->sink);
  sws_freeContext(a->sws);
  avcodec_free_context(&a->cc);
  av_frame_free(&a->frame);
  av_packet_free(&a->pkt);
  reel_free(a->pts_ms);
  reel_free(a->rgb);
  reel_free(a);
}

int reel_anim_frames(const reel_anim *a) { return a ? a->taken : 0; }

/* Source frame i shows at i * den / num seconds; preview frame k (= taken) is due at k / out_fps. */
static int due(const reel_anim *a, int64_t i) {
  return i * (int64_t)a->out_fps * a->fps_den >= (int64_t)a->taken * a->fps_num && a->taken < a->max_frames;
}

int reel_anim_wants_next(const reel_anim *a) { return a && a->sink && due(a, a->pushed); }

void reel_anim_skip(reel_anim *a) {
  if (!a || !a->sink) return;
  if (a->taken == a->max_frames && a->pushed * (int64_t)a->out_fps * a->fps_den >= (int64_t)a->taken * a->fps_num)
    a->dropped++;
  a->pushed++;
}

static reel_status open_webp(reel_anim *a, reel_error *err) {
  const AVCodec *codec = avcodec_find_encoder_by_name("libwebp_anim");
  if (!codec)
    return reel_error_set(err, REEL_EUNSUPPORTED, "preview_anim",
                          "this FFmpeg has no libwebp_anim encoder: use a .gif preview");
  a->cc = avcodec_alloc_context3(codec);
  a->frame = av_frame_alloc();
  a->pkt = av_packet_alloc();
  if (!a->cc || !a->frame || !a->pkt) return reel_error_set(err, REEL_ENOMEM, "preview_anim", "out of memory");
  a->cc->opaque = &a->owner;
  a->cc->width = a->ow;
  a->cc->height = a->oh;
  a->cc->pix_fmt = AV_PIX_FMT_YUV420P;
  a->cc->time_base = (AVRational){1, 1000};
  a->cc->color_range = AVCOL_RANGE_MPEG;
  a->cc->colorspace = AVCOL_SPC_BT470BG;
  AVDictionary *opts = NULL;
  char q[16];
  snprintf(q, sizeof q, "%d", a->quality);
  if (av_dict_set(&opts, "quality", q, 0) < 0) {
    av_dict_free(&opts);
    return reel_error_set(err, REEL_ENOMEM, "preview_anim", "out of memory");
  }
  int r = avcodec_open2(a->cc, codec, &opts);
  av_dict_free(&opts);
  if (r < 0) return reel__av_fail(err, "preview_anim", r, "opening libwebp_anim");
  a->frame->format = AV_PIX_FMT_YUV420P;
  a->frame->width = a->ow;
  a->frame->height = a->oh;
  if ((r = av_frame_get_buffer(a->frame, 0)) < 0) return reel__av_fail(err, "preview_anim", r, "allocating a frame");
  /* swscale's default RGB→YUV matrix is BT.601 limited range: lossy WebP's own. */
  a->sws = sws_getContext(a->width, a->height, AV_PIX_FMT_RGB24, a->ow, a->oh, AV_PIX_FMT_YUV420P, SWS_AREA, NULL, NULL,
                          NULL);
  if (!a->sws) return reel_error_set(err, REEL_ECODEC, "preview_anim", "swscale cannot scale RGB24 to YUV 4:2:0");
  return REEL_OK;
}

static reel_status open_gif(reel_anim *a, reel_error *err) {
  if (!avcodec_find_encoder(AV_CODEC_ID_GIF))
    return reel_error_set(err, REEL_EUNSUPPORTED, "preview_anim", "this FFmpeg has no GIF encoder");
  size_t frame = (size_t)a->ow * (size_t)a->oh * 3;
  a->rgb = reel_malloc(frame * (size_t)a->max_frames);
  if (!a->rgb)
    return reel_error_set(err, REEL_ENOMEM, "preview_anim", "no memory for %d preview frames of %dx%d", a->max_frames,
                          a->ow, a->oh);
  a->sws =
      sws_getContext(a->width, a->height, AV_PIX_FMT_RGB24, a->ow, a->oh, AV_PIX_FMT_RGB24, SWS_AREA, NULL, NULL, NULL);
  if (!a->sws) return reel_error_set(err, REEL_ECODEC, "preview_anim", "swscale cannot scale RGB24");
  return REEL_OK;
}

reel_status reel_anim_open(const char *url, const reel_anim_options *o, reel_anim **out, reel_error *err) {
  if (!out) return reel_error_set(err, REEL_EINVAL, "out", "must not be NULL");
  *out = NULL;
  if (!o) return reel_error_set(err, REEL_EINVAL, "options", "must not be NULL");
  if (!url || !url[0]) return reel_error_set(err, REEL_EINVAL, "preview_anim", "must be a file path or URL");
  reel_anim_format format;
  reel_status st = reel_anim_format_from_name(url, "preview_anim", &format, err);
  if (st != REEL_OK) return st;
  if (o->width < 2 || o->height < 2 || o->width > 16384 || o->height > 16384)
    return reel_error_set(err, REEL_ERANGE, "width", "frames must be 2..16384 pixels on each side, got %dx%d", o->width,
                          o->height);
  if (o->fps_num < 1 || o->fps_den < 1 || o->fps_num > 1000000 || o->fps_den > 1000000)
    return reel_error_set(err, REEL_ERANGE, "fps", "must be n/d with n, d in 1..1000000, got %d/%d", o->fps_num,
                          o->fps_den);
  int max_w = o->width < 1920 ? o->width : 1920;
  if (o->out_width && (o->out_width < 16 || o->out_width > max_w))
    return reel_error_set(err, REEL_ERANGE, "preview_width", "must be in 16..%d (0 = %d), got %d", max_w,
                          o->width < 320 ? o->width : 320, o->out_width);
  if (o->out_fps < 0 || o->out_fps > 30)
    return reel_error_set(err, REEL_ERANGE, "preview_fps", "must be in 1..30 (0 = 6), got %d", o->out_fps);
  if (o->max_frames < 0 || o->max_frames > 1000)
    return reel_error_set(err, REEL_ERANGE, "preview_frames", "must be in 1..1000 (0 = 150), got %d", o->max_frames);
  if (o->quality < 0 || o->quality > 100)
    return reel_error_set(err, REEL_ERANGE, "preview_quality", "must be in 1..100 (0 = 75), got %d", o->quality);

  reel_anim *a = reel_calloc(1, sizeof *a);
  if (!a) return reel_error_set(err, REEL_ENOMEM, "preview_anim", "out of memory");
  a->owner.magic = REEL__AV_OWNER_MAGIC;
  a->owner.log = o->log;
  a->owner.module = "encoder";
  a->format = format;
  a->width = o->width;
  a->height = o->height;
  a->fps_num = o->fps_num;
  a->fps_den = o->fps_den;
  a->ow = o->out_width ? o->out_width : (o->width < 320 ? o->width : 320);
  /* Height keeps the aspect ratio, rounded to even (4:2:0 WebP), at least 2. */
  a->oh = (int)(((int64_t)a->ow * o->height + o->width) / (2 * (int64_t)o->width)) * 2;
  if (a->oh < 2) a->oh = 2;
  a->ow &= ~1;
  a->out_fps = o->out_fps ? o->out_fps : 6;
  a->max_frames = o->max_frames ? o->max_frames : 150;
  a->quality = o->quality ? o->quality : 75;
  a->pts_ms = reel_calloc((size_t)a->max_frames, sizeof *a->pts_ms);
  if (!a->pts_ms) {
    st = reel_error_set(err, REEL_ENOMEM, "preview_anim", "out of memory");
    goto fail;
  }
  st = format == REEL_ANIM_WEBP ? open_webp(a, err) : open_gif(a, err);
  if (st != REEL_OK) goto fail;
  reel_sink_options so = {0};
  if (o->sink_opts) so = *o->sink_opts;
  if (!so.log) so.log = o->log;
  so.content_type = format == REEL_ANIM_WEBP ? "image/webp" : "image/gif";
  if ((st = reel_sink_open(url, &so, &a->sink, err))) {
    if (err && !strcmp(err->field, "url")) snprintf(err->field, sizeof err->field, "preview_anim");
    goto fail;
  }
  *out = a;
  return REEL_OK;
fail:
  reel_anim_destroy(&a);
  return st;
}

/* ---- WebP ---- */

static reel_status webp_drain(reel_anim *a, reel_error *err) {
  for (;;) {
    int r = avcodec_receive_packet(a->cc, a->pkt);
    if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return REEL_OK;
    if (r < 0) return reel__av_fail(err, "preview_anim", r, "encoding the WebP preview");
    /* The packet is the whole file (RIFF ... WEBP, VP8X, ANIM, ANMF...). */
    reel_status st =
        a->pkt->size >= 12 && !memcmp(a->pkt->data, "RIFF", 4) && !memcmp(a->pkt->data + 8, "WEBP", 4)
            ? reel_sink_write(a->sink, a->pkt->data, (size_t)a->pkt->size, err)
            : reel_error_set(err, REEL_ECODEC, "preview_anim",
                             "libwebp_anim gave a packet that is not a WebP file (%d bytes)", a->pkt->size);
    av_packet_unref(a->pkt);
    if (st != REEL_OK) return st;
  }
}

static reel_status webp_add(reel_anim *a, const uint8_t *rgb, size_t stride, int64_t pts_ms, reel_error *err) {
  int r = av_frame_make_writable(a->frame);
  if (r < 0) return reel__av_fail(err, "preview_anim", r, "getting a frame buffer");
  const uint8_t *src[4] = {rgb, NULL, NULL, NULL};
  const int src_stride[4] = {(int)stride, 0, 0, 0};
  sws_scale(a->sws, src, src_stride, 0, a->height, a->frame->data, a->frame->linesize);
  a->frame->pts = pts_ms;
  r = avcodec_send_frame(a->cc, a->frame);
  if (r < 0) return reel__av_fail(err, "preview_anim", r, "encoding the WebP preview");
  return webp_drain(a, err);
}

/* ---- GIF ---- */

typedef struct hist_bin {
  uint32_t count;
  uint64_t sum[3]; /* of the exact 8-bit values that fell into the bin */
} hist_bin;

typedef struct cut_box {
  int lo[3], hi[3]; /* bin coordinates, inclusive, shrunk to the occupied bins */
  uint64_t count;
} cut_box;

static inline int bin_of(int r, int g, int b) { return (r << (2 * HIST_BITS)) | (g << HIST_BITS) | b; }

/* Shrinks a box to the bins that hold pixels and counts them. */
static void box_fit(cut_box *bx, const hist_bin *h) {
  int lo[3] = {31, 31, 31}, hi[3] = {0, 0, 0};
  uint64_t n = 0;
  for (int r = bx->lo[0]; r <= bx->hi[0]; r++)
    for (int g = bx->lo[1]; g <= bx->hi[1]; g++)
      for (int b = bx->lo[2]; b <= bx->hi[2]; b++) {
        uint32_t c = h[bin_of(r, g, b)].count;
        if (!c) continue;
        n += c;
        int v[3] = {r, g, b};
        for (int k = 0; k < 3; k++) {
          if (v[k] < lo[k]) lo[k] = v[k];
          if (v[k] > hi[k]) hi[k] = v[k];
        }
      }
  bx->count = n;
  if (n) {
    memcpy(bx->lo, lo, sizeof lo);
    memcpy(bx->hi, hi, sizeof hi);
  }
}

/* Splits box `i` along its longest side at the pixel median; returns 0 when it cannot be split. */
static int box_split(cut_box *boxes, int *nbox, int i, const hist_bin *h) {
  cut_box *bx = &boxes[i];
  int axis = 0;
  for (int k = 1; k < 3; k++)
    if (bx->hi[k] - bx->lo[k] > bx->hi[axis] - bx->lo[axis]) axis = k;
  if (bx->hi[axis] == bx->lo[axis]) return 0;
  uint64_t plane[32] = {0};
  for (int r = bx->lo[0]; r <= bx->hi[0]; r++)
    for (int g = bx->lo[1]; g <= bx->hi[1]; g++)
      for (int b = bx->lo[2]; b <= bx->hi[2]; b++) {
        int v[3] = {r, g, b};
        plane[v[axis]] += h[bin_of(r, g, b)].count;
      }
  uint64_t acc = 0;
  int cut = bx->lo[axis];
  for (int v = bx->lo[axis]; v < bx->hi[axis]; v++) {
    acc += plane[v];
    cut = v;
    if (2 * acc >= bx->count) break;
  }
  cut_box hi = *bx;
  bx->hi[axis] = cut;
  hi.lo[axis] = cut + 1;
  box_fit(bx, h);
  box_fit(&hi, h);
  boxes[(*nbox)++] = hi;
  return 1;
}

/* A palette for every taken frame: median cut, then each box's mean colour. Returns the number of entries. */
static int make_palette(reel_anim *a, hist_bin *h, uint32_t *pal) {
  size_t n = (size_t)a->ow * a->oh * (size_t)a->taken;
  for (size_t i = 0; i < n; i++) {
    const uint8_t *p = a->rgb + 3 * i;
    hist_bin *bn = &h[bin_of(p[0] >> 3, p[1] >> 3, p[2] >> 3)];
    bn->count++;
    for (int k = 0; k < 3; k++) bn->sum[k] += p[k];
  }
  cut_box boxes[PALETTE];
  int nbox = 1;
  boxes[0] = (cut_box){{0, 0, 0}, {31, 31, 31}, 0};
  box_fit(&boxes[0], h);
  while (nbox < PALETTE) {
    /* Split the box with the most pixels times its longest side (in bins) among those that can split. */
    int best = -1;
    uint64_t best_score = 0;
    for (int i = 0; i < nbox; i++) {
      int side = 0;
      for (int k = 0; k < 3; k++)
        if (boxes[i].hi[k] - boxes[i].lo[k] > side) side = boxes[i].hi[k] - boxes[i].lo[k];
      uint64_t score = boxes[i].count * (uint64_t)side;
      if (side > 0 && score > best_score) {
        best_score = score;
        best = i;
      }
    }
    if (best < 0 || !box_split(boxes, &nbox, best, h)) break;
  }
  for (int i = 0; i < nbox; i++) {
    uint64_t s[3] = {0, 0, 0}, c = 0;
    for (int r = boxes[i].lo[0]; r <= boxes[i].hi[0]; r++)
      for (int g = boxes[i].lo[1]; g <= boxes[i].hi[1]; g++)
        for (int b = boxes[i].lo[2]; b <= boxes[i].hi[2]; b++) {
          const hist_bin *bn = &h[bin_of(r, g, b)];
          c += bn->count;
          for (int k = 0; k < 3; k++) s[k] += bn->sum[k];
        }
    uint32_t rgb[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++) rgb[k] = c ? (uint32_t)((s[k] + c / 2) / c) : 0;
    pal[i] = 0xff000000u | rgb[0] << 16 | rgb[1] << 8 | rgb[2];
  }
  for (int i = nbox; i < PALETTE; i++) pal[i] = 0xff000000u;
  return nbox;
}

/* Nearest palette entry to the centre of a histogram bin, computed once per bin. */
static uint8_t lookup(int16_t *lut, const uint32_t *pal, int npal, int bin) {
  if (lut[bin] >= 0) return (uint8_t)lut[bin];
  int r = ((bin >> (2 * HIST_BITS)) & 31) * 8 + 4, g = ((bin >> HIST_BITS) & 31) * 8 + 4, b = (bin & 31) * 8 + 4;
  int best = 0, best_d = 1 << 30;
  for (int i = 0; i < npal; i++) {
    int dr = r - (int)(pal[i] >> 16 & 255), dg = g - (int)(pal[i] >> 8 & 255), db = b - (int)(pal[i] & 255);
    int d = 2 * dr * dr + 4 * dg * dg + db * db; /* rough perceptual weights */
    if (d < best_d) {
      best_d = d;
      best = i;
    }
  }
  lut[bin] = (int16_t)best;
  return (uint8_t)best;
}

/* GIF muxer output: non-seekable writes into the sink; the first failure is kept for the caller. */
typedef struct gif_io {
  reel_sink *sink;
  reel_status st;
  reel_error err;
} gif_io;

#if LIBAVFORMAT_VERSION_MAJOR >= 61
static int gif_write(void *opaque, const uint8_t *buf, int size) {
#else
static int gif_write(void *opaque, uint8_t *buf, int size) {
#endif
  gif_io *io = opaque;
  if (io->st != REEL_OK) return AVERROR(EIO);
  io->st = reel_sink_write(io->sink, buf, (size_t)size, &io->err);
  return io->st == REEL_OK ? size : AVERROR(EIO);
}

static reel_status gif_fail(gif_io *io, int averr, const char *what, reel_error *err) {
  if (io->st != REEL_OK) {
    if (err) *err = io->err;
    return io->st;
  }
  return reel__av_fail(err, "preview_anim", averr, what);
}

static reel_status gif_write_all(reel_anim *a, reel_error *err) {
  reel_status st = REEL_OK;
  hist_bin *h = reel_calloc(HIST_SIZE, sizeof *h);
  int16_t *lut = reel_malloc(HIST_SIZE * sizeof *lut);
  AVCodecContext *cc = NULL;
  AVFormatContext *fmt = NULL;
  AVIOContext *pb = NULL;
  AVFrame *frame = av_frame_alloc();
  AVPacket *pkt = av_packet_alloc();
  uint8_t *iobuf = av_malloc(32768);
  gif_io io = {a->sink, REEL_OK, {0}};
  int r;
  if (!h || !lut || !frame || !pkt || !iobuf) {
    st = reel_error_set(err, REEL_ENOMEM, "preview_anim", "out of memory");
    goto end;
  }
  memset(lut, 0xff, HIST_SIZE * sizeof *lut);
  uint32_t pal[PALETTE];
  int npal = make_palette(a, h, pal);

  const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_GIF);
  cc = avcodec_alloc_context3(codec);
  if (!cc || avformat_alloc_output_context2(&fmt, NULL, "gif", NULL) < 0 || !fmt) {
    st = reel_error_set(err, REEL_ENOMEM, "preview_anim", "out of memory");
    goto end;
  }
  cc->opaque = &a->owner;
  fmt->opaque = &a->owner;
  cc->width = a->ow;
  cc->height = a->oh;
  cc->pix_fmt = AV_PIX_FMT_PAL8;
  cc->time_base = (AVRational){1, 100};
  if ((r = avcodec_open2(cc, codec, NULL)) < 0) {
    st = reel__av_fail(err, "preview_anim", r, "opening the GIF encoder");
    goto end;
  }
  pb = avio_alloc_context(iobuf, 32768, 1, &io, NULL, gif_write, NULL);
  if (pb) iobuf = NULL; /* pb owns it */
  AVStream *vs = avformat_new_stream(fmt, NULL);
  if (!pb || !vs) {
    st = reel_error_set(err, REEL_ENOMEM, "preview_anim", "out of memory");
    goto end;
  }
  fmt->pb = pb;
  fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
  if ((r = avcodec_parameters_from_context(vs->codecpar, cc)) < 0) {
    st = reel__av_fail(err, "preview_anim", r, "copying codec parameters");
    goto end;
  }
  vs->time_base = cc->time_base;
  if ((r = avformat_write_header(fmt, NULL)) < 0) { /* loop forever: the muxer's default */
    st = gif_fail(&io, r, "writing the GIF header", err);
    goto end;
  }
  frame->format = AV_PIX_FMT_PAL8;
  frame->width = a->ow;
  frame->height = a->oh;
  if ((r = av_frame_get_buffer(frame, 0)) < 0) {
    st = reel__av_fail(err, "preview_anim", r, "allocating a frame");
    goto end;
  }
  /* 4x4 Bayer matrix, centred: about one histogram bin (8 levels) peak to peak. */
  static const int8_t bayer[4][4] = {{-8, 0, -6, 2}, {4, -4, 6, -2}, {-5, 3, -7, 1}, {7, -1, 5, -3}};
  int64_t end_cs = (a->pts_ms[a->taken - 1] + 1000 / a->out_fps + 5) / 10;
  for (int k = 0; k <= a->taken; k++) {
    if (k < a->taken) {
      if ((r = av_frame_make_writable(frame)) < 0) {
        st = reel__av_fail(err, "preview_anim", r, "getting a frame buffer");
        goto end;
      }
      memcpy(frame->data[1], pal, sizeof pal);
      const uint8_t *src = a->rgb + (size_t)k * a->ow * a->oh * 3;
      for (int y = 0; y < a->oh; y++) {
        uint8_t *d = frame->data[0] + (size_t)y * frame->linesize[0];
        for (int x = 0; x < a->ow; x++) {
          const uint8_t *p = src + ((size_t)y * a->ow + x) * 3;
          int t = bayer[y & 3][x & 3] / 2, c[3];
          for (int i = 0; i < 3; i++) {
            int v = p[i] + t;
            c[i] = (v < 0 ? 0 : v > 255 ? 255 : v) >> 3;
          }
          d[x] = lookup(lut, pal, npal, bin_of(c[0], c[1], c[2]));
        }
      }
      frame->pts = (a->pts_ms[k] + 5) / 10;
      r = avcodec_send_frame(cc, frame);
    } else {
      r = avcodec_send_frame(cc, NULL);
    }
    if (r < 0) {
      st = reel__av_fail(err, "preview_anim", r, "encoding the GIF preview");
      goto end;
    }
    for (;;) {
      r = avcodec_receive_packet(cc, pkt);
      if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) break;
      if (r < 0) {
        st = reel__av_fail(err, "preview_anim", r, "encoding the GIF preview");
        goto end;
      }
      /* Delay = the next frame's rounded time minus this one's, so that the total is right. */
      int64_t next = pkt->pts;
      for (int j = 0; j < a->taken; j++)
        if ((a->pts_ms[j] + 5) / 10 > pkt->pts) {
          next = (a->pts_ms[j] + 5) / 10;
          break;
        }
      if (next == pkt->pts) next = end_cs;
      pkt->duration = next > pkt->pts ? next - pkt->pts : 1;
      pkt->stream_index = vs->index;
      av_packet_rescale_ts(pkt, cc->time_base, vs->time_base);
      r = av_interleaved_write_frame(fmt, pkt);
      if (r < 0) {
        st = gif_fail(&io, r, "writing the GIF preview", err);
        goto end;
      }
    }
  }
  if ((r = av_write_trailer(fmt)) < 0) {
    st = gif_fail(&io, r, "writing the GIF trailer", err);
    goto end;
  }
  avio_flush(pb);
  if (io.st != REEL_OK || pb->error < 0) st = gif_fail(&io, pb->error, "writing the GIF preview", err);
end:
  if (pb) {
    av_freep(&pb->buffer);
    avio_context_free(&pb);
  }
  av_free(iobuf);
  avformat_free_context(fmt);
  avcodec_free_context(&cc);
  av_frame_free(&frame);
  av_packet_free(&pkt);
  reel_free(lut);
  reel_free(h);
  return st;
}

/* ---- common ---- */

reel_status reel_anim_push_rgb(reel_anim *a, const uint8_t *rgb, size_t stride, reel_error *err) {
  if (!a) return reel_error_set(err, REEL_EINVAL, "preview_anim", "must not be NULL");
  if (!a->sink) return reel_error_set(err, REEL_ESTATE, "preview_anim", "already finished or failed");
  if (!rgb || stride < (size_t)a->width * 3 || stride > (size_t)INT32_MAX)
    return reel_error_set(err, REEL_EINVAL, "stride", "must be at least %d (width * 3)", a->width * 3);
  int64_t i = a->pushed++;
  if (!due(a, i)) {
    if (a->taken == a->max_frames && i * (int64_t)a->out_fps * a->fps_den >= (int64_t)a->taken * a->fps_num)
      a->dropped++;
    return REEL_OK;
  }
  int64_t pts_ms = (i * 1000 * a->fps_den + a->fps_num / 2) / a->fps_num;
  reel_status st = REEL_OK;
  if (a->format == REEL_ANIM_WEBP) {
    st = webp_add(a, rgb, stride, pts_ms, err);
  } else {
    uint8_t *dst[4] = {a->rgb + (size_t)a->taken * a->ow * a->oh * 3, NULL, NULL, NULL};
    const int dst_stride[4] = {a->ow * 3, 0, 0, 0};
    const uint8_t *src[4] = {rgb, NULL, NULL, NULL};
    const int src_stride[4] = {(int)stride, 0, 0, 0};
    sws_scale(a->sws, src, src_stride, 0, a->height, dst, dst_stride);
  }
  if (st != REEL_OK) {
    reel_sink_abort(&a->sink);
    return st;
  }
  /* A source slower than the preview rate has every frame taken, at its own times. */
  a->pts_ms[a->taken++] = pts_ms;
  return REEL_OK;
}

reel_status reel_anim_finish(reel_anim *a, reel_sink_result *res, reel_error *err) {
  if (!a) return reel_error_set(err, REEL_EINVAL, "preview_anim", "must not be NULL");
  if (!a->sink) return reel_error_set(err, REEL_ESTATE, "preview_anim", "already finished or failed");
  if (!a->taken) {
    reel_sink_abort(&a->sink);
    return reel_error_set(err, REEL_EINVAL, "preview_anim", "no frames were given");
  }
  reel_status st;
  if (a->format == REEL_ANIM_WEBP) {
    int r = avcodec_send_frame(a->cc, NULL);
    st = r < 0 ? reel__av_fail(err, "preview_anim", r, "flushing the WebP encoder") : webp_drain(a, err);
  } else {
    st = gif_write_all(a, err);
  }
  if (st == REEL_OK && a->sink->bytes == 0)
    st = reel_error_set(err, REEL_ECODEC, "preview_anim", "the encoder produced no output");
  if (st != REEL_OK) {
    reel_sink_abort(&a->sink);
    return st;
  }
  if (a->dropped)
    reel_log(a->owner.log, REEL_LOG_DEBUG, "encoder", a->owner.job_id, "preview cut short", "frames=%d left_out=%d",
             a->taken, a->dropped);
  return reel_sink_close(&a->sink, res, err);
}
