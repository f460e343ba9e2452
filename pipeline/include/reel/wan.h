/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Wan2.1 diffusion transformer (diffusers' WanTransformer3DModel) for
 * text-to-video: configuration, weight loading and the forward pass on any
 * reel backend.
 *
 * Sizes come from the configuration only (transformer/config.json in the
 * diffusers layout), never from constants, so the 1.3B and 14B checkpoints and
 * any smaller configuration run through the same code. Weights are read from the
 * diffusers layout (one file or shards with an index) or from a single file with
 * the original Wan2.1 key names; f32, f16 and bf16 tensors are kept in their
 * dtype. On a backend that can address host memory (CPU) the mmap'd files are
 * wrapped, never copied; elsewhere each file is uploaded once.
 *
 * The forward computes in f32 with activations taken from a caller's tensor
 * arena (reset between jobs); reel_wan_forward_arena_bytes() says how much one
 * call needs. Each sample of a batch has its own timestep, so the conditional and
 * unconditional passes of classifier-free guidance run as one batch.
 *
 * Errors: REEL_EINVAL / REEL_ERANGE for a bad configuration field (the field is
 * "<what>.<key>", e.g. "transformer/config.json.num_layers"), REEL_EUNSUPPORTED
 * for a valid but unimplemented configuration (image conditioning), REEL_ENOTFOUND
 * for a missing tensor and REEL_EMODEL for a tensor of the wrong dtype or shape or
 * one the configuration does not use (the field is the tensor's name), plus the
 * codes of reel/weights.h and of the ops.
 */
#ifndef REEL_WAN_H
#define REEL_WAN_H

#include <stddef.h>
#include <stdint.h>

#include "reel/backend.h"
#include "reel/status.h"
#include "reel/weights.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Upper bounds on configuration values (far above every released Wan model). */
#define REEL_WAN_MAX_DIM    65536
#define REEL_WAN_MAX_HEADS  1024
#define REEL_WAN_MAX_LAYERS 1024
#define REEL_WAN_MAX_FFN    (1 << 20)
#define REEL_WAN_MAX_PATCH  64
#define REEL_WAN_MAX_ROPE   (1 << 20)

typedef struct reel_wan_config {
  int64_t patch[3];         /* patch_size: frames, height, width */
  int64_t heads;            /* num_attention_heads */
  int64_t head_dim;         /* attention_head_dim (even) */
  int64_t dim;              /* heads * head_dim: the model width */
  int64_t in_channels;      /* latent channels in */
  int64_t out_channels;     /* latent channels out */
  int64_t text_dim;         /* width of the text embeddings (4096 for UMT5-XXL) */
  int64_t freq_dim;         /* width of the sinusoidal timestep embedding */
  int64_t ffn_dim;          /* feed-forward inner width */
  int64_t layers;           /* num_layers */
  int cross_attn_norm;      /* affine LayerNorm before cross-attention */
  double eps;               /* of every norm */
  int64_t rope_max_seq_len; /* positions per axis the rotary table covers */
  int64_t rope_dims[3]; /* split of head_dim over frames/height/width: t = head_dim - 2h, h = w = 2 (head_dim / 6) */
} reel_wan_config;

/*
 * Parses a diffusers WanTransformer3DModel config.json held in `len` bytes.
 * `what` names the document in errors ("transformer/config.json"). Every field is
 * validated; image conditioning (image_dim, added_kv_proj_dim, pos_embed_seq_len
 * not null) gives REEL_EUNSUPPORTED and an unknown key REEL_EUNSUPPORTED naming it
 * (keys starting with "_" are metadata and ignored).
 */
reel_status reel_wan_config_parse(const char *json, size_t len, const char *what, reel_wan_config *out /* OUT: */,
                                  reel_error *err);
/* Reads and parses a config.json file (at most 1 MiB). */
reel_status reel_wan_config_load(const char *path, reel_wan_config *out /* OUT: */, reel_error *err);

/*
 * Infers the configuration of a checkpoint from its tensor shapes (either key
 * layout), for single files that come without a config.json. The head count
 * cannot be seen in the shapes: it is dim / 128, the head width of every released
 * Wan2.1 model (REEL_EMODEL when dim is not a multiple of 128). eps is 1e-6 and
 * rope_max_seq_len 1024, as in those models.
 */
reel_status reel_wan_config_infer(const reel_weights *w, reel_wan_config *out /* OUT: */, reel_error *err);

typedef struct reel_wan_transformer reel_wan_transformer;

/*
 * Loads a transformer from a diffusers-layout folder: `dir`/config.json and the
 * weights reel_weights_locate() finds there. On success *out is a new model to
 * destroy with reel_wan_transformer_destroy(); it keeps the files mapped and
 * borrows `b`, which must outlive it. On failure *out is NULL.
 */
reel_status reel_wan_transformer_load_dir(reel_backend *b, const char *dir, reel_wan_transformer **out /* OUT: */,
                                          reel_error *err);

/*
 * Loads a transformer from a weights file (a .safetensors file or an index
 * .json) in either key layout, the layout detected from the names. `config` is a
 * config.json path, or NULL to infer it (reel_wan_config_infer). Original-layout
 * files may carry the "model.diffusion_model." prefix of some repackagings.
 */
reel_status reel_wan_transformer_load_file(reel_backend *b, const char *weights, const char *config,
                                           reel_wan_transformer **out /* OUT: */, reel_error *err);

/* How a loader keeps the weights (NULL options: as stored). */
typedef struct reel_wan_load_opts {
  /*
   * Nonzero: on a backend that cannot address host memory (CUDA), every matrix
   * (the Linear weights and the patch embedding) is converted to bf16 on the host
   * and uploaded once as bf16, halving the device memory of an f32 checkpoint;
   * vectors and modulation tables keep the file's dtype. The CPU backend always
   * uses the mapped file as stored (no copy).
   */
  int weights_bf16;
} reel_wan_load_opts;

/* reel_wan_transformer_load_dir() / _load_file() with options (opts may be NULL). */
reel_status reel_wan_transformer_load_dir_opts(reel_backend *b, const char *dir, const reel_wan_load_opts *opts,
                                               reel_wan_transformer **out /* OUT: */, reel_error *err);
reel_status reel_wan_transformer_load_file_opts(reel_backend *b, const char *weights, const char *config,
                                                const reel_wan_load_opts *opts, reel_wan_transformer **out /* OUT: */,
                                                reel_error *err);

/*
 * The dtype of the activations between ops: REEL_F32 (the default) or REEL_BF16.
 * With bf16, the token activations (norm outputs, q/k/v, attention, FFN, text
 * context) are bf16 while the residual stream, the timestep and modulation vectors
 * and the output projection stay f32, as mixed-precision inference keeps them.
 * REEL_BF16 needs bf16 matrices (load with weights_bf16 or a bf16 checkpoint) on a
 * backend whose matmul takes bf16 inputs (CUDA): REEL_EUNSUPPORTED otherwise,
 * naming "activations". Changes what reel_wan_forward_arena_bytes() reports.
 */
reel_status reel_wan_transformer_set_activations(reel_wan_transformer *m, reel_dtype dt, reel_error *err);
reel_dtype reel_wan_transformer_activations(const reel_wan_transformer *m);

/* Unmaps and frees; accepts NULL and NULL *m; sets *m to NULL. */
void reel_wan_transformer_destroy(reel_wan_transformer **m);

const reel_wan_config *reel_wan_transformer_config(const reel_wan_transformer *m);
reel_backend *reel_wan_transformer_backend(const reel_wan_transformer *m);
/* Nonzero when the weights used the original Wan2.1 key names. */
int reel_wan_transformer_original_keys(const reel_wan_transformer *m);
/* Number of parameters (elements of all weight tensors). */
int64_t reel_wan_transformer_params(const reel_wan_transformer *m);

/*
 * Bytes of arena one reel_wan_forward() call takes for `batch` latents of
 * frames x height x width (latent pixels) and `text_len` text tokens (the peak;
 * everything is released before the call returns). Checks the sizes as the
 * forward does.
 */
reel_status reel_wan_forward_arena_bytes(const reel_wan_transformer *m, int64_t batch, int64_t frames, int64_t height,
                                         int64_t width, int64_t text_len, size_t *bytes /* OUT: */, reel_error *err);

/*
 * One forward: the flow prediction for `latents`.
 *   latents    [B, in_channels, F, H, W]   any float dtype; F, H, W multiples of the patch size
 *   timesteps  [B] on the host             one per sample (the value diffusers passes, e.g. 999 or 812.5)
 *   context    [B, L, text_dim]            text embeddings (any float dtype)
 *   out        [B, out_channels, F, H, W]  any float dtype; must not overlap the inputs
 * Activations come from `arena` (reel_wan_forward_arena_bytes()); what the call
 * takes is released before it returns, so out may be an arena tensor allocated
 * before the call. Errors name the argument ("latents", "context", "arena").
 */
reel_status reel_wan_forward(reel_wan_transformer *m, const reel_tensor *latents, const float *timesteps,
                             const reel_tensor *context, reel_tensor_arena *arena, reel_tensor *out, reel_error *err);

/*
 * The text side of a forward, which depends on the context alone: the text
 * embedder and every block's cross-attention keys (RMS-normed) and values. A
 * denoising loop computes it once per job and passes it to every step, instead
 * of redoing it in each forward (for Wan2.1-1.3B with 512 text tokens that is
 * about 150 GFLOP per sample and step).
 *
 * reel_wan_prepare_text: context [B, L, text_dim] -> *text, an arena tensor
 * [layers, 2, B, L, dim] in the activation dtype (valid until the arena is
 * released below it); its temporaries are given back. On failure the arena is
 * as before and *text is zeroed. reel_wan_text_arena_bytes() is what the call
 * takes (the result included). reel_wan_forward_text() is reel_wan_forward()
 * with that tensor in place of the context, and gives the same bits.
 */
reel_status reel_wan_text_arena_bytes(const reel_wan_transformer *m, int64_t batch, int64_t text_len,
                                      size_t *bytes /* OUT: */, reel_error *err);
reel_status reel_wan_prepare_text(reel_wan_transformer *m, const reel_tensor *context, reel_tensor_arena *arena,
                                  reel_tensor *text /* OUT: */, reel_error *err);
reel_status reel_wan_forward_text(reel_wan_transformer *m, const reel_tensor *latents, const float *timesteps,
                                  const reel_tensor *text, reel_tensor_arena *arena, reel_tensor *out, reel_error *err);

#ifdef __cplusplus
}
#endif
#endif
