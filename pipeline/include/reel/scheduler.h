/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Flow-matching samplers: Euler (as diffusers' FlowMatchEulerDiscreteScheduler),
 * UniPC multistep with flow prediction (UniPCMultistepScheduler with
 * use_flow_sigmas, bh2) and DPM-Solver++ 2M with flow sigmas
 * (DPMSolverMultistepScheduler, midpoint). The sigma schedules, the timesteps
 * given to the model and every update follow the reference implementations
 * step for step, including their quirks (documented in scheduler.c).
 *
 * A scheduler owns its history buffers. Every update is a linear combination of
 * latent-sized vectors, so the vector work goes through a small ops table: the
 * host implementation (reel_sched_host_ops) works on float arrays; a device
 * backend supplies its own and the scheduler never touches the memory itself.
 */
#ifndef REEL_SCHEDULER_H
#define REEL_SCHEDULER_H

#include <stddef.h>

#include "reel/jobspec.h"
#include "reel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { REEL_SCHED_EULER = 0, REEL_SCHED_UNIPC = 1, REEL_SCHED_DPMPP_2M = 2 } reel_sched_kind;

typedef struct reel_sched_config {
  reel_sched_kind kind;
  int num_train_timesteps; /* 1000 for Wan */
  double shift;            /* flow shift (Euler "shift", UniPC/DPM "flow_shift") */
  int solver_order;        /* UniPC: 1..3 (default 2); DPM++: 1 or 2 */
  int lower_order_final;   /* as diffusers (default 1) */
  int unipc_bh1;           /* UniPC solver_type bh1 instead of bh2 */
} reel_sched_config;

/* Wan2.1's defaults for `kind`: 1000 train steps, shift 5.0 (diffusers' default scheduler config), order 2. */
reel_sched_config reel_sched_config_default(reel_sched_kind kind);

/* Vector operations on opaque buffers of n floats. */
typedef struct reel_sched_ops {
  void *ctx;
  /* Returns a buffer of n floats, or NULL. */
  void *(*alloc)(void *ctx, size_t n);
  void (*release)(void *ctx, void *buf);
  /* dst[i] = sum_k coef[k] * src[k][i] for i < n; dst may alias any src. */
  reel_status (*lincomb)(void *ctx, void *dst, size_t n, int k, const double *coef, void *const *src);
  /* dst[i] = src[i]. */
  reel_status (*copy)(void *ctx, void *dst, const void *src, size_t n);
} reel_sched_ops;

/* Host implementation over float arrays (ctx unused). */
extern const reel_sched_ops reel_sched_host_ops;

typedef struct reel_scheduler reel_scheduler;

/*
 * Creates a scheduler for `steps` inference steps over latents of n floats.
 * `ops` NULL means the host ops. Errors name the config field ("scheduler.shift").
 */
reel_status reel_scheduler_new(const reel_sched_config *cfg, int steps, size_t n, const reel_sched_ops *ops,
                               reel_scheduler **out /* OUT: */, reel_error *err);
/* Accepts NULL and NULL *s. */
void reel_scheduler_destroy(reel_scheduler **s);

int reel_scheduler_steps(const reel_scheduler *s);
/* The timestep passed to the model at step i (0 <= i < steps), as the reference gives it. */
double reel_scheduler_timestep(const reel_scheduler *s, int i);
/* Sigma at index i (0 <= i <= steps; sigma[steps] is the final one, 0). */
double reel_scheduler_sigma(const reel_scheduler *s, int i);
/* Index of the next step (0 before the first). */
int reel_scheduler_index(const reel_scheduler *s);

/*
 * One step: reads the model output (flow/velocity prediction) for the current
 * sample and replaces `sample` with the sample at the next sigma. Both are
 * buffers of n floats as the ops understand them. Fails with REEL_ESTATE after
 * the last step.
 */
reel_status reel_scheduler_step(reel_scheduler *s, void *model_output, void *sample, reel_error *err);

/* Clean-latent estimate at the current step: x0 = sample - sigma * model_output (for previews). */
reel_status reel_scheduler_x0(reel_scheduler *s, void *model_output, void *sample, void *x0 /* OUT: */,
                              reel_error *err);

/* Maps the job spec's sampler to a kind (DEFAULT -> `fallback`). */
reel_sched_kind reel_sched_kind_from_sampler(reel_sampler sampler, reel_sched_kind fallback);

#ifdef __cplusplus
}
#endif
#endif
