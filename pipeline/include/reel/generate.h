/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One job, start to finish, in this process: job spec → frames → encoder →
 * sink. This is what `reel generate` runs and what a worker runs per job.
 *
 * Frames stream into the encoder as they are made and the encoder streams
 * into the sink, so a clip is never held whole in memory and a streaming sink
 * (s3://) uploads while the clip is still being produced. Model "builtin:testsrc"
 * renders reel/testsrc.h's pattern; diffusion models plug in here later.
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
  /* "denoise"; "encode" once per frame handed to the encoder; "finish" once, before the encoder is flushed */
  const char *stage;
  int frames_done; /* frames handed to the encoder so far */
  int frames_total;
  int steps_done; /* denoising steps done (0 for testsrc) */
  int steps_total;
  double elapsed_seconds; /* since the job started */
} reel_progress;

/* Called after each frame (and step); return nonzero to cancel the job (REEL_ECANCELED). */
typedef int (*reel_progress_fn)(const reel_progress *p, void *user);

typedef struct reel_generate_options {
  const reel_logger *log;             /* may be NULL */
  const char *job_id;                 /* for log records; may be NULL */
  reel_progress_fn progress;          /* may be NULL */
  void *progress_user;                /* passed to progress */
  int threads;                        /* worker threads (encoder, later compute); 0 = automatic */
  const reel_sink_options *sink_opts; /* for the sink reel_generate opens; NULL = defaults */
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
  double seconds_total;  /* whole job */
  double seconds_render; /* making frames (model or test pattern) */
  double seconds_encode; /* colour conversion + encoding + muxing */
  double seconds_commit; /* closing the sink (fsync + rename, or upload completion) */
} reel_generate_result;

/* The model used when a spec names none. For now builtin:testsrc; the shipped default model later. */
const char *reel_default_model(void);

/*
 * Checks a spec as reel_generate would, without opening or writing anything:
 * the spec's own limits, the model, and the encoder options the model's
 * defaults lead to (for a seekable output). Errors name "job.<field>".
 */
reel_status reel_generate_check(const reel_jobspec *spec, reel_error *err);

/*
 * Runs `spec` and writes the clip to `url` (a sink URL or path; NULL = spec->output).
 * `spec` is validated first (errors name "job.<field>" and the limit); zero
 * fields take the model's defaults (testsrc: 320x240, 48 frames, 24 fps). On
 * failure nothing is committed. `opts` and `res` may be NULL.
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
