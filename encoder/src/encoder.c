/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The encoding session: RGB frames → YUV 4:2:0 (BT.709, limited range) → an
 * FFmpeg encoder → a muxer whose AVIOContext writes through a reel_sink.
 *
 * Colour conversion is colour.c's (BT.709 limited range, 2x2-average chroma,
 * tagged centre-sited); a smoother chroma filter would smear saturated edges
 * into neighbouring blocks (about 5 dB of RGB PSNR on colour bars).
 *
 * The API sequence follows FFmpeg's doc/examples (encode_video.c, mux.c):
 * allocate the output context, add a stream, open the encoder, copy its
 * parameters to the stream, write the header, then send frames and drain
 * packets until EAGAIN, flush with a NULL frame until EOF, write the trailer.
 * EAGAIN and EOF are codes in that loop, never errors.
 *
 * Codecs and containers come from two tables below, so adding one is a row,
 * not new code paths: a codec row says which AVOption its preset sets, its CRF
 * range and defaults, the options that keep it quiet and threaded, the
 * containers and pixel formats it goes into and the MP4 sample entry to use
 * (hvc1 for HEVC: Apple's players refuse hev1). MP4 faststart moves the index to the front
 * after encoding: the mov muxer re-opens its output for reading through
 * io_open, which we answer with a second AVIOContext on the same sink; each
 * AVIOContext keeps its own position and the sink is repositioned before each
 * access.
 */
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "av_common.h"
#include "colour.h"
#include "reel/alloc.h"
#include "reel/clock.h"
#include "hw.h"
#include "reel/backend.h"
#include "reel/encoder.h"
#include "reel/image.h"

#if LIBAVFORMAT_VERSION_MAJOR >= 61
#define REEL_AVIO_WBUF const uint8_t *
#else
#define REEL_AVIO_WBUF uint8_t *
#endif

enum { IO_BUF_SIZE = 256 * 1024, READ_BUF_SIZE = 64 * 1024 };

#define CBIT(c) (1u << (unsigned)(c))

typedef struct av_opt {
  const char *key, *value;
} av_opt;

typedef struct codec_row {
  reel_codec codec;
  const char *encoder;       /* libavcodec encoder name */
  int crf_min, crf_max;      /* accepted CRF range */
  int crf_default;           /* used when options.crf == -1 and no bitrate is set */
  const char *preset_option; /* the encoder's AVOption that the preset sets */
  const char *preset_default;
  const char *const *presets;  /* accepted presets, NULL-terminated */
  const av_opt *extra;         /* options always set (quiet logs, threading), {NULL} terminated */
  unsigned containers;         /* CBIT(reel_container) of containers that carry it */
  unsigned pix_fmts;           /* CBIT(reel_pix_fmt) the encoder takes */
  int min_size;                /* smallest width and height the encoder accepts */
  uint32_t mp4_tag;            /* sample entry in MP4; 0 = the muxer's default */
  int zero_bitrate_for_crf;    /* the encoder reads bit_rate > 0 as a cap on CRF: clear it */
  int chroma_loc_in_container; /* the bitstream cannot say "centre-sited": tell the container only */
  const char *nvenc;           /* NVENC encoder for the codec (8-bit), or NULL */
} codec_row;

/* x264 and x265 share their preset names. */
static const char *const x26x_presets[] = {"ultrafast", "superfast", "veryfast", "faster",  "fast", "medium",
                                           "slow",      "slower",    "veryslow", "placebo", NULL};
/* SVT-AV1: 0 (slowest) .. 13 (fastest). */
static const char *const svtav1_presets[] = {"0", "1", "2",  "3",  "4",  "5",  "6", "7",
                                             "8", "9", "10", "11", "12", "13", NULL};
/* libvpx-vp9: cpu-used 0 (slowest) .. 8 (fastest), with deadline=good. */
static const char *const vp9_presets[] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", NULL};

static const av_opt x264_extra[] = {{NULL, NULL}};
/* x265 writes its own banner and statistics to stderr unless told otherwise. */
static const av_opt x265_extra[] = {{"x265-params", "log-level=error"}, {NULL, NULL}};
static const av_opt svtav1_extra[] = {{NULL, NULL}};
static const av_opt vp9_extra[] = {{"deadline", "good"}, {"row-mt", "1"}, {NULL, NULL}};

#define MP4_ALL (CBIT(REEL_CONTAINER_MP4) | CBIT(REEL_CONTAINER_FMP4) | CBIT(REEL_CONTAINER_MKV))
#define PIX_ALL (CBIT(REEL_PIX_YUV420P) | CBIT(REEL_PIX_YUV420P10))

static const codec_row codec_table[] = {
    {.codec = REEL_CODEC_H264,
     .encoder = "libx264",
     .crf_min = 0,
     .crf_max = 51,
     .crf_default = 23,
     .preset_option = "preset",
     .preset_default = "medium",
     .presets = x26x_presets,
     .extra = x264_extra,
     .containers = MP4_ALL,
     .pix_fmts = PIX_ALL,
     .min_size = 16,
     .nvenc = "h264_nvenc"},
    {.codec = REEL_CODEC_HEVC,
     .encoder = "libx265",
     .crf_min = 0,
     .crf_max = 51,
     .crf_default = 28,
     .preset_option = "preset",
     .preset_default = "medium",
     .presets = x26x_presets,
     .extra = x265_extra,
     .containers = MP4_ALL,
     .pix_fmts = PIX_ALL,
     .min_size = 16,
     .mp4_tag = MKTAG('h', 'v', 'c', '1'),
     .nvenc = "hevc_nvenc"},
    /* SVT-AV1 refuses frames under 64 pixels on a side; crf 0 would mean "unset" to FFmpeg's wrapper. */
    {.codec = REEL_CODEC_AV1,
     .encoder = "libsvtav1",
     .crf_min = 1,
     .crf_max = 63,
     .crf_default = 35,
     .preset_option = "preset",
     .preset_default = "8",
     .presets = svtav1_presets,
     .extra = svtav1_extra,
     .containers = MP4_ALL | CBIT(REEL_CONTAINER_WEBM),
     .pix_fmts = PIX_ALL,
     .min_size = 64,
     .chroma_loc_in_container = 1,
     .nvenc = "av1_nvenc"}, /* FFmpeg 6.0 on; 5.1 lacks it, so the probe finds nothing */
    /* libvpx reads a bit rate next to crf as a cap ("constrained quality"): plain CRF needs bit_rate 0. */
    {.codec = REEL_CODEC_VP9,
     .encoder = "libvpx-vp9",
     .crf_min = 0,
     .crf_max = 63,
     .crf_default = 31,
     .preset_option = "cpu-used",
     .preset_default = "4",
     .presets = vp9_presets,
     .extra = vp9_extra,
     .containers = MP4_ALL | CBIT(REEL_CONTAINER_WEBM),
     .pix_fmts = PIX_ALL,
     .min_size = 16,
     .zero_bitrate_for_crf = 1},
};

typedef struct container_row {
  reel_container container;
  const char *name;     /* as reported in stats ("fmp4") */
  const char *muxer;    /* libavformat muxer */
  const char *movflags; /* mov/mp4 muxer flags; NULL = none */
  int needs_seek;       /* the muxer must seek back: not for streaming sinks */
} container_row;

static const container_row container_table[] = {
    {REEL_CONTAINER_MP4, "mp4", "mp4", "+faststart", 1},
    {REEL_CONTAINER_FMP4, "fmp4", "mp4", "+frag_keyframe+empty_moov+default_base_moof", 0},
    {REEL_CONTAINER_MKV, "mkv", "matroska", NULL, 0},
    {REEL_CONTAINER_WEBM, "webm", "webm", NULL, 0},
};

const char *const reel_pix_fmt_names[] = {"yuv420p", "yuv420p10le", NULL};
static const enum AVPixelFormat av_pix_fmts[] = {AV_PIX_FMT_YUV420P, AV_PIX_FMT_YUV420P10LE};

static const codec_row *find_codec(reel_codec c) {
  for (size_t i = 0; i < sizeof codec_table / sizeof codec_table[0]; i++)
    if (codec_table[i].codec == c) return &codec_table[i];
  return NULL;
}

static const container_row *find_container(reel_container c) {
  for (size_t i = 0; i < sizeof container_table / sizeof container_table[0]; i++)
    if (container_table[i].container == c) return &container_table[i];
  return NULL;
}

static const char *name_or(const char *const *names, int i, int count) {
  return i >= 0 && i < count && names[i] ? names[i] : "?";
}
#define CODEC_NAME(c)     name_or(reel_codec_names, (int)(c), 4)
#define CONTAINER_NAME(c) name_or(reel_container_names, (int)(c), 5)
#define PIX_NAME(p)       name_or(reel_pix_fmt_names, (int)(p), 2)

/* "a, b, c" from a NULL-terminated list. */
static void join_names(const char *const *names, char *buf, size_t size) {
  buf[0] = '\0';
  for (size_t i = 0; names[i]; i++) snprintf(buf + strlen(buf), size - strlen(buf), "%s%s", i ? ", " : "", names[i]);
}

/* One AVIOContext's view of the sink: its own position in a shared sink. */
typedef struct sink_io {
  struct reel_encoder *enc;
  int64_t pos;
} sink_io;

typedef enum { ENC_OPEN = 0, ENC_FINISHED, ENC_FAILED } enc_state;

struct reel_encoder {
  reel__av_owner owner; /* first: FFmpeg contexts point here */
  const codec_row *codec;
  const container_row *container;
  int width, height;
  reel_pix_fmt pix;
  char *job_id;
  reel_sink *sink; /* borrowed */
  int seekable;
  int64_t sink_pos; /* where the sink's own position is */
  sink_io wio;      /* the muxer's output */
  reel_status io_st;
  reel_error io_err; /* first sink failure, reported instead of FFmpeg's EIO */
  AVFormatContext *fmt;
  AVIOContext *pb;
  AVStream *st;
  AVCodecContext *cc;
  const char *encoder_name; /* libavcodec encoder in use (the row's, or its NVENC one) */
  int nvenc;                /* NVENC was chosen */
  AVBufferRef *hw_frames;   /* CUDA frame pool NVENC reads from (push_tensor on a CUDA backend), or NULL */
  AVFrame *hw_frame;
  reel_backend *backend;  /* borrowed: where push_tensor's frames live */
  reel_tensor yuv_dev[3]; /* Y, U, V staging planes on the backend (no frame pool) */
  uint8_t *yuv_host;      /* their host copy */
  reel_tensor rgb_dev;    /* contiguous f32 [1, 3, H, W] on the backend, for the poster and preview */
  float *rgb_host;        /* its host copy */
  AVFrame *frame;
  AVPacket *pkt;
  uint8_t *rgb_tmp; /* float → 8-bit staging, width*height*3 */
  /* side outputs */
  reel_anim *anim;  /* animated preview, or NULL */
  char *poster_url; /* or NULL */
  reel_image_format poster_fmt;
  int64_t poster_index; /* frame wanted for the poster */
  int64_t poster_have;  /* frame held in poster_rgb; -1 = none */
  uint8_t *poster_rgb;  /* width*height*3 */
  reel_sink_options side_opts;
  enc_state state;
  int64_t frames, packets;
  uint64_t packet_bytes;
  int64_t convert_ns, encode_ns;
};

void reel_encoder_options_init(reel_encoder_options *o) {
  memset(o, 0, sizeof *o);
  o->codec = REEL_CODEC_H264;
  o->container = REEL_CONTAINER_AUTO;
  o->crf = -1;
  o->pix_fmt = REEL_PIX_YUV420P;
  o->poster_frame = -1;
}

static reel_container resolve_container(reel_container c, int seekable) {
  if (c != REEL_CONTAINER_AUTO) return c;
  return seekable ? REEL_CONTAINER_MP4 : REEL_CONTAINER_FMP4;
}

reel_status reel_encoder_check_options(const reel_encoder_options *o, int seekable, reel_error *err) {
  if (!o) return reel_error_set(err, REEL_EINVAL, "options", "must not be NULL");
  const codec_row *cr = find_codec(o->codec);
  if (!cr) {
    char list[128] = "";
    for (size_t i = 0; i < sizeof codec_table / sizeof codec_table[0]; i++)
      snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
               CODEC_NAME(codec_table[i].codec));
    return reel_error_set(err, REEL_EUNSUPPORTED, "codec", "'%s' is not available in this build (available: %s)",
                          CODEC_NAME(o->codec), list);
  }
  if (o->width < cr->min_size || o->width > 8192 || o->width % 2)
    return reel_error_set(err, REEL_ERANGE, "width", "must be even and in %d..8192 for %s (%s), got %d", cr->min_size,
                          CODEC_NAME(cr->codec), cr->encoder, o->width);
  if (o->height < cr->min_size || o->height > 8192 || o->height % 2)
    return reel_error_set(err, REEL_ERANGE, "height", "must be even and in %d..8192 for %s (%s), got %d", cr->min_size,
                          CODEC_NAME(cr->codec), cr->encoder, o->height);
  if (o->fps_num < 1 || o->fps_num > 1000000 || o->fps_den < 1 || o->fps_den > 1000000 ||
      (double)o->fps_num / o->fps_den > 1000.0)
    return reel_error_set(err, REEL_ERANGE, "fps",
                          "must be a fraction n/d with n, d in 1..1000000 and at most 1000, "
                          "got %d/%d",
                          o->fps_num, o->fps_den);
  if (o->crf != -1 && (o->crf < cr->crf_min || o->crf > cr->crf_max))
    return reel_error_set(err, REEL_ERANGE, "crf", "must be in %d..%d for %s (%s), got %d", cr->crf_min, cr->crf_max,
                          CODEC_NAME(cr->codec), cr->encoder, o->crf);
  if (o->bitrate < 0 || o->bitrate > 1000000)
    return reel_error_set(err, REEL_ERANGE, "bitrate", "must be in 1..1000000 kbit/s (0 = use crf), got %d",
                          o->bitrate);
  if (o->bitrate && o->crf != -1)
    return reel_error_set(err, REEL_EINVAL, "bitrate", "cannot be combined with crf (%d): set one of them", o->crf);
  if (o->preset && reel_name_index(cr->presets, o->preset) < 0) {
    char list[256];
    join_names(cr->presets, list, sizeof list);
    return reel_error_set(err, REEL_EINVAL, "preset", "'%.40s' is not a %s preset (one of: %s)", o->preset, cr->encoder,
                          list);
  }
  if (o->gop < 0 || o->gop > 100000)
    return reel_error_set(err, REEL_ERANGE, "gop", "must be in 0..100000 (0 = 2 seconds), got %d", o->gop);
  if ((unsigned)o->pix_fmt > REEL_PIX_YUV420P10)
    return reel_error_set(err, REEL_EINVAL, "pix_fmt", "must be yuv420p or yuv420p10le, got #%d", (int)o->pix_fmt);
  if (!(cr->pix_fmts & CBIT(o->pix_fmt)))
    return reel_error_set(err, REEL_EUNSUPPORTED, "pix_fmt", "%s (%s) cannot encode %s", CODEC_NAME(cr->codec),
                          cr->encoder, PIX_NAME(o->pix_fmt));
  if (o->threads < 0 || o->threads > 256)
    return reel_error_set(err, REEL_ERANGE, "threads", "must be in 0..256 (0 = automatic), got %d", o->threads);
  if ((unsigned)o->hw > REEL_HW_REQUIRE)
    return reel_error_set(err, REEL_EINVAL, "hw", "must be auto, off or require, got #%d", (int)o->hw);
  if (o->expected_frames < 0 || o->expected_frames > 10000000)
    return reel_error_set(err, REEL_ERANGE, "expected_frames", "must be in 0..10000000 (0 = unknown), got %d",
                          o->expected_frames);
  if (o->poster) {
    reel_image_format f;
    reel_status st = reel_image_format_from_name(o->poster, "poster", &f, err);
    if (st != REEL_OK) return st;
    if (o->poster_frame < -1 || o->poster_frame > 10000000)
      return reel_error_set(err, REEL_ERANGE, "poster_frame", "must be a frame index or -1 (the middle), got %d",
                            o->poster_frame);
    if (o->poster_frame == -1 && !o->expected_frames)
      return reel_error_set(err, REEL_EINVAL, "poster_frame",
                            "the middle frame (-1) needs expected_frames; give a frame index instead");
    if (o->expected_frames && o->poster_frame >= o->expected_frames)
      return reel_error_set(err, REEL_ERANGE, "poster_frame", "must be below the clip's %d frames, got %d",
                            o->expected_frames, o->poster_frame);
  }
  if (o->preview_anim) {
    reel_anim_format f;
    reel_status st = reel_anim_format_from_name(o->preview_anim, "preview_anim", &f, err);
    if (st != REEL_OK) return st;
    int max_w = o->width < 1920 ? o->width : 1920;
    if (o->preview_width && (o->preview_width < 16 || o->preview_width > max_w))
      return reel_error_set(err, REEL_ERANGE, "preview_width", "must be in 16..%d (0 = %d), got %d", max_w,
                            o->width < 320 ? o->width : 320, o->preview_width);
    if (o->preview_fps < 0 || o->preview_fps > 30)
      return reel_error_set(err, REEL_ERANGE, "preview_fps", "must be in 1..30 (0 = 6), got %d", o->preview_fps);
  }
  reel_container c = resolve_container(o->container, seekable);
  const container_row *ct = find_container(c);
  if (!ct)
    return reel_error_set(err, REEL_EUNSUPPORTED, "container", "'%s' is not available in this build",
                          CONTAINER_NAME(o->container));
  if (!(cr->containers & CBIT(c))) {
    char list[64] = "";
    for (size_t i = 0; i < sizeof codec_table / sizeof codec_table[0]; i++)
      if (codec_table[i].containers & CBIT(c))
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", list[0] ? " or " : "",
                 CODEC_NAME(codec_table[i].codec));
    return reel_error_set(err, REEL_EINVAL, "container", "%s carries only %s, not %s", ct->name, list,
                          CODEC_NAME(cr->codec));
  }
  if (ct->needs_seek && !seekable)
    return reel_error_set(err, REEL_EINVAL, "container", "%s needs an output that can seek; for streaming use fmp4",
                          ct->name);
  return REEL_OK;
}

