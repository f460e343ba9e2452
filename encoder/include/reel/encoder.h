/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Video encoding and decoding through FFmpeg, behind reel's own types (no
 * FFmpeg header appears here).
 *
 * An encoding session takes frames (8-bit RGB24, or float RGB in [0, 1]) in host
 * memory, converts them to 4:2:0 YUV (BT.709, limited range, tagged as such; 8 or
 * 10 bits), encodes them and muxes the packets into a container that is written
 * through a reel_sink as it is produced. A seekable sink gets a regular MP4 with
 * the index moved to the front (faststart); a streaming sink gets fragmented MP4.
 *
 * NVENC: with hw = REEL_HW_AUTO (the default) H.264 and HEVC go to h264_nvenc /
 * hevc_nvenc when this FFmpeg has them, a CUDA driver is present and the
 * encoder opens on the GPU (8-bit output; NVENC's p1..p7 from the preset's
 * speed, its constant-quality level from crf); otherwise the software encoder
 * below runs, and the choice is logged. H100/H200/A100 have no NVENC: there the
 * software encoder is the path, fed from the GPU by reel_encoder_push_tensor.
 *
 *   codec  encoder      crf (default)  presets (default)                containers
 *   h264   libx264      0..51 (23)     ultrafast..placebo (medium)      mp4 fmp4 mkv
 *   hevc   libx265      0..51 (28)     ultrafast..placebo (medium)      mp4 fmp4 mkv   (tagged hvc1 in MP4)
 *   av1    libsvtav1    1..63 (35)     0..13 (8), 64x64 pixels at least mp4 fmp4 mkv webm
 *   vp9    libvpx-vp9   0..63 (31)     0..8 = cpu-used (4)              mp4 fmp4 mkv webm
 *
 *   reel_encoder_options o;
 *   reel_encoder_options_init(&o);
 *   o.width = 320; o.height = 240; o.fps_num = 24; o.fps_den = 1;
 *   reel_encoder *enc;
 *   if (reel_encoder_open(&o, sink, &enc, err)) ...;           // writes the header
 *   for each frame: reel_encoder_push_rgb(enc, rgb, 320 * 3, err);
 *   reel_encoder_finish(enc, &stats, err);                       // flush + trailer
 *   reel_encoder_destroy(&enc);
 *   reel_sink_close(&sink, &res, err);                           // commit
 *
 * The encoder borrows the sink: the caller commits it after a successful finish
 * and aborts it otherwise. After any failed call the session only accepts
 * destroy. A session is used by one thread at a time.
 */
#ifndef REEL_ENCODER_H
#define REEL_ENCODER_H

#include <stddef.h>
#include <stdint.h>

#include "reel/jobspec.h"
#include "reel/log.h"
#include "reel/sink.h"
#include "reel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct reel_encoder reel_encoder;

struct reel_backend; /* reel/backend.h */
struct reel_tensor;  /* reel/tensor.h */

/* Pixel format of the encoded video (both 4:2:0, BT.709 limited range). */
typedef enum { REEL_PIX_YUV420P = 0, REEL_PIX_YUV420P10 } reel_pix_fmt;
/* "yuv420p", "yuv420p10le" (FFmpeg's names), indexed by reel_pix_fmt, NULL-terminated. */
extern const char *const reel_pix_fmt_names[];

/* Hardware encoding (NVENC). */
typedef enum {
  REEL_HW_AUTO = 0, /* NVENC when it can be opened, else the software encoder */
  REEL_HW_OFF,      /* software only */
  REEL_HW_REQUIRE   /* NVENC or REEL_EUNSUPPORTED naming "hw" (with the reason) */
} reel_encoder_hw;

