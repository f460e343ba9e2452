/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Model weights: one safetensors file or a sharded checkpoint, looked up by tensor name.
 *
 * A checkpoint is either a single `*.safetensors` file or a `*.safetensors.index.json`
 * ({"metadata": {...}, "weight_map": {"tensor": "shard file", ...}}) next to its
 * shards, as written by diffusers and transformers. Opening an index opens every
 * shard (each validated as in reel/safetensors.h) and checks that the index and the
 * shards agree: each shard named in the weight_map exists in the index's folder,
 * each mapped tensor is in the shard the map names, and no tensor is in two shards
 * or in a shard without being mapped. Lookups then span all shards.
 *
 * Errors name the file (index or shard) in the message and the tensor in the field:
 * REEL_ENOTFOUND (no such file or shard, no such tensor), REEL_EFORMAT (malformed
 * index or shard, index and shards disagree), REEL_EMODEL (a tensor has the wrong
 * dtype or shape for the caller), plus the codes of reel_safetensors_open().
 */
#ifndef REEL_WEIGHTS_H
#define REEL_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "reel/safetensors.h"
#include "reel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define REEL_WEIGHTS_MAX_INDEX      (64u * 1024u * 1024u) /* bytes of index JSON */
#define REEL_WEIGHTS_MAX_SHARD_NAME 255                   /* bytes per shard file name */

typedef struct reel_weights reel_weights;

/*
 * Opens `path`: an index when its name ends in ".json", else one safetensors file.
 * On success *out is a new handle to close with reel_weights_close(); on failure
 * *out is NULL and nothing needs closing.
 */
reel_status reel_weights_open(const char *path, reel_weights **out /* OUT: */, reel_error *err);

/*
 * Finds the weights in a model folder, trying in order
 * diffusion_pytorch_model.safetensors.index.json, diffusion_pytorch_model.safetensors,
 * model.safetensors.index.json, model.safetensors. On success *path is a new string
 * (free with reel_free()); REEL_ENOTFOUND when none exists, naming the folder.
 */
reel_status reel_weights_locate(const char *dir, char **path /* OUT: */, reel_error *err);

/* reel_weights_locate() + reel_weights_open(). */
reel_status reel_weights_open_dir(const char *dir, reel_weights **out /* OUT: */, reel_error *err);

/* Unmaps every shard and frees; accepts NULL and *w == NULL; sets *w to NULL. */
void reel_weights_close(reel_weights **w);

/* The path given to open (the index or the single file). */
const char *reel_weights_path(const reel_weights *w);

/* Number of tensors over all shards. */
size_t reel_weights_count(const reel_weights *w);
/* The i-th tensor in name order over all shards; NULL when i >= count. t->file names its shard. */
const reel_st_tensor *reel_weights_at(const reel_weights *w, size_t i);
/* Binary search by exact name over all shards; NULL when absent. */
const reel_st_tensor *reel_weights_find(const reel_weights *w, const char *name);

/*
 * Looks a tensor up and checks it for a loader: its dtype must be in `dtype_mask`
 * (REEL_ST_MASK(REEL_ST_F32) | ...; 0 accepts any), and when rank >= 0 it must have
 * that rank and shape (a shape entry of -1 accepts any size). On success *out is the
 * tensor; otherwise REEL_ENOTFOUND or REEL_EMODEL with the tensor as the field and
 * the expected and actual dtype/shape in the message.
 */
reel_status reel_weights_expect(const reel_weights *w, const char *name, unsigned dtype_mask, int rank,
                                const int64_t *shape, const reel_st_tensor **out /* OUT: */, reel_error *err);

/* The shards (one for a single file), in file-name order. */
size_t reel_weights_shard_count(const reel_weights *w);
const reel_safetensors *reel_weights_shard(const reel_weights *w, size_t i);

#ifdef __cplusplus
}
#endif
#endif
