/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The denoising loop: initial noise (Philox, per-sample seeds) or given latents,
 * then N sampler steps, each one denoiser call with classifier-free guidance:
 * the conditional and unconditional passes run as one batch of 2S and are
 * combined as uncond + guidance * (cond - uncond) before the sampler step, as
 * diffusers' WanPipeline does. Works with any model family (reel/model.h) and
 * any backend: latents, predictions and sampler history stay on the backend
 * (the sampler updates go through reel_op_lincomb).
 *
 * After every step a callback sees the progress and the current latents and may
 * stop the loop (its status is returned, e.g. REEL_ECANCELED). A prediction with
 * NaN or Inf stops the loop with REEL_ENONFINITE naming the step.
 */
#ifndef REEL_DENOISE_H
#define REEL_DENOISE_H

#include <stdint.h>

#include "reel/backend.h"
#include "reel/model.h"
#include "reel/scheduler.h"
#include "reel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct reel_denoise_progress {
  int step;                   /* index of the step just taken, 0-based */
  int steps;                  /* total */
  double timestep;            /* the timestep the model saw */
  double sigma;               /* the noise level the latents are at now */
  const reel_tensor *latents; /* [S, C, F, H, W], valid during the call */
  /*
   * The guided prediction of this step [S, C, F, H, W] (valid during the call):
   * for flow matching, latents - sigma * prediction estimates the clean latents
   * (exactly for Euler), which is what previews decode.
   */
  const reel_tensor *prediction;
} reel_denoise_progress;

/* Called after each step. REEL_OK continues; any other status stops the loop and is returned. */
typedef reel_status (*reel_denoise_callback)(void *ctx, const reel_denoise_progress *p);

typedef struct reel_denoise_params {
  reel_sched_config sampler;
  int steps;                      /* 1..1000 */
  double guidance;                /* CFG scale; 1 runs the conditional pass only */
  int64_t samples;                /* S, 1..4096 */
  int64_t latent[4];              /* C, F, H, W of one sample */
  const uint64_t *seeds;          /* [S] noise seeds, used when init is NULL */
  const reel_tensor *init;        /* [S, C, F, H, W] starting latents, or NULL for noise */
  const reel_tensor *cond;        /* [S, L, text_dim] prompt embeddings */
  const reel_tensor *uncond;      /* [S, L, text_dim] negative embeddings; required unless guidance == 1 */
  reel_denoise_callback callback; /* may be NULL */
  void *callback_ctx;
} reel_denoise_params;

/* Arena bytes reel_denoise() takes (latents, the batched inputs, sampler history and the model's peak). */
reel_status reel_denoise_arena_bytes(reel_model *m, const reel_denoise_params *p, size_t *bytes /* OUT: */,
                                     reel_error *err);

/*
 * Runs the loop. On success *latents is an arena tensor [S, C, F, H, W] (f32)
 * with the final latents, valid until the arena is reset or released below the
 * mark it had when the call began. On failure the arena is released to that
 * mark. Errors name the parameter ("denoise.steps", "denoise.cond", ...).
 */
reel_status reel_denoise(reel_model *m, const reel_denoise_params *p, reel_tensor_arena *arena,
                         reel_tensor *latents /* OUT: */, reel_error *err);

/*
 * Sampler vector operations on backend tensors, for reel_scheduler_new(): the
 * sampler's history buffers are f32 [n] tensors taken from `arena` (given back
 * with it), and the model output and sample handed to reel_scheduler_step() are
 * `reel_tensor *` of n contiguous f32 elements. Updates run as reel_op_lincomb,
 * which rounds exactly as reel_sched_host_ops does. Errors of the ops land in
 * `err`. The context must outlive the scheduler.
 */
typedef struct reel_sched_backend {
  reel_backend *b;
  reel_tensor_arena *arena;
  reel_error *err;
} reel_sched_backend;

reel_sched_ops reel_sched_backend_ops(reel_sched_backend *ctx);

#ifdef __cplusplus
}
#endif
#endif