typedef struct reel_encoder_options {
  reel_codec codec;         /* REEL_CODEC_H264 (default), _HEVC, _AV1, _VP9; see the table above */
  reel_container container; /* AUTO: MP4 when the sink can seek, fragmented MP4 otherwise */
  int width, height;        /* pixels, even, 16..8192 (AV1: 64..8192) */
  int fps_num, fps_den;     /* frame rate as a fraction (24/1, 30000/1001), each 1..1000000, rate <= 1000 */
  int crf;                  /* constant rate factor; -1 = the codec's default (unless bitrate is set) */
  int bitrate;              /* average bit rate in kbit/s, 1..1000000, instead of crf; 0 = use crf */
  const char *preset;       /* encoder preset; NULL = the codec's default; borrowed */
  int gop;                  /* frames between keyframes; 0 = about 2 seconds */
  reel_pix_fmt pix_fmt;     /* REEL_PIX_YUV420P (default) or REEL_PIX_YUV420P10 */
  int threads;              /* encoder threads; 0 = automatic */
  reel_encoder_hw hw;       /* REEL_HW_AUTO (default), _OFF or _REQUIRE */
  /*
   * The backend whose tensors reel_encoder_push_tensor takes (frames stay on a
   * CUDA device until they are converted there; with NVENC they never leave it);
   * NULL = host frames only. Borrowed: it must outlive the session, and the
   * session uses it from the caller's thread only.
   */
  struct reel_backend *backend;
  const reel_logger *log;   /* may be NULL; borrowed */
  const char *job_id;       /* for log records; may be NULL; borrowed */
  /* Side outputs, written by reel_encoder_finish (see reel/image.h). */
  const char *poster;       /* poster image URL or path (.png, .jpg, .jpeg); NULL = none; borrowed */
  int poster_frame;         /* its frame, 0-based; -1 (default) = the middle one, frame expected_frames / 2;
                               past the last frame pushed = the last one */
  const char *preview_anim; /* animated preview URL or path (.webp, .gif); NULL = none; borrowed */
  int preview_width;        /* 16..1920, at most width; 0 = min(320, width) */
  int preview_fps;          /* 1..30; 0 = 6 */
  int expected_frames;      /* frames the caller will push (for the middle poster); 0 = unknown */
  const reel_sink_options *side_sink_opts; /* for the poster and preview; NULL = defaults; borrowed */
} reel_encoder_options;

/* Figures about a finished session. */
typedef struct reel_encoder_stats {
  int64_t frames;         /* frames pushed */
  int64_t packets;        /* compressed packets muxed */
  uint64_t packet_bytes;  /* compressed video bytes (without container overhead) */
  double convert_seconds; /* time in colour conversion */
  double encode_seconds;  /* time in the encoder and muxer, flush and trailer included */
  char encoder[32];       /* libavcodec encoder used ("libx264", "h264_nvenc") */
  int hw_frames;          /* NVENC took its frames from the GPU (a CUDA frame pool) */
  char container[16];     /* container written ("mp4", "fmp4", "mkv", "webm") */
  char pix_fmt[16];       /* "yuv420p", "yuv420p10le" */
  int poster_frame;       /* frame the poster shows; -1 when none was asked for */
  char poster_url[1024];  /* canonical URL of the committed poster; "" when none */
  int preview_frames;     /* frames in the animated preview; 0 when none */
  char preview_url[1024]; /* canonical URL of the committed preview; "" when none */
} reel_encoder_stats;

/*
 * Defaults: H.264, container AUTO, crf -1, yuv420p, poster_frame -1, everything
 * else 0/NULL (width, height and fps must be set).
 */
void reel_encoder_options_init(reel_encoder_options *o);

/*
 * Checks options without opening anything; `seekable` says whether the sink
 * can seek (for the container choice). Errors name the field ("width", "crf",
 * "bitrate", "preset", "container", "pix_fmt", "poster", "poster_frame",
 * "preview_anim", "preview_width", "preview_fps") and the limit; a container that
 * cannot carry the codec (H.264 in WebM) is REEL_EINVAL on "container".
 */
reel_status reel_encoder_check_options(const reel_encoder_options *o, int seekable, reel_error *err);

/*
 * Opens an encoding session writing to `sink` (borrowed; must outlive the
 * session) and writes the container header. On failure *out is NULL and nothing
 * needs freeing; the sink may hold a partial header and should be aborted.
 */
reel_status reel_encoder_open(const reel_encoder_options *opts, reel_sink *sink, reel_encoder **out /* OUT: */,
                              reel_error *err);

/* Encodes one frame of width x height RGB24 pixels; `stride` is bytes per row (>= width * 3). */
reel_status reel_encoder_push_rgb(reel_encoder *enc, const uint8_t *rgb, size_t stride, reel_error *err);

/*
 * As reel_encoder_push_rgb for interleaved float RGB in [0, 1] (values outside
 * are clamped); `stride` is floats per row (>= width * 3). NaN or Inf gives
 * REEL_ENONFINITE naming the frame and pixel.
 */
reel_status reel_encoder_push_rgbf(reel_encoder *enc, const float *rgb, size_t stride, reel_error *err);