/* ---- the AVIO bridge to the sink ---- */

static int io_record(struct reel_encoder *e, reel_status st, const reel_error *err) {
  if (e->io_st == REEL_OK) {
    e->io_st = st;
    e->io_err = *err;
  }
  return AVERROR(EIO);
}

/* Moves the sink to `pos` if another AVIOContext left it elsewhere. */
static int io_position(sink_io *io) {
  struct reel_encoder *e = io->enc;
  if (!e->seekable || e->sink_pos == io->pos) return 0;
  reel_error err = {0};
  int64_t got;
  reel_status st = reel_sink_seek(e->sink, io->pos, SEEK_SET, &got, &err);
  if (st != REEL_OK) return io_record(e, st, &err);
  e->sink_pos = got;
  return 0;
}

static int io_write(void *opaque, REEL_AVIO_WBUF buf, int size) {
  sink_io *io = opaque;
  struct reel_encoder *e = io->enc;
  int r = io_position(io);
  if (r < 0) return r;
  reel_error err = {0};
  reel_status st = reel_sink_write(e->sink, buf, (size_t)size, &err);
  if (st != REEL_OK) return io_record(e, st, &err);
  io->pos += size;
  e->sink_pos = io->pos;
  return size;
}

static int io_read(void *opaque, uint8_t *buf, int size) {
  sink_io *io = opaque;
  struct reel_encoder *e = io->enc;
  int r = io_position(io);
  if (r < 0) return r;
  reel_error err = {0};
  size_t got = 0;
  reel_status st = reel_sink_read(e->sink, buf, (size_t)size, &got, &err);
  if (st != REEL_OK) return io_record(e, st, &err);
  io->pos += (int64_t)got;
  e->sink_pos = io->pos;
  return got ? (int)got : AVERROR_EOF;
}

