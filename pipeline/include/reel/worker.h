/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The worker: takes jobs from a broker (through the worker connector,
 * reel/worker_conn.h) and runs each one — model from the cache (loaded on first
 * use), tokenize + text encode, seeded noise, the denoising loop with CFG, VAE
 * decode, colour conversion, encode, upload — then reports the result: output
 * URL, bytes, SHA-256, frame count, per-stage timings and peak memory.
 *
 * Threads. A lane's render thread runs the compute of one job at a time (a
 * worker has `lanes` of them, 1 by default, sharing the connection). With
 * overlap on (the default), encoding and uploading run on a second thread: the
 * render thread hands decoded frames to it through a bounded queue (at most
 * queue_bytes of frames; when the encoder falls behind, rendering waits) and
 * goes on to the next job while the previous one is still being encoded and
 * uploaded. The worker's credit with the broker follows: 1 while it renders,
 * 2 while a rendered job is still being encoded (CREDIT), so that the next job
 * comes as soon as the render thread is free but no job waits leased here.
 *
 * Models. `models` lists what the worker serves (model folders, names under
 * the model search path, builtin:testsrc); the first is the default for jobs
 * that name none. Models load on first use and stay cached while they fit the
 * memory budget together with the running job's scratch; the least recently
 * used ones are dropped to make room. A job that does not fit even alone fails
 * with REEL_ENOMEM before any compute; the worker keeps serving.
 *
 * Robustness: every job ends in exactly one RESULT. Invalid parameters and the
 * model's rules fail a job before any compute (EINVAL/ERANGE naming
 * job.<field>); a missing or corrupt model folder fails the jobs that need it
 * (ENOTFOUND/EMODEL/EFORMAT) and nothing else; NaN or Inf in the latents fails
 * the job with ENONFINITE; a cancel stops it at the next step or frame
 * (partial outputs are aborted, never committed); a device error drops the
 * backend and the cached models, which are rebuilt for the next job.
 * Output keys depend only on the job (<storage>/<job id>.<ext>, or the spec's
 * `output` key under the storage root), so a job that runs twice overwrites the
 * same object.
 *
 * Test hook: test_nan_marker (from the operator's environment, never from a
 * job) poisons the latents of jobs whose prompt contains it, so that tests can
 * check the NaN path end to end.
 */
#ifndef REEL_WORKER_H
#define REEL_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "reel/jobspec.h"
#include "reel/log.h"
#include "reel/sink.h"
#include "reel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define REEL_WORKER_MAX_MODELS 16
#define REEL_WORKER_MAX_LABELS 16
#define REEL_WORKER_MAX_LANES  16

typedef struct reel_worker reel_worker;

typedef struct reel_worker_options {
  const char *endpoint; /* broker endpoint (required) */
  const char *name;     /* worker name, stable across restarts (required) */
  const char *models[REEL_WORKER_MAX_MODELS];
  int nmodels;                     /* 0 = reel_default_model() */
  const char *storage;             /* root URL or directory for outputs (required) */
  reel_backend_kind backend;       /* AUTO: CUDA when built and present, else CPU */
  int threads;                     /* CPU compute threads; 0 = the CPUs this process may use */
  int encoder_threads;             /* 0 = automatic */
  uint64_t memory_budget;          /* bytes for cached models + the running job's scratch; 0 = unlimited */
  int no_overlap;                  /* 1: encode and upload on the render thread, one job at a time */
  int lanes;                       /* jobs rendered at once, 1..16 (0 = 1); each lane has its own render and
                                      encode threads and model cache, threads / lanes compute threads and
                                      memory_budget / lanes */
  size_t queue_bytes;              /* frames waiting for the encoder; 0 = 64 MiB (at least one frame) */
  const char *region;              /* may be NULL */
  const char *labels[REEL_WORKER_MAX_LABELS];
  int nlabels;
  int max_width, max_height, max_frames; /* advertised limits; 0 = none */
  int heartbeat_ms;                      /* until the broker's WELCOME says otherwise; 0 = 2500 */
  const char *broker_public_key;         /* CURVE: Z85 keys, all three or none */
  const char *public_key, *secret_key;
  const reel_sink_options *sink_opts; /* for every output; may be NULL */
  const reel_logger *log;             /* may be NULL */
  int progress_interval_ms;           /* minimum gap between progress reports; 0 = 250 (4 per second) */
  int preview_size;                   /* long side of preview frames; 0 = 160 */
  const char *test_nan_marker;        /* test hook (see above); NULL = off */
  long max_jobs;                      /* leave after this many jobs; 0 = never */
} reel_worker_options;

void reel_worker_options_init(reel_worker_options *o);

/*
 * Checks the options, creates the worker and connects to the broker (in the
 * background). Models are not loaded yet. Errors name the option.
 */
reel_status reel_worker_new(const reel_worker_options *o, reel_worker **out /* OUT: */, reel_error *err);

/*
 * Serves jobs until reel_worker_stop() or max_jobs: the calling thread renders,
 * a second thread encodes and uploads (overlap). Jobs being encoded are
 * finished before it returns.
 */
reel_status reel_worker_run(reel_worker *w, reel_error *err);

/* Asks reel_worker_run() to return after the job in hand. Async-signal-safe, any thread. */
void reel_worker_stop(reel_worker *w);

/* Says BYE to the broker (unacknowledged results get up to 5 s), frees everything. Accepts NULL. */
void reel_worker_destroy(reel_worker **w);

typedef struct reel_worker_stats {
  uint64_t jobs, succeeded, failed, canceled;
  uint64_t models_loaded, models_evicted;
  int models_cached;
  uint64_t cached_bytes; /* weights + scratch of the cached models */
  int connected;
} reel_worker_stats;

void reel_worker_get_stats(reel_worker *w, reel_worker_stats *st /* OUT: */);

/* "video/mp4", ".mp4" for a container (AUTO, MP4, FMP4 = mp4). Never NULL. */
const char *reel_container_content_type(reel_container c);
const char *reel_container_extension(reel_container c);

#ifdef __cplusplus
}
#endif
#endif