/*
 * Encodes one frame held by options.backend: rgb is [3, H, W] or [1, 3, H, W]
 * float (f32, f16 or bf16) with any strides (a frame of a [B, 3, F, H, W] VAE
 * output is a view), H and W the session's; a value c maps to (c - lo) / (hi - lo)
 * clamped to [0, 1] (NaN to 0). The colour conversion runs on the backend
 * (reel_op_rgb_to_yuv420, same samples as the host path within 1); with NVENC on
 * a CUDA backend it writes straight into a frame of the encoder's CUDA frame
 * pool, otherwise the YUV planes are downloaded for the encoder. Errors name
 * "backend" (none set, or the tensor lives elsewhere) or "rgb" (shape, dtype).
 */
reel_status reel_encoder_push_tensor(reel_encoder *enc, const struct reel_tensor *rgb, float lo, float hi,
                                     reel_error *err);

/*
 * As reel_encoder_push_tensor for a frame in raw CUDA device memory on
 * options.backend's device (which must be a CUDA backend): interleaved f32 RGB in
 * [0, 1], `pitch` bytes per row (a multiple of 4, >= width * 12). The frame must
 * be complete when this is called (its producer's stream synchronised with the
 * backend's). `device_rgb` is a CUdeviceptr / cudaMalloc'd address as void *, so
 * that no CUDA header is needed here. REEL_EUNSUPPORTED without a CUDA backend.
 */
reel_status reel_encoder_push_cuda_rgbf(reel_encoder *enc, const void *device_rgb, size_t pitch, reel_error *err);

/*
 * Flushes the encoder and writes the trailer, then writes and commits the
 * poster and the animated preview when asked for (a failure there fails the
 * call, naming "poster" or "preview_anim"). `stats` may be NULL.
 */
reel_status reel_encoder_finish(reel_encoder *enc, reel_encoder_stats *stats /* OUT: */, reel_error *err);

/* Frees the session (finished or not); accepts NULL and NULL *enc. */
void reel_encoder_destroy(reel_encoder **enc);

/*
 * A frame rate as a fraction: integers stay n/1, the NTSC rates (23.976,
 * 29.97, 59.94, ...) become n*1000/1001, anything else the nearest fraction with
 * a denominator up to 1001. REEL_ERANGE when fps is not a finite number in
 * (0, 1000].
 */
reel_status reel_fps_to_fraction(double fps, int *num /* OUT: */, int *den /* OUT: */);

/* ---- decoding ---- */

typedef struct reel_decoder reel_decoder;

typedef struct reel_video_info {
  int width, height;    /* of the frames reel_decoder_next_rgb returns */
  int fps_num, fps_den; /* average frame rate; 0/1 when unknown */
  int64_t frames;       /* frame count the container declares; -1 when unknown */
  double duration;      /* seconds; -1 when unknown */
  char codec[32];       /* decoder name ("h264") */
} reel_video_info;

/*
 * Opens any local file FFmpeg can read (a video or an image) and its best video
 * stream. Only local files: other protocols are refused. `threads` 0 = auto.
 * `log` may be NULL. Errors: REEL_ENOTFOUND (no such file), REEL_EFORMAT (not a
 * readable video), REEL_ECODEC (no decoder).
 */
reel_status reel_decoder_open(const char *path, int threads, const reel_logger *log, reel_decoder **out /* OUT: */,
                              reel_error *err);
/* Stream information; never fails on an open decoder. */
void reel_decoder_info(const reel_decoder *dec, reel_video_info *info /* OUT: */);
/*
 * Decodes the next frame into width x height RGB24 pixels at `rgb` (stride
 * bytes per row, >= width * 3), converting from the stream's colour space and
 * range. Returns REEL_EOF after the last frame.
 */
reel_status reel_decoder_next_rgb(reel_decoder *dec, uint8_t *rgb, size_t stride, reel_error *err);
/* Accepts NULL and NULL *dec. */
void reel_decoder_destroy(reel_decoder **dec);

/*
 * Routes FFmpeg's log messages about reel's encoders and decoders into their
 * reel loggers (FFmpeg's info becomes debug, its verbose and debug trace) and
 * leaves every other FFmpeg message to FFmpeg's default handler. FFmpeg's log
 * callback is process-wide, so libraries never call this by themselves: the
 * application (the reel CLI, a worker) calls it once at start-up.
 */
void reel_ffmpeg_route_logs(void);

#ifdef __cplusplus
}
#endif
#endif