static int64_t io_seek(void *opaque, int64_t offset, int whence) {
  sink_io *io = opaque;
  struct reel_encoder *e = io->enc;
  reel_error err = {0};
  int64_t pos;
  reel_status st;
  whence &= ~AVSEEK_FORCE;
  if (whence == AVSEEK_SIZE) {
    st = reel_sink_seek(e->sink, 0, SEEK_END, &pos, &err);
    if (st != REEL_OK) return io_record(e, st, &err);
    e->sink_pos = pos;
    return pos;
  }
  if (whence == SEEK_CUR) {
    offset += io->pos;
    whence = SEEK_SET;
  }
  if (whence != SEEK_SET && whence != SEEK_END) return AVERROR(EINVAL);
  st = reel_sink_seek(e->sink, offset, whence, &pos, &err);
  if (st == REEL_EINVAL) return AVERROR(EINVAL);
  if (st != REEL_OK) return io_record(e, st, &err);
  e->sink_pos = pos;
  io->pos = pos;
  return pos;
}

/* The mov muxer's faststart pass re-opens "the output" for reading: give it a reader on the sink. */
static int io_open(AVFormatContext *s, AVIOContext **pb, const char *url, int flags, AVDictionary **options) {
  (void)url;
  (void)options;
  reel__av_owner *o = s->opaque;
  if (!o || o->magic != REEL__AV_OWNER_MAGIC || (flags & AVIO_FLAG_WRITE)) return AVERROR(EPERM);
  struct reel_encoder *e = (struct reel_encoder *)o;
  if (!e->seekable) return AVERROR(ENOSYS);
  sink_io *rio = av_mallocz(sizeof *rio);
  uint8_t *buf = av_malloc(READ_BUF_SIZE);
  AVIOContext *ctx = rio && buf ? avio_alloc_context(buf, READ_BUF_SIZE, 0, rio, io_read, NULL, io_seek) : NULL;
  if (!ctx) {
    av_free(buf);
    av_free(rio);
    return AVERROR(ENOMEM);
  }
  rio->enc = e;
  rio->pos = 0;
  *pb = ctx;
  return 0;
}

static int io_close2(AVFormatContext *s, AVIOContext *pb) {
  (void)s;
  if (!pb) return 0;
  av_free(pb->opaque);
  av_freep(&pb->buffer);
  avio_context_free(&pb);
  return 0;
}

/* A muxing failure: the sink's own error when it caused it, FFmpeg's otherwise. */
static reel_status mux_fail(struct reel_encoder *e, int averr, const char *what, reel_error *err) {
  if (e->io_st != REEL_OK) {
    if (err && err->code == REEL_OK) *err = e->io_err;
    return e->io_st;
  }
  return reel__av_fail(err, "container", averr, what);
}

/* ---- encoding ---- */

static reel_status drain(struct reel_encoder *e, reel_error *err) {
  for (;;) {
    int r = avcodec_receive_packet(e->cc, e->pkt);
    if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return REEL_OK;
    if (r < 0) return reel__av_fail(err, "codec", r, "encoding");
    av_packet_rescale_ts(e->pkt, e->cc->time_base, e->st->time_base);
    e->pkt->stream_index = e->st->index;
    e->packets++;
    e->packet_bytes += (uint64_t)e->pkt->size;
    r = av_interleaved_write_frame(e->fmt, e->pkt); /* takes the packet's reference */
    if (r < 0) return mux_fail(e, r, "writing a packet", err);
  }
}

/* Sends a frame (NULL = flush) and muxes every packet that becomes ready. */
static reel_status enc_send(struct reel_encoder *e, AVFrame *frame, reel_error *err) {
  int r = avcodec_send_frame(e->cc, frame);
  if (r == AVERROR(EAGAIN)) {
    /* Output is pending: take it, then the encoder must accept the frame. */
    reel_status st = drain(e, err);
    if (st != REEL_OK) return st;
    r = avcodec_send_frame(e->cc, frame);
  }
  if (r < 0) return reel__av_fail(err, "codec", r, frame ? "sending a frame" : "flushing");
  return drain(e, err);
}

