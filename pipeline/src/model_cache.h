/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The worker's model cache (internal to pipeline/): loaded models by folder,
 * on one compute backend made on first use, kept while they fit a memory
 * budget together with the running job's scratch, least recently used dropped
 * first. Used by one thread (the worker's render thread).
 *
 * Accounting: a model counts its weight files plus the largest private scratch
 * (text encoder, VAE) a job of it has needed; the running job adds its own
 * arena. A budget of 0 means unlimited.
 */
#ifndef REEL_PIPELINE_MODEL_CACHE_H
#define REEL_PIPELINE_MODEL_CACHE_H

#include <stdint.h>

#include "reel/log.h"
#include "reel/model.h"

typedef struct reel__model_cache reel__model_cache;

/* NULL on allocation failure. Nothing is loaded yet. */
reel__model_cache *reel__model_cache_new(reel_backend_kind kind, int threads, uint64_t budget, const reel_logger *log);
/* Destroys the models, then the backend. Accepts NULL. */
void reel__model_cache_destroy(reel__model_cache **c);

/*
 * The model of folder `dir`, opened when it is not cached (first making room
 * for its weights); it becomes the most recently used. *loaded says whether
 * this call opened it. Errors: the backend's (job.backend), the loader's
 * (field prefixed "model:"), ENOMEM when its weights alone exceed the budget.
 */
reel_status reel__model_cache_get(reel__model_cache *c, const char *dir, reel_model **out /* OUT: */,
                                  int *loaded /* OUT: */, reel_error *err);

/*
 * Makes room for a job of model m that needs `arena` bytes of its own plus
 * `scratch` bytes of the model's private scratch: drops other models, least
 * recently used first. ENOMEM naming "job" when m's weights + scratch + arena
 * exceed the budget even alone (m stays cached).
 */
reel_status reel__model_cache_fit(reel__model_cache *c, reel_model *m, uint64_t arena, uint64_t scratch,
                                  const char *what, reel_error *err);

/* Drops every model and the backend (after a device error); the next get starts afresh. */
void reel__model_cache_reset(reel__model_cache *c);

typedef struct reel__model_cache_stats {
  int models;
  uint64_t bytes, loaded, evicted;
} reel__model_cache_stats;
void reel__model_cache_get_stats(const reel__model_cache *c, reel__model_cache_stats *st /* OUT: */);

#endif
