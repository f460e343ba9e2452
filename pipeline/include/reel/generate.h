/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One job, start to finish, in this process: job spec → frames → encoder →
 * sink. This is what `reel generate` runs and what a worker runs per job.
 *
 * Frames stream into the encoder as they are made and the encoder streams
 * into the sink, so a clip is never held whole in memory and a streaming sink
 * (s3://) uploads while the clip is still being produced.
 *
 * Models. "builtin:testsrc" renders reel/testsrc.h's pattern. Anything else
 * names a model directory (reel/model.h: any family reel_model_open knows): a
 * path, or a name looked up under the model search path (reel_model_resolve).
 * A model job runs: load (unless the caller lends a loaded model) → tokenize +
 * text-encode the prompt and the negative prompt → seeded Philox noise (or
 * given initial latents) → the denoising loop with classifier-free guidance →
 * VAE decode group of frames by group of frames → colour conversion to RGB
 * uint8 exactly as diffusers does it ((x * 0.5 + 0.5) clamped to [0, 1], times
 * 255, truncated) → encoder → sink. Fields the spec leaves at 0 take the
 * model's defaults (reel_model_info: size, frames, fps, steps, guidance, shift,
 * sampler); the spec is checked against the model's rules (sizes a multiple
 * of VAE stride x patch, frames = 1 + k x temporal stride) before any compute.
 */
#ifndef REEL_GENERATE_H
#define REEL_GENERATE_H

#include <stdint.h>

#include "reel/jobspec.h"
#include "reel/log.h"
#include "reel/sink.h"
#include "reel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where a job is, for progress displays and queue events. */
typedef struct reel_progress {
  /*
   * "load" (model load), "text" (tokenize + text encoder), "denoise" (once per
   * step), "decode" (once per VAE group of frames), "encode" once per frame
   * handed to the encoder, "finish" once, before the encoder is flushed.
   */
  const char *stage;
  int frames_done; /* frames handed to the encoder so far */
  int frames_total;
  int steps_done; /* denoising steps done (0 for testsrc) */
  int steps_total;
  double elapsed_seconds; /* since the job started */
  double fraction;        /* 0..1 of the whole job (estimated from the stages' usual shares) */
  double eta_seconds;     /* estimated time left; < 0 = unknown */
  /*
   * A low-resolution preview every spec->preview_every steps during "denoise"
   * (NULL otherwise): RGB24, preview_width x preview_height, rows packed, the
   * first frame of the current clean-latent estimate decoded by the VAE. Valid
   * during the call only.
   */
  const uint8_t *preview;
  int preview_width, preview_height;
} reel_progress;

/* Called after each frame (and step); return nonzero to cancel the job (REEL_ECANCELED). */
typedef int (*reel_progress_fn)(const reel_progress *p, void *user);

/*
 * Sees every frame before it is encoded: width x height RGB24 pixels, `stride`
 * bytes per row, frame `index` of the clip. A non-OK status stops the job and is
 * returned.
 */
typedef reel_status (*reel_frame_fn)(void *user, const uint8_t *rgb, size_t stride, int index, reel_error *err);

struct reel_model; /* reel/model.h */

typedef struct reel_generate_options {
  const reel_logger *log;             /* may be NULL */
  const char *job_id;                 /* for log records; may be NULL */
  reel_progress_fn progress;          /* may be NULL */
  void *progress_user;                /* passed to progress */
  int threads;                        /* CPU compute and encoder threads; 0 = automatic */
  const reel_sink_options *sink_opts; /* for the sink reel_generate opens; NULL = defaults */
  /*
   * A loaded model to run (borrowed; used by one job at a time), or NULL: the
   * spec's model is then opened for this job on a backend made for it
   * (spec->backend; auto = CUDA when built and a device is present, else CPU).
   */
  struct reel_model *model;
  /*
   * Initial latents from a safetensors file instead of seeded noise: tensor
   * "latents" (or "latents_init"), [C, F, H, W] or [1, C, F, H, W], F32/F16/BF16,
   * of the job's latent shape. NULL = noise.
   */
  const char *latents_path;
  /* Writes "latents_init" and "latents_final" ([1, C, F, H, W] F32) to this safetensors file; NULL = off. */
  const char *dump_latents_path;
  reel_frame_fn frame;    /* may be NULL */
  void *frame_user;       /* passed to frame */
  uint64_t memory_budget; /* bytes of model weights + compute scratch a job may use; 0 = unlimited */
  int preview_size;       /* long side of preview frames in pixels, 16..1024; 0 = 160 */
  /*
   * Test hook: > 0 poisons the latents with NaN after that step (1-based), so
   * that the loop's check fails the job with REEL_ENONFINITE. Never set from a
   * job spec: a worker sets it only from its operator's environment.
   */
  int test_nan_after_step;
} reel_generate_options;