/* Takes a filled e->frame: stamps it, encodes it, muxes what comes out. t0 is when conversion began. */
static reel_status encode_frame(struct reel_encoder *e, int64_t t0, reel_error *err) {
  e->frame->pts = e->frames;
  int64_t t1 = reel_now_ns();
  e->convert_ns += t1 - t0;
  reel_status st = enc_send(e, e->frame, err);
  e->encode_ns += reel_now_ns() - t1;
  if (st == REEL_OK) e->frames++;
  return st;
}

/* Whether the side outputs want the frame about to be pushed. */
static int side_wants(const struct reel_encoder *e) {
  return reel_anim_wants_next(e->anim) || (e->poster_url && e->frames <= e->poster_index);
}

/* Hands the frame about to be encoded (8-bit RGB) to the poster and the preview. */
static reel_status side_frame(struct reel_encoder *e, const uint8_t *rgb, size_t stride, reel_error *err) {
  if (e->poster_url && e->frames <= e->poster_index) {
    size_t row = (size_t)e->width * 3;
    for (int y = 0; y < e->height; y++) memcpy(e->poster_rgb + (size_t)y * row, rgb + (size_t)y * stride, row);
    e->poster_have = e->frames;
  }
  if (e->anim) return reel_anim_push_rgb(e->anim, rgb, stride, err);
  return REEL_OK;
}

static reel_status encode_rgb(struct reel_encoder *e, const uint8_t *rgb, int stride, reel_error *err) {
  int64_t t0 = reel_now_ns();
  int r = av_frame_make_writable(e->frame);
  if (r < 0) return reel__av_fail(err, "frame", r, "getting a frame buffer");
  AVFrame *f = e->frame;
  if (e->pix == REEL_PIX_YUV420P10)
    reel__rgb24_to_yuv420p10_bt709(rgb, (size_t)stride, e->width, e->height, (uint16_t *)f->data[0],
                                   (size_t)f->linesize[0], (uint16_t *)f->data[1], (size_t)f->linesize[1],
                                   (uint16_t *)f->data[2], (size_t)f->linesize[2]);
  else
    reel__rgb24_to_yuv420p_bt709(rgb, (size_t)stride, e->width, e->height, f->data[0], (size_t)f->linesize[0],
                                 f->data[1], (size_t)f->linesize[1], f->data[2], (size_t)f->linesize[2]);
  return encode_frame(e, t0, err);
}

static reel_status check_push(struct reel_encoder *e, const void *rgb, size_t stride, size_t min_stride,
                              reel_error *err) {
  if (!e) return reel_error_set(err, REEL_EINVAL, "encoder", "must not be NULL");
  if (e->state != ENC_OPEN)
    return reel_error_set(err, REEL_ESTATE, "encoder",
                          e->state == ENC_FINISHED ? "already finished" : "a previous call failed");
  if (!rgb) return reel_error_set(err, REEL_EINVAL, "rgb", "must not be NULL");
  if (stride < min_stride || stride > (size_t)INT_MAX / 4)
    return reel_error_set(err, REEL_EINVAL, "stride", "must be at least %zu (width * 3), got %zu", min_stride, stride);
  return REEL_OK;
}

reel_status reel_encoder_push_rgb(reel_encoder *e, const uint8_t *rgb, size_t stride, reel_error *err) {
  reel_status st = check_push(e, rgb, stride, e ? (size_t)e->width * 3 : 0, err);
  if (st != REEL_OK) return st;
  st = side_frame(e, rgb, stride, err);
  if (st == REEL_OK) st = encode_rgb(e, rgb, (int)stride, err);
  if (st != REEL_OK) e->state = ENC_FAILED;
  return st;
}

/* REEL_ENONFINITE naming the first NaN or Inf, REEL_OK when every value is finite. */
static reel_status check_finite(struct reel_encoder *e, const float *rgb, size_t stride, reel_error *err) {
  size_t row = (size_t)e->width * 3;
  for (int y = 0; y < e->height; y++) {
    const float *s = rgb + (size_t)y * stride;
    for (size_t i = 0; i < row; i++)
      if (!isfinite(s[i]))
        return reel_error_set(err, REEL_ENONFINITE, "rgb", "frame %lld pixel (%zu, %d) channel %zu is %s",
                              (long long)e->frames, i / 3, y, i % 3, isnan(s[i]) ? "NaN" : "infinite");
  }
  return REEL_OK;
}

reel_status reel_encoder_push_rgbf(reel_encoder *e, const float *rgb, size_t stride, reel_error *err) {
  reel_status st = check_push(e, rgb, stride, e ? (size_t)e->width * 3 : 0, err);
  if (st != REEL_OK) return st;
  if ((st = check_finite(e, rgb, stride, err))) goto fail;
  size_t row = (size_t)e->width * 3;
  int stage = e->pix != REEL_PIX_YUV420P10 || side_wants(e);
  if (stage && !e->rgb_tmp) {
    e->rgb_tmp = reel_malloc(row * (size_t)e->height);
    if (!e->rgb_tmp) {
      st = reel_error_set(err, REEL_ENOMEM, "frame", "no memory for a %dx%d staging frame", e->width, e->height);
      goto fail;
    }
  }
  if (stage) {
    for (int y = 0; y < e->height; y++) {
      const float *s = rgb + (size_t)y * stride;
      uint8_t *d = e->rgb_tmp + (size_t)y * row;
      for (size_t i = 0; i < row; i++) {
        float v = s[i] * 255.0f + 0.5f;
        d[i] = v <= 0.0f ? 0 : v >= 255.0f ? 255 : (uint8_t)v;
      }
    }
    if ((st = side_frame(e, e->rgb_tmp, row, err))) goto fail;
  } else {
    reel_anim_skip(e->anim);
  }
  if (e->pix == REEL_PIX_YUV420P10) {
    /* Straight from float: 10 bits keep what a detour through 8-bit RGB would drop. */
    int64_t t0 = reel_now_ns();
    int r = av_frame_make_writable(e->frame);
    if (r < 0) {
      st = reel__av_fail(err, "frame", r, "getting a frame buffer");
      goto fail;
    }
    AVFrame *f = e->frame;
    reel__rgbf_to_yuv420p10_bt709(rgb, stride, e->width, e->height, (uint16_t *)f->data[0], (size_t)f->linesize[0],
                                  (uint16_t *)f->data[1], (size_t)f->linesize[1], (uint16_t *)f->data[2],
                                  (size_t)f->linesize[2]);
    st = encode_frame(e, t0, err);
    if (st != REEL_OK) goto fail;
    return REEL_OK;
  }
  st = encode_rgb(e, e->rgb_tmp, (int)row, err);
  if (st != REEL_OK) goto fail;
  return REEL_OK;
fail:
  e->state = ENC_FAILED;
  return st;
}

/* ---- frames on a compute backend ---- */

/* rgb as [1, 3, H, W]: a [3, H, W] tensor gets a leading dim of 1. REEL_EINVAL naming "rgb" when it does not fit. */
static reel_status frame_view(const struct reel_encoder *e, const reel_tensor *rgb, reel_tensor *v, reel_error *err) {
  char shape[96];
  if (!reel_dtype_is_float(rgb->dtype))
    return reel_error_set(err, REEL_EINVAL, "rgb", "must be f32, f16 or bf16, got %s", reel_dtype_name(rgb->dtype));
  *v = *rgb;
  if (rgb->ndim == 3) {
    v->ndim = 4;
    for (int d = 3; d > 0; d--) {
      v->shape[d] = rgb->shape[d - 1];
      v->stride[d] = rgb->stride[d - 1];
    }
    v->shape[0] = 1;
    v->stride[0] = 0;
  }
  if (v->ndim != 4 || v->shape[0] != 1 || v->shape[1] != 3 || v->shape[2] != e->height || v->shape[3] != e->width)
    return reel_error_set(err, REEL_EINVAL, "rgb", "must be [3, %d, %d] or [1, 3, %d, %d], got %s", e->height, e->width,
                          e->height, e->width, reel_tensor_shape_str(rgb, shape, sizeof shape));
  return REEL_OK;
}

