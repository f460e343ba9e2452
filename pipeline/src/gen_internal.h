/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The stages of one job, internal to pipeline/, so that reel_generate (one
 * thread: render → encode → commit) and the worker (render on one thread,
 * encode + upload of the previous job on another) run the same code.
 *
 *   reel__gen g = {spec, opts, res};
 *   reel__gen_resolve(&g, err);                    // spec limits, model name
 *   reel__gen_resolve_model(&g, model, err);       // model defaults + rules (model jobs)
 *   reel__gen_check_budget(&g, model, budget, err) // weights + scratch against a budget
 *   reel__clip_open(&g, sink, &clip, err);         // encoder on a sink
 *   reel__gen_render(&g, push, user, err);         // frames → push (e.g. reel__clip_push)
 *   reel__clip_finish(clip, res, err); reel__clip_destroy(&clip);
 *
 * Render and clip touch disjoint parts of the result (render: model, size,
 * render timings, memory; clip: encoder, container, encode time), so they may
 * run on different threads once resolve has filled the shared fields.
 */
#ifndef REEL_PIPELINE_GEN_INTERNAL_H
#define REEL_PIPELINE_GEN_INTERNAL_H

#include <stdint.h>

#include "reel/backend.h"
#include "reel/generate.h"
#include "reel/model.h"

typedef struct reel__gen {
  const reel_jobspec *spec;
  const reel_generate_options *o; /* never NULL after resolve */
  reel_generate_result *res;      /* never NULL after resolve */
  int64_t t_start;                /* reel_now_ns() when the job started */
  /* Filled by resolve: */
  int is_model;
  char model_dir[4096];
  /* Filled by resolve_model: */
  reel_model *model; /* borrowed */
  int64_t latent[4];
  reel_sched_config sched;
  double guidance; /* as passed to the denoiser: 1 = no CFG */
  const char *negative;
  int loaded; /* the job loaded its model itself (progress shares) */
  /* Progress: */
  int64_t t_denoise0, t_decode0;
  int frames_decoded;
} reel__gen;

/* Frames of a job go here: width x height RGB24, stride bytes per row, frame index. */
typedef reel_status (*reel__push_fn)(void *user, const uint8_t *rgb, size_t stride, int index, reel_error *err);

/* Validates the spec and resolves its model; fills the result for testsrc completely. g->o and g->res may be NULL. */
reel_status reel__gen_resolve(reel__gen *g, reel_error *err);
/* Model jobs: defaults and the model's rules for size and frames; errors name job.<field>. */
reel_status reel__gen_resolve_model(reel__gen *g, reel_model *m, reel_error *err);
/* Bytes a model job needs beyond the weights: its arena and the model's private scratch. */
reel_status reel__gen_scratch_bytes(reel__gen *g, uint64_t *arena /* OUT: */, uint64_t *scratch /* OUT: */,
                                    reel_error *err);
/* REEL_ENOMEM naming "job" when weights + scratch exceed budget (0 = unlimited). */
reel_status reel__gen_check_budget(reel__gen *g, uint64_t budget, reel_error *err);
/* Renders every frame into push. Reports progress stages load/text/denoise/decode (not encode). */
reel_status reel__gen_render(reel__gen *g, reel__push_fn push, void *user, reel_error *err);
/* Calls o->progress; returns nonzero when it asks to cancel. frames/steps: counts for the stage. */
int reel__gen_progress(reel__gen *g, const char *stage, int frames_done, int steps_done, const uint8_t *preview,
                       int pw, int ph);

/* A backend for a job: AUTO = CUDA when built and a device is present, else CPU. Errors name job.backend. */
reel_status reel__gen_open_backend(reel_backend_kind kind, int threads, reel_backend **out /* OUT: */,
                                   reel_error *err);
/* A seed for a job that has none: random. */
uint64_t reel__pick_seed(void);
/* The process's peak resident set (VmHWM), bytes; 0 when unknown. */
uint64_t reel__peak_rss_bytes(void);

typedef struct reel__clip reel__clip;
/* Opens the encoder for g's resolved job on `sink` (borrowed). Errors about job fields name job.<field>. */
reel_status reel__clip_open(reel__gen *g, reel_sink *sink, reel__clip **out /* OUT: */, reel_error *err);
reel_status reel__clip_push(reel__clip *c, const uint8_t *rgb, size_t stride, reel_error *err);
/* Flushes the encoder and writes the trailer; fills res's encoder fields and seconds_encode. */
reel_status reel__clip_finish(reel__clip *c, reel_generate_result *res, reel_error *err);
void reel__clip_destroy(reel__clip **c);
/* Frames pushed so far. */
int reel__clip_frames(const reel__clip *c);

/* Fills res's url/bytes/sha256 from a committed sink and logs the clip. */
void reel__gen_committed(reel__gen *g, const reel_sink_result *sr);

#endif
