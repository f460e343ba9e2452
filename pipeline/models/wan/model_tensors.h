/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Weight tensors of a model folder placed on a backend, for the UMT5 encoder and the Wan
 * VAE. On a backend that addresses host memory (CPU) each shard's data section is wrapped
 * read-only once and tensors are views into the mapping (no copy); tensors whose data is
 * misaligned for their dtype, and all tensors on other backends, are uploaded into buffers
 * of their own. Not a public header.
 */
#ifndef REEL_MODEL_TENSORS_H
#define REEL_MODEL_TENSORS_H

#include "reel/backend.h"
#include "reel/weights.h"

typedef struct reel__mt {
  reel_backend *b;     /* borrowed */
  reel_weights *w;     /* owned */
  size_t nshards;      /* shards of w */
  reel_buffer **shard; /* [nshards] wrapped data sections (CPU), NULL entries elsewhere */
  reel_tensor *owned;  /* uploaded copies */
  size_t nowned, capowned;
} reel__mt;

/* Opens the weights of `dir` (reel_weights_open_dir). On failure *mt is left empty. */
reel_status reel__mt_open(reel__mt *mt, reel_backend *b, const char *dir, reel_error *err);
/* Frees every buffer and closes the weights; accepts an empty or partly opened *mt. */
void reel__mt_close(reel__mt *mt);

/*
 * The tensor `name` (F32, F16 or BF16) checked against rank/shape as reel_weights_expect()
 * does (-1 entries accept any size), as a backend tensor valid until reel__mt_close().
 */
reel_status reel__mt_get(reel__mt *mt, const char *name, int rank, const int64_t *shape, reel_tensor *out /* OUT: */,
                         reel_error *err);

/* As reel__mt_get() but copies the values to host f32: *out is reel_malloc'd (numel floats). */
reel_status reel__mt_get_host(reel__mt *mt, const char *name, int rank, const int64_t *shape, float **out /* OUT: */,
                              reel_error *err);

#endif