/* The frame as 8-bit interleaved RGB in e->rgb_tmp, for the poster and the preview. */
static reel_status tensor_to_rgb8(struct reel_encoder *e, const reel_tensor *v, float lo, float hi, reel_error *err) {
  size_t plane = (size_t)e->width * (size_t)e->height;
  reel_status st;
  if (!e->rgb_dev.buf) {
    const int64_t shape[4] = {1, 3, e->height, e->width};
    if ((st = reel_tensor_new(e->backend, REEL_F32, 4, shape, &e->rgb_dev, err))) return st;
  }
  if (!e->rgb_host && !(e->rgb_host = reel_malloc(plane * 3 * sizeof(float))))
    return reel_error_set(err, REEL_ENOMEM, "frame", "no memory for a %dx%d frame", e->width, e->height);
  if (!e->rgb_tmp && !(e->rgb_tmp = reel_malloc(plane * 3)))
    return reel_error_set(err, REEL_ENOMEM, "frame", "no memory for a %dx%d frame", e->width, e->height);
  if ((st = reel_op_copy(e->backend, v, &e->rgb_dev, err)) ||
      (st = reel_tensor_download(&e->rgb_dev, e->rgb_host, plane * 3 * sizeof(float), err)))
    return st;
  const float scale = 255.0f / (hi - lo);
  for (size_t i = 0; i < plane; i++)
    for (int c = 0; c < 3; c++) {
      float x = (e->rgb_host[(size_t)c * plane + i] - lo) * scale + 0.5f;
      e->rgb_tmp[3 * i + c] = x >= 0.0f && x < 255.0f ? (uint8_t)x : x >= 255.0f ? 255 : 0; /* NaN to 0 */
    }
  return REEL_OK;
}

/* Converts on the backend into staging planes, downloads them and encodes from e->frame. */
static reel_status encode_tensor_staged(struct reel_encoder *e, const reel_tensor *v, float lo, float hi,
                                        reel_error *err) {
  int64_t t0 = reel_now_ns();
  reel_status st;
  const int wide = e->pix == REEL_PIX_YUV420P10;
  const size_t es = wide ? 2 : 1, w = (size_t)e->width, h = (size_t)e->height;
  const size_t bytes[3] = {w * h * es, w / 2 * (h / 2) * es, w / 2 * (h / 2) * es};
  if (!e->yuv_dev[0].buf) {
    const int64_t ys[3] = {1, e->height, e->width}, cs[3] = {1, e->height / 2, e->width / 2};
    for (int p = 0; p < 3; p++)
      if ((st = reel_tensor_new(e->backend, wide ? REEL_U16 : REEL_U8, 3, p ? cs : ys, &e->yuv_dev[p], err))) return st;
    if (!(e->yuv_host = reel_malloc(bytes[0] + bytes[1] + bytes[2])))
      return reel_error_set(err, REEL_ENOMEM, "frame", "no memory for a %dx%d frame", e->width, e->height);
  }
  if ((st = reel_op_rgb_to_yuv420(e->backend, v, lo, hi, &e->yuv_dev[0], &e->yuv_dev[1], &e->yuv_dev[2], err)))
    return st;
  int r = av_frame_make_writable(e->frame);
  if (r < 0) return reel__av_fail(err, "frame", r, "getting a frame buffer");
  uint8_t *at = e->yuv_host;
  for (int p = 0; p < 3; p++) {
    if ((st = reel_tensor_download(&e->yuv_dev[p], at, bytes[p], err))) return st;
    size_t rows = p ? h / 2 : h, row = (p ? w / 2 : w) * es;
    for (size_t y = 0; y < rows; y++) memcpy(e->frame->data[p] + y * (size_t)e->frame->linesize[p], at + y * row, row);
    at += bytes[p];
  }
  return encode_frame(e, t0, err);
}

/*
 * NVENC with a CUDA frame pool: the conversion writes NV12 straight into a pool
 * frame (Y plane; U and V interleaved in the second), which is then sent as is.
 * The backend is synchronised before sending: the conversion is short next to
 * the encode, and the frame is then complete whatever stream NVENC reads it on.
 */
static reel_status encode_tensor_hw(struct reel_encoder *e, const reel_tensor *v, float lo, float hi, reel_error *err) {
  int64_t t0 = reel_now_ns();
  AVFrame *f = e->hw_frame;
  av_frame_unref(f);
  int r = av_hwframe_get_buffer(e->hw_frames, f, 0);
  if (r < 0) {
    /* The fixed pool is empty while NVENC holds frames: take its output, then try again. */
    reel_status st = drain(e, err);
    if (st != REEL_OK) return st;
    r = av_hwframe_get_buffer(e->hw_frames, f, 0);
  }
  if (r < 0) return reel__av_fail(err, "hw", r, "taking a frame from the CUDA frame pool");
  reel_buffer *yb = NULL, *cb = NULL;
  const int64_t h = e->height, w = e->width, ly = f->linesize[0], lc = f->linesize[1];
  reel_status st = reel_buffer_wrap_device(e->backend, f->data[0], (size_t)(ly * h), &yb, err);
  if (st == REEL_OK) st = reel_buffer_wrap_device(e->backend, f->data[1], (size_t)(lc * (h / 2)), &cb, err);
  if (st == REEL_OK) {
    const int64_t ys[3] = {1, h, w}, cs[3] = {1, h / 2, w / 2};
    reel_tensor ty, tu, tv;
    st = reel_tensor_init(&ty, REEL_U8, 3, ys, yb, 0, err);
    if (st == REEL_OK) st = reel_tensor_init(&tu, REEL_U8, 3, cs, cb, 0, err);
    if (st == REEL_OK) st = reel_tensor_init(&tv, REEL_U8, 3, cs, cb, 1, err);
    if (st == REEL_OK) {
      ty.stride[0] = ly * h;
      ty.stride[1] = ly;
      tu.stride[0] = tv.stride[0] = lc * (h / 2);
      tu.stride[1] = tv.stride[1] = lc;
      tu.stride[2] = tv.stride[2] = 2;
      st = reel_op_rgb_to_yuv420(e->backend, v, lo, hi, &ty, &tu, &tv, err);
    }
    if (st == REEL_OK) st = reel_backend_synchronize(e->backend, err);
  }
  reel_buffer_destroy(&yb);
  reel_buffer_destroy(&cb);
  if (st != REEL_OK) return st;
  f->color_primaries = AVCOL_PRI_BT709;
  f->color_trc = AVCOL_TRC_BT709;
  f->colorspace = AVCOL_SPC_BT709;
  f->color_range = AVCOL_RANGE_MPEG;
  f->chroma_location = AVCHROMA_LOC_CENTER;
  f->pts = e->frames;
  int64_t t1 = reel_now_ns();
  e->convert_ns += t1 - t0;
  st = enc_send(e, f, err);
  e->encode_ns += reel_now_ns() - t1;
  if (st == REEL_OK) e->frames++;
  return st;
}

reel_status reel_encoder_push_tensor(reel_encoder *e, const reel_tensor *rgb, float lo, float hi, reel_error *err) {
  if (!e) return reel_error_set(err, REEL_EINVAL, "encoder", "must not be NULL");
  if (e->state != ENC_OPEN)
    return reel_error_set(err, REEL_ESTATE, "encoder",
                          e->state == ENC_FINISHED ? "already finished" : "a previous call failed");
  if (!e->backend)
    return reel_error_set(err, REEL_EINVAL, "backend", "the session has no backend (options.backend) for tensors");
  if (!rgb || !rgb->buf) return reel_error_set(err, REEL_EINVAL, "rgb", "must be a tensor with a buffer");
  if (reel_buffer_backend(rgb->buf) != e->backend)
    return reel_error_set(err, REEL_EINVAL, "backend", "the tensor lives on %s, the session's backend is %s",
                          reel_backend_name(reel_buffer_backend(rgb->buf)), reel_backend_name(e->backend));
  if (!isfinite(lo) || !isfinite(hi) || !(lo < hi))
    return reel_error_set(err, REEL_EINVAL, "lo", "need finite lo < hi, got %g and %g", lo, hi);
  reel_tensor v;
  reel_status st = frame_view(e, rgb, &v, err);
  if (st != REEL_OK) return st;
  if (side_wants(e)) {
    st = tensor_to_rgb8(e, &v, lo, hi, err);
    if (st == REEL_OK) st = side_frame(e, e->rgb_tmp, (size_t)e->width * 3, err);
  } else {
    reel_anim_skip(e->anim);
  }
  if (st == REEL_OK)
    st = e->hw_frames ? encode_tensor_hw(e, &v, lo, hi, err) : encode_tensor_staged(e, &v, lo, hi, err);
  if (st != REEL_OK) e->state = ENC_FAILED;
  return st;
}