typedef struct reel_generate_result {
  char url[1024];        /* canonical URL of the committed clip */
  uint64_t bytes;        /* size of the clip */
  char sha256[65];       /* hex SHA-256 of the clip */
  char model[256];       /* the model that ran ("builtin:testsrc") */
  int width, height;     /* pixels */
  int frames;            /* frames encoded */
  int fps_num, fps_den;  /* frame rate as muxed */
  double fps;            /* fps_num / fps_den */
  uint64_t seed;         /* the seed used (picked at random when the spec had none) */
  char codec[16];        /* "h264" */
  char container[16];    /* "mp4", "fmp4" */
  char encoder[32];      /* "libx264" */
  char poster_url[1024]; /* canonical URL of the poster image; "" when none was asked for */
  int poster_frame;      /* the frame it shows; -1 when none */
  char preview_url[1024]; /* canonical URL of the animated preview; "" when none */
  int preview_frames;     /* its frames; 0 when none */
  double seconds_total;  /* whole job */
  double seconds_render; /* making frames (model or test pattern): load + text + denoise + decode */
  double seconds_encode; /* colour conversion + encoding + muxing */
  double seconds_commit; /* closing the sink (fsync + rename, or upload completion) */
  /* Model jobs (0 for testsrc): */
  double seconds_load;    /* opening the model (0 when it was lent) */
  double seconds_text;    /* tokenizer + text encoder, prompt and negative prompt */
  double seconds_denoise; /* the denoising loop */
  double seconds_decode;  /* VAE decode and conversion to RGB uint8 */
  int steps;              /* denoising steps run */
  double guidance;        /* classifier-free guidance scale used (1 = none) */
  double shift;           /* flow shift used */
  char sampler[16];       /* "unipc", "euler", "dpm++" */
  char backend[16];       /* backend that ran the model ("cpu", "cuda:0") */
  char family[16];        /* model family ("wan2.1") */
  uint64_t peak_scratch_bytes; /* high-water mark of the job's compute scratch (arenas, backend workspace) */
  uint64_t model_bytes;        /* bytes of the model's weight files */
  uint64_t peak_rss_bytes;     /* the process's peak resident memory when the job ended (VmHWM) */
} reel_generate_result;

/*
 * The model used when a spec names none: "wan-shapes-tiny", resolved like any
 * model name ($REEL_MODEL_PATH, then the source tree's samples/models/).
 */
const char *reel_default_model(void);

/*
 * The directory a model name refers to, into buf: `name` itself when it is a
 * directory, else <dir>/<name> for each directory of $REEL_MODEL_PATH
 * (colon-separated) and then the built-in models folder (samples/models of the
 * source tree). REEL_ENOTFOUND naming "job.model" when none exists. Names with
 * a scheme ("builtin:...") are not directories and give REEL_ENOTFOUND.
 */
reel_status reel_model_resolve(const char *name, char *buf, size_t size, reel_error *err);

/*
 * Checks a spec as reel_generate would, without opening or writing anything:
 * the spec's own limits, the model (for a model directory: that it exists and a
 * family recognises it; the rules that need the model's configuration are
 * checked by reel_generate after loading, before any compute), and the encoder
 * options the model's defaults lead to (for a seekable output). Errors name
 * "job.<field>".
 */
reel_status reel_generate_check(const reel_jobspec *spec, reel_error *err);

/*
 * Runs `spec` and writes the clip to `url` (a sink URL or path; NULL = spec->output).
 * `spec` is validated first (errors name "job.<field>" and the limit); zero
 * fields take the model's defaults (testsrc: 320x240, 48 frames, 24 fps). On
 * failure the clip is not committed (a poster or preview written before a later
 * failure may remain). `opts` and `res` may be NULL. Model errors:
 * REEL_ENOTFOUND / REEL_EMODEL / REEL_EFORMAT (model folder), REEL_ENONFINITE
 * (NaN or Inf in the latents), REEL_ENOMEM (memory_budget or an allocation),
 * REEL_ECANCELED (the progress callback).
 */
reel_status reel_generate(const reel_jobspec *spec, const char *url, const reel_generate_options *opts,
                          reel_generate_result *res /* OUT: */, reel_error *err);

/*
 * As reel_generate, into a sink the caller opened. Ownership moves: the sink is
 * committed on success and aborted on failure; *sink is NULL afterwards.
 */
reel_status reel_generate_to_sink(const reel_jobspec *spec, reel_sink **sink, const reel_generate_options *opts,
                                  reel_generate_result *res /* OUT: */, reel_error *err);

#ifdef __cplusplus
}
#endif
#endif