reel_status reel_encoder_push_cuda_rgbf(reel_encoder *e, const void *device_rgb, size_t pitch, reel_error *err) {
  if (!e) return reel_error_set(err, REEL_EINVAL, "encoder", "must not be NULL");
  if (!e->backend || reel_backend_get_kind(e->backend) != REEL_BACKEND_CUDA)
    return reel_error_set(err, REEL_EUNSUPPORTED, "backend", "device frames need a CUDA backend (options.backend)");
  if (!device_rgb) return reel_error_set(err, REEL_EINVAL, "rgb", "must not be NULL");
  if (pitch % 4 || pitch < (size_t)e->width * 12 || pitch > (size_t)1 << 32)
    return reel_error_set(err, REEL_EINVAL, "pitch", "must be a multiple of 4 and at least %zu (width * 12), got %zu",
                          (size_t)e->width * 12, pitch);
  reel_buffer *buf = NULL;
  reel_status st =
      reel_buffer_wrap_device(e->backend, (void *)(uintptr_t)device_rgb, pitch * (size_t)e->height, &buf, err);
  if (st != REEL_OK) return st;
  /* Interleaved RGB rows as a [1, 3, H, W] view: channel stride 1, pixel stride 3. */
  const int64_t shape[4] = {1, 3, e->height, e->width};
  reel_tensor t;
  st = reel_tensor_init(&t, REEL_F32, 4, shape, buf, 0, err);
  if (st == REEL_OK) {
    t.stride[0] = 0;
    t.stride[1] = 1;
    t.stride[2] = (int64_t)(pitch / 4);
    t.stride[3] = 3;
    st = reel_encoder_push_tensor(e, &t, 0.0f, 1.0f, err);
  }
  reel_buffer_destroy(&buf);
  return st;
}

/* Names a sink error after the side output it belongs to. */
static void side_field(reel_error *err, const char *field) {
  if (err && (!strcmp(err->field, "url") || !strcmp(err->field, "image")))
    snprintf(err->field, sizeof err->field, "%s", field);
}

/* The poster and the preview, after the clip: each is committed as soon as it is written. */
static reel_status write_side_outputs(struct reel_encoder *e, reel_sink_result *poster, reel_sink_result *preview,
                                      reel_error *err) {
  reel_status st;
  if (e->poster_url) {
    if (e->poster_have < 0) return reel_error_set(err, REEL_EINVAL, "poster", "no frames were encoded");
    if (e->poster_have < e->poster_index)
      reel_log(e->owner.log, REEL_LOG_WARN, "encoder", e->job_id, "poster frame past the end: using the last frame",
               "poster_frame=%lld frames=%lld", (long long)e->poster_index, (long long)e->frames);
    st = reel_image_write_to(e->poster_url, &e->side_opts, e->poster_fmt, e->poster_rgb, e->width, e->height,
                             (size_t)e->width * 3, 0, poster, err);
    if (st != REEL_OK) {
      side_field(err, "poster");
      return st;
    }
  }
  if (e->anim) {
    st = reel_anim_finish(e->anim, preview, err);
    if (st != REEL_OK) {
      side_field(err, "preview_anim");
      return st;
    }
  }
  return REEL_OK;
}

reel_status reel_encoder_finish(reel_encoder *e, reel_encoder_stats *stats, reel_error *err) {
  if (stats) memset(stats, 0, sizeof *stats);
  if (!e) return reel_error_set(err, REEL_EINVAL, "encoder", "must not be NULL");
  if (e->state != ENC_OPEN)
    return reel_error_set(err, REEL_ESTATE, "encoder",
                          e->state == ENC_FINISHED ? "already finished" : "a previous call failed");
  int64_t t0 = reel_now_ns();
  reel_status st = enc_send(e, NULL, err);
  if (st == REEL_OK) {
    int r = av_write_trailer(e->fmt);
    if (r < 0) st = mux_fail(e, r, "writing the trailer", err);
  }
  if (st == REEL_OK) {
    avio_flush(e->pb);
    if (e->pb->error < 0) st = mux_fail(e, e->pb->error, "flushing the output", err);
  }
  e->encode_ns += reel_now_ns() - t0;
  reel_sink_result poster_res, preview_res;
  memset(&poster_res, 0, sizeof poster_res);
  memset(&preview_res, 0, sizeof preview_res);
  if (st == REEL_OK) st = write_side_outputs(e, &poster_res, &preview_res, err);
  if (st != REEL_OK) {
    e->state = ENC_FAILED;
    return st;
  }
  e->state = ENC_FINISHED;
  if (stats) {
    stats->frames = e->frames;
    stats->packets = e->packets;
    stats->packet_bytes = e->packet_bytes;
    stats->convert_seconds = (double)e->convert_ns / 1e9;
    stats->encode_seconds = (double)e->encode_ns / 1e9;
    snprintf(stats->encoder, sizeof stats->encoder, "%s", e->encoder_name);
    stats->hw_frames = e->hw_frames != NULL;
    snprintf(stats->container, sizeof stats->container, "%s", e->container->name);
    snprintf(stats->pix_fmt, sizeof stats->pix_fmt, "%s", PIX_NAME(e->pix));
    stats->poster_frame = e->poster_url ? (int)e->poster_have : -1;
    snprintf(stats->poster_url, sizeof stats->poster_url, "%s", poster_res.url);
    stats->preview_frames = e->anim ? reel_anim_frames(e->anim) : 0;
    snprintf(stats->preview_url, sizeof stats->preview_url, "%s", preview_res.url);
  }
  reel_log(e->owner.log, REEL_LOG_DEBUG, "encoder", e->job_id, "encoding finished",
           "frames=%lld packets=%lld bytes=%llu encoder=%s container=%s", (long long)e->frames, (long long)e->packets,
           (unsigned long long)e->packet_bytes, e->encoder_name, e->container->name);
  return REEL_OK;
}

void reel_encoder_destroy(reel_encoder **ep) {
  if (!ep || !*ep) return;
  reel_encoder *e = *ep;
  *ep = NULL;
  av_frame_free(&e->frame);
  av_packet_free(&e->pkt);
  avcodec_free_context(&e->cc);
  avformat_free_context(e->fmt); /* leaves the custom pb alone */
  if (e->pb) {
    av_freep(&e->pb->buffer);
    avio_context_free(&e->pb);
  }
  reel_free(e->rgb_tmp);
  av_frame_free(&e->hw_frame);
  av_buffer_unref(&e->hw_frames);
  for (int i = 0; i < 3; i++) reel_tensor_free(&e->yuv_dev[i]);
  reel_tensor_free(&e->rgb_dev);
  reel_free(e->yuv_host);
  reel_free(e->rgb_host);
  reel_anim_destroy(&e->anim);
  reel_free(e->poster_url);
  reel_free(e->poster_rgb);
  reel_free(e->job_id);
  reel_free(e);
}

/* What every encoder of the session gets from the options. */
static void configure(struct reel_encoder *e, const reel_encoder_options *o, AVCodecContext *c) {
  c->opaque = &e->owner;
  c->width = o->width;
  c->height = o->height;
  c->pix_fmt = av_pix_fmts[e->pix];
  c->sample_aspect_ratio = (AVRational){1, 1};
  c->time_base = (AVRational){o->fps_den, o->fps_num};
  c->framerate = (AVRational){o->fps_num, o->fps_den};
  c->gop_size = o->gop ? o->gop : (int)fmax(1.0, round(2.0 * o->fps_num / o->fps_den));
  c->thread_count = o->threads;
  c->color_primaries = AVCOL_PRI_BT709;
  c->color_trc = AVCOL_TRC_BT709;
  c->colorspace = AVCOL_SPC_BT709;
  c->color_range = AVCOL_RANGE_MPEG;
  c->chroma_sample_location = e->codec->chroma_loc_in_container ? AVCHROMA_LOC_UNSPECIFIED : AVCHROMA_LOC_CENTER;
  if (e->fmt->oformat->flags & AVFMT_GLOBALHEADER) c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
}

/* Opens c with opts (consumed); an option the encoder did not take is a bug in the tables. */
static reel_status open_codec(AVCodecContext *c, const AVCodec *codec, AVDictionary **opts, reel_error *err) {
  int r = avcodec_open2(c, codec, opts);
  if (r < 0) {
    char what[64];
    snprintf(what, sizeof what, "opening %s", codec->name);
    return reel__av_fail(err, "codec", r, what);
  }
  if (av_dict_count(*opts)) {
    const AVDictionaryEntry *left = av_dict_get(*opts, "", NULL, AV_DICT_IGNORE_SUFFIX);
    return reel_error_set(err, REEL_EINTERNAL, "codec", "%s does not know the option '%s'", codec->name,
                          left ? left->key : "?");
  }
  return REEL_OK;
}

static reel_status open_software(struct reel_encoder *e, const reel_encoder_options *o, char *crf, size_t crf_size,
                                 char *preset, size_t preset_size, reel_error *err) {
  const AVCodec *codec = avcodec_find_encoder_by_name(e->codec->encoder);
  if (!codec)
    return reel_error_set(err, REEL_EUNSUPPORTED, "codec", "encoder %s is not in this FFmpeg build", e->codec->encoder);
  AVDictionary *copts = NULL;
  reel_status st = REEL_OK;
  e->cc = avcodec_alloc_context3(codec);
  if (!e->cc) return reel_error_set(err, REEL_ENOMEM, "encoder", "out of memory");
  AVCodecContext *c = e->cc;
  configure(e, o, c);
  snprintf(preset, preset_size, "%s", o->preset ? o->preset : e->codec->preset_default);
  if (o->bitrate) {
    c->bit_rate = (int64_t)o->bitrate * 1000;
  } else {
    snprintf(crf, crf_size, "%d", o->crf >= 0 ? o->crf : e->codec->crf_default);
    if (e->codec->zero_bitrate_for_crf) c->bit_rate = 0;
  }
  int bad = av_dict_set(&copts, e->codec->preset_option, preset, 0) < 0 ||
            (!o->bitrate && av_dict_set(&copts, "crf", crf, 0) < 0);
  for (const av_opt *x = e->codec->extra; x->key && !bad; x++) bad = av_dict_set(&copts, x->key, x->value, 0) < 0;
#if defined(__x86_64__) || defined(__i386__)
  /*
   * libx264's AVX-512 functions (x264 core 164, Debian 12) read memory they never
   * initialised: identical frames then encode to different bytes from run to run
   * (seen on 48x32 clips; MALLOC_PERTURB_ makes it repeatable). Its AVX2 code is
   * clean, so on AVX-512 machines x264 is held to AVX2 (which they all have).
   */
  if (!bad && !strcmp(e->codec->encoder, "libx264") && __builtin_cpu_supports("avx512f"))
    bad = av_dict_set(&copts, "x264-params", "asm=AVX2", 0) < 0;
#endif
  if (bad)
    st = reel_error_set(err, REEL_ENOMEM, "encoder", "out of memory");
  else
    st = open_codec(c, codec, &copts, err);
  av_dict_free(&copts);
  e->encoder_name = e->codec->encoder;
  return st;
}

/*
 * Tries the codec's NVENC encoder. REEL_OK with e->cc open when it works; REEL_OK
 * with e->cc NULL and the reason in `why` when it does not (no such encoder, no
 * driver, no NVENC on this GPU); an error only when memory runs out. The encoder
 * takes CUDA frames from a pool on the backend's device when push_tensor frames
 * come from a CUDA backend, host YUV frames otherwise.
 */
static reel_status try_nvenc(struct reel_encoder *e, const reel_encoder_options *o, char *why, size_t why_size,
                             reel_error *err) {
  const char *name = e->codec->nvenc;
  if (!name) {
    snprintf(why, why_size, "%s has no NVENC encoder", CODEC_NAME(e->codec->codec));
    return REEL_OK;
  }
  if (e->pix != REEL_PIX_YUV420P) {
    snprintf(why, why_size, "reel uses NVENC for 8-bit output only");
    return REEL_OK;
  }
  const AVCodec *codec = avcodec_find_encoder_by_name(name);
  if (!codec) {
    snprintf(why, why_size, "this FFmpeg has no %s", name);
    return REEL_OK;
  }
  if (!reel__cuda_driver_present()) {
    snprintf(why, why_size, "no CUDA driver (libcuda.so.1)");
    return REEL_OK;
  }
  AVCodecContext *c = avcodec_alloc_context3(codec);
  AVDictionary *opts = NULL;
  reel_status st = REEL_OK;
  if (!c) return reel_error_set(err, REEL_ENOMEM, "encoder", "out of memory");
  configure(e, o, c);
  c->thread_count = 0;
  if (e->backend && reel_backend_get_kind(e->backend) == REEL_BACKEND_CUDA) {
    reel_error herr = {0};
    if (reel__cuda_frames_for_backend(e->backend, e->width, e->height, REEL__HW_POOL_FRAMES, &e->hw_frames, &herr)) {
      snprintf(why, why_size, "no CUDA frame pool on the backend's device: %.100s", herr.msg);
      goto soft;
    }
    c->pix_fmt = AV_PIX_FMT_CUDA;
    if (!(c->hw_frames_ctx = av_buffer_ref(e->hw_frames))) {
      st = reel_error_set(err, REEL_ENOMEM, "encoder", "out of memory");
      goto soft;
    }
  }
  /* Constant quality ("cq" under VBR with no bit-rate target) stands in for crf; same scale, 1..51. */
  char cq[16];
  int q = o->crf >= 0 ? o->crf : e->codec->crf_default;
  snprintf(cq, sizeof cq, "%d", q < 1 ? 1 : q > 51 ? 51 : q);
  c->bit_rate = o->bitrate ? (int64_t)o->bitrate * 1000 : 0;
  if (av_dict_set(&opts, "preset", reel__nvenc_preset(o->preset ? o->preset : e->codec->preset_default), 0) < 0 ||
      av_dict_set(&opts, "rc", "vbr", 0) < 0 || (!o->bitrate && av_dict_set(&opts, "cq", cq, 0) < 0)) {
    st = reel_error_set(err, REEL_ENOMEM, "encoder", "out of memory");
    goto soft;
  }
  e->owner.quiet = 1; /* a machine without NVENC says so loudly; the reason goes to `why` instead */
  int r = avcodec_open2(c, codec, &opts);
  e->owner.quiet = 0;
  if (r < 0) {
    char text[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(r, text, sizeof text);
    snprintf(why, why_size, "%s did not open: %s", name, text);
    goto soft;
  }
  av_dict_free(&opts);
  e->cc = c;
  e->nvenc = 1;
  e->encoder_name = name;
  return REEL_OK;
soft:
  av_dict_free(&opts);
  avcodec_free_context(&c);
  av_buffer_unref(&e->hw_frames);
  return st;
}

/* Poster and preview: the preview's output is opened now, so that a bad URL fails before any encoding. */
static reel_status open_side_outputs(struct reel_encoder *e, const reel_encoder_options *o, reel_error *err) {
  if (o->side_sink_opts) e->side_opts = *o->side_sink_opts;
  if (!e->side_opts.log) e->side_opts.log = o->log;
  e->poster_have = -1;
  if (o->poster) {
    reel_status st = reel_image_format_from_name(o->poster, "poster", &e->poster_fmt, err);
    if (st != REEL_OK) return st;
    e->poster_index = o->poster_frame >= 0 ? o->poster_frame : o->expected_frames / 2;
    e->poster_url = reel_strdup(o->poster);
    e->poster_rgb = reel_malloc((size_t)e->width * (size_t)e->height * 3);
    if (!e->poster_url || !e->poster_rgb) return reel_error_set(err, REEL_ENOMEM, "poster", "out of memory");
  }
  if (o->preview_anim) {
    reel_anim_options ao = {0};
    ao.width = e->width;
    ao.height = e->height;
    ao.fps_num = o->fps_num;
    ao.fps_den = o->fps_den;
    ao.out_width = o->preview_width;
    ao.out_fps = o->preview_fps;
    ao.sink_opts = &e->side_opts;
    ao.log = o->log;
    return reel_anim_open(o->preview_anim, &ao, &e->anim, err);
  }
  return REEL_OK;
}

reel_status reel_encoder_open(const reel_encoder_options *o, reel_sink *sink, reel_encoder **out, reel_error *err) {
  if (!out) return reel_error_set(err, REEL_EINVAL, "out", "must not be NULL");
  *out = NULL;
  if (!sink) return reel_error_set(err, REEL_EINVAL, "sink", "must not be NULL");
  int seekable = reel_sink_seekable(sink);
  reel_status st = reel_encoder_check_options(o, seekable, err);
  if (st != REEL_OK) return st;
  AVDictionary *mopts = NULL;
  char crf[16] = "-", preset[16] = "-";
  int r;
  reel_encoder *e = reel_calloc(1, sizeof *e);
  if (!e) return reel_error_set(err, REEL_ENOMEM, "encoder", "out of memory");
  e->owner.magic = REEL__AV_OWNER_MAGIC;
  e->owner.log = o->log;
  e->owner.module = "encoder";
  if (o->job_id && !(e->job_id = reel_strdup(o->job_id))) {
    st = reel_error_set(err, REEL_ENOMEM, "encoder", "out of memory");
    goto fail;
  }
  e->owner.job_id = e->job_id;
  e->codec = find_codec(o->codec);
  e->container = find_container(resolve_container(o->container, seekable));
  e->width = o->width;
  e->height = o->height;
  e->pix = o->pix_fmt;
  e->backend = o->backend;
  e->encoder_name = e->codec->encoder;
  e->sink = sink;
  e->seekable = seekable;
  e->wio.enc = e;
  if (seekable) {
    /* The muxer writes from wherever the sink is now (normally 0). */
    if ((st = reel_sink_seek(sink, 0, SEEK_CUR, &e->sink_pos, err))) goto fail;
    e->wio.pos = e->sink_pos;
  }

  r = avformat_alloc_output_context2(&e->fmt, NULL, e->container->muxer, NULL);
  if (r < 0 || !e->fmt) {
    st = reel__av_fail(err, "container", r < 0 ? r : AVERROR(ENOMEM), "creating the muxer");
    goto fail;
  }
  e->fmt->opaque = &e->owner;
  e->fmt->io_open = io_open;
  e->fmt->io_close2 = io_close2;
  av_freep(&e->fmt->url);
  e->fmt->url = av_strdup(reel_sink_url(sink));
  uint8_t *iobuf = av_malloc(IO_BUF_SIZE);
  if (iobuf) e->pb = avio_alloc_context(iobuf, IO_BUF_SIZE, 1, &e->wio, NULL, io_write, seekable ? io_seek : NULL);
  if (!e->fmt->url || !e->pb) {
    if (!e->pb) av_free(iobuf);
    st = reel_error_set(err, REEL_ENOMEM, "encoder", "out of memory");
    goto fail;
  }
  e->fmt->pb = e->pb;

  e->st = avformat_new_stream(e->fmt, NULL);
  e->frame = av_frame_alloc();
  e->pkt = av_packet_alloc();
  if (!e->st || !e->frame || !e->pkt) {
    st = reel_error_set(err, REEL_ENOMEM, "encoder", "out of memory");
    goto fail;
  }
  char why[160] = "";
  if (o->hw != REEL_HW_OFF && (st = try_nvenc(e, o, why, sizeof why, err))) goto fail;
  if (!e->cc && o->hw == REEL_HW_REQUIRE) {
    st = reel_error_set(err, REEL_EUNSUPPORTED, "hw", "NVENC was required, but %s", why);
    goto fail;
  }
  if (!e->cc && (st = open_software(e, o, crf, sizeof crf, preset, sizeof preset, err))) goto fail;
  AVCodecContext *c = e->cc;
  /* Quotes in the reason would end the quoted field early. */
  for (char *q = why; *q; q++)
    if (*q == '"') *q = '\'';
  reel_log(o->log, REEL_LOG_INFO, "encoder", e->job_id, "encoder chosen",
           "encoder=%s hw_frames=%d why_not_nvenc=\"%s\"", e->encoder_name, e->hw_frames != NULL,
           why[0] ? why : (e->nvenc ? "-" : "hw=off"));
  r = avcodec_parameters_from_context(e->st->codecpar, c);
  if (r < 0) {
    st = reel__av_fail(err, "codec", r, "copying codec parameters");
    goto fail;
  }
  if (e->codec->mp4_tag && !strcmp(e->container->muxer, "mp4")) e->st->codecpar->codec_tag = e->codec->mp4_tag;
  e->st->codecpar->chroma_location = AVCHROMA_LOC_CENTER; /* Matroska/WebM write it down */
  e->st->time_base = c->time_base;
  e->st->avg_frame_rate = c->framerate;
  e->st->sample_aspect_ratio = c->sample_aspect_ratio;

  if (e->container->movflags && av_dict_set(&mopts, "movflags", e->container->movflags, 0) < 0) {
    st = reel_error_set(err, REEL_ENOMEM, "encoder", "out of memory");
    goto fail;
  }
  r = avformat_write_header(e->fmt, &mopts);
  if (r < 0) {
    st = mux_fail(e, r, "writing the header", err);
    goto fail;
  }

  e->frame->format = av_pix_fmts[e->pix]; /* host frames: also what NVENC takes without a frame pool */
  e->frame->width = o->width;
  e->frame->height = o->height;
  e->frame->color_primaries = c->color_primaries;
  e->frame->color_trc = c->color_trc;
  e->frame->colorspace = c->colorspace;
  e->frame->color_range = c->color_range;
  e->frame->chroma_location = AVCHROMA_LOC_CENTER;
  r = av_frame_get_buffer(e->frame, 0);
  if (r < 0) {
    st = reel__av_fail(err, "frame", r, "allocating a frame");
    goto fail;
  }
  if (e->hw_frames && !(e->hw_frame = av_frame_alloc())) {
    st = reel_error_set(err, REEL_ENOMEM, "encoder", "out of memory");
    goto fail;
  }
  if ((st = open_side_outputs(e, o, err))) goto fail;
  av_dict_free(&mopts);
  reel_log(o->log, REEL_LOG_DEBUG, "encoder", e->job_id, "encoder opened",
           "encoder=%s container=%s width=%d height=%d fps=%d/%d pix_fmt=%s crf=%s bitrate=%d preset=%s gop=%d url=%s",
           e->encoder_name, e->container->name, o->width, o->height, o->fps_num, o->fps_den, PIX_NAME(e->pix), crf,
           o->bitrate, preset, c->gop_size, reel_sink_url(sink));
  *out = e;
  return REEL_OK;
fail:
  av_dict_free(&mopts);
  reel_encoder_destroy(&e);
  return st;
}

reel_status reel_fps_to_fraction(double fps, int *num, int *den) {
  if (!isfinite(fps) || fps <= 0.0 || fps > 1000.0) return REEL_ERANGE;
  double r = round(fps);
  if (r >= 1.0 && fabs(fps - r) < 1e-6) {
    *num = (int)r;
    *den = 1;
    return REEL_OK;
  }
  double n = round(fps * 1.001);
  if (n >= 1.0 && fabs(fps - n * 1000.0 / 1001.0) < 5e-4) {
    *num = (int)n * 1000;
    *den = 1001;
    return REEL_OK;
  }
  int best_n = 1, best_d = 1;
  double best = INFINITY;
  for (int d = 1; d <= 1001; d++) {
    double k = round(fps * d);
    if (k < 1.0) continue;
    double e = fabs(k / d - fps);
    if (e < best - 1e-12) {
      best = e;
      best_n = (int)k;
      best_d = d;
    }
  }
  *num = best_n;
  *den = best_d;
  return REEL_OK;
}
