/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Model families behind one small interface, so that the generation loop, the
 * samplers and the worker never change when a family is added.
 *
 * A family (Wan2.1 first; Wan2.2, LTX-Video later) is a table of functions:
 * recognise a model folder, load it onto a backend, encode a prompt into text
 * embeddings, run the denoiser on a batch of latents at per-sample timesteps, and
 * decode latents into frames. A component the family (or this build) does not
 * have is a NULL entry; calling it through the wrappers below gives
 * REEL_EUNSUPPORTED naming the component. The text encoder and the VAE of Wan
 * plug into the same table as the transformer.
 *
 * Generation defaults: the family fills reel_model_info's defaults; an optional
 * <dir>/reel.json overrides them (members "width", "height", "frames", "fps",
 * "steps", "guidance", "shift", "sampler", "negative_prompt"; see
 * docs/models.md) so that a model folder can say how it is meant to be run.
 *
 * Lifetimes: a reel_model borrows its backend (which must outlive it) and owns
 * everything it loaded. Calls on one model must not run concurrently (they share
 * the backend). All tensors passed in and out live on the model's backend.
 */
#ifndef REEL_MODEL_H
#define REEL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "reel/backend.h"
#include "reel/scheduler.h"
#include "reel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the generation loop needs to know about a loaded model. */
typedef struct reel_model_info {
  const char *family;         /* the family's name, e.g. "wan2.1" */
  int64_t latent_channels;    /* channels of the latents the denoiser takes */
  int64_t out_channels;       /* channels of its prediction */
  int64_t latent_multiple[3]; /* latent frames/height/width must be multiples of these */
  int64_t text_dim;           /* width of the prompt embeddings the denoiser takes */
  int64_t text_len;           /* tokens per prompt embedding the text encoder produces (0: unknown) */
  int64_t vae_stride[3];      /* video pixels per latent along frames/height/width (0: no VAE) */
  reel_sched_config sampler;  /* the family's default sampler (kind and shift) */
  double guidance;            /* default classifier-free guidance scale */
  int steps;                  /* default number of steps */
  /* Generation defaults for fields a job leaves at 0 (the family's, overridden by <dir>/reel.json). */
  int default_width, default_height; /* pixels */
  int default_frames;
  double default_fps;
  const char *default_negative_prompt; /* "" when none; owned by the model */
} reel_model_info;

/*
 * Called by reel_model_decode_stream once per decoded group of frames: `frames`
 * [3, n, H, W] f32 on the model's backend in [-1, 1] (the VAE's clamped
 * output), video frames first_frame .. first_frame + n - 1, valid during the
 * call. A non-OK status stops decoding and is returned.
 */
typedef reel_status (*reel_model_frames_fn)(void *user, const reel_tensor *frames, int64_t first_frame,
                                            reel_error *err);

/*
 * A family's implementation. `impl` is the family's loaded state. Tensor
 * arguments are as in the wrappers below.
 */
typedef struct reel_model_family {
  const char *name;
  /* Nonzero when `dir` holds a model of this family. Must not fail loudly. */
  int (*probe)(const char *dir);
  reel_status (*load)(reel_backend *b, const char *dir, void **impl /* OUT: */, reel_model_info *info /* OUT: */,
                      reel_error *err);
  void (*destroy)(void *impl);
  reel_status (*encode_prompt)(void *impl, const char *prompt, reel_tensor_arena *arena, reel_tensor *embeds,
                               reel_error *err);
  reel_status (*denoise_arena_bytes)(void *impl, int64_t batch, const int64_t latent[4], int64_t text_len,
                                     size_t *bytes, reel_error *err);
  reel_status (*denoise)(void *impl, const reel_tensor *latents, const float *timesteps, const reel_tensor *context,
                         reel_tensor_arena *arena, reel_tensor *out, reel_error *err);
  reel_status (*decode)(void *impl, const reel_tensor *latents, reel_tensor_arena *arena, reel_tensor *frames,
                        reel_error *err);
  /* Optional: one sample's latents [C, F, H, W] decoded group by group into fn (see reel_model_decode_stream). */
  reel_status (*decode_stream)(void *impl, const reel_tensor *latents, reel_model_frames_fn fn, void *user,
                               reel_error *err);
  /* Optional: bytes of private scratch encode_prompt and decode_stream use for latents [C, F, H, W]. */
  reel_status (*scratch_bytes)(void *impl, const int64_t latent[4], size_t *bytes, reel_error *err);
  /*
   * Optional, all three or none: the denoiser's work that depends on the context
   * alone, done once per job (prepare_context) and reused by every step
   * (denoise_prepared gives the same result as denoise with that context).
   */
  reel_status (*prepare_context_arena_bytes)(void *impl, int64_t batch, int64_t text_len, size_t *bytes,
                                             reel_error *err);
  reel_status (*prepare_context)(void *impl, const reel_tensor *context, reel_tensor_arena *arena,
                                 reel_tensor *prepared, reel_error *err);
  reel_status (*denoise_prepared)(void *impl, const reel_tensor *latents, const float *timesteps,
                                  const reel_tensor *prepared, reel_tensor_arena *arena, reel_tensor *out,
                                  reel_error *err);
  /* Optional: a run-time setting by name (see reel_model_set_option); REEL_ENOTFOUND for unknown keys. */
  reel_status (*set_option)(void *impl, const char *key, const char *value, reel_error *err);
  /* Optional: the current value of a setting, into buf; REEL_ENOTFOUND for unknown keys. */
  reel_status (*get_option)(void *impl, const char *key, char *buf, size_t size, reel_error *err);
} reel_model_family;

/* The Wan2.1 text-to-video family (diffusers layout: transformer/, text_encoder/, tokenizer/, vae/). */
extern const reel_model_family reel_model_family_wan21;

/* The families built in, NULL-terminated, in the order reel_model_open() probes them. */
const reel_model_family *const *reel_model_families(void);

typedef struct reel_model reel_model;

/*
 * Opens the model in `dir` with the first family whose probe accepts it
 * (REEL_EUNSUPPORTED naming the folder when none does). On success *out is a new
 * model to destroy with reel_model_destroy(); on failure it is NULL.
 */
reel_status reel_model_open(reel_backend *b, const char *dir, reel_model **out /* OUT: */, reel_error *err);
/* The same with a given family (no probing). */
reel_status reel_model_open_family(reel_backend *b, const reel_model_family *family, const char *dir,
                                   reel_model **out /* OUT: */, reel_error *err);
/* Accepts NULL and NULL *m; sets *m to NULL. */
void reel_model_destroy(reel_model **m);

const reel_model_info *reel_model_get_info(const reel_model *m);
const reel_model_family *reel_model_get_family(const reel_model *m);
reel_backend *reel_model_backend(const reel_model *m);
/* The folder the model was opened from (owned by the model). */
const char *reel_model_dir(const reel_model *m);
/* Bytes of the weight files (*.safetensors) in the model folder and its component folders. */
uint64_t reel_model_weight_bytes(const reel_model *m);
/* The same for a folder that is not open (0 when it cannot be read). */
uint64_t reel_model_folder_weight_bytes(const char *dir);

/*
 * Run-time settings of a loaded model, between jobs (never while one runs), for
 * benchmarks and configuration search (`reel bench`, `reel tune`). Keys a family
 * may know: "activations" = "f32" | "bf16" (the dtype of the denoiser's token
 * activations; Wan2.1: bf16 needs bf16 matrices and a backend whose matmul takes
 * bf16 inputs, i.e. CUDA). REEL_ENOTFOUND naming the key when the family has no
 * such setting, REEL_EUNSUPPORTED when this model or backend cannot take the
 * value (err says why), REEL_EINVAL for a malformed value.
 */
reel_status reel_model_set_option(reel_model *m, const char *key, const char *value, reel_error *err);
/* The current value of a setting (as reel_model_set_option takes it) into buf. Errors as above. */
reel_status reel_model_get_option(const reel_model *m, const char *key, char *buf, size_t size, reel_error *err);

/*
 * Private scratch (outside the caller's arenas) that reel_model_encode_prompt
 * and reel_model_decode_stream take for latents [C, F, H, W] of one sample; 0
 * when the family keeps none.
 */
reel_status reel_model_scratch_bytes(reel_model *m, const int64_t latent[4], size_t *bytes /* OUT: */,
                                     reel_error *err);

/*
 * Text embeddings of one prompt: *embeds becomes an arena tensor [text_len,
 * text_dim]. REEL_EUNSUPPORTED when the model has no text encoder.
 */
reel_status reel_model_encode_prompt(reel_model *m, const char *prompt, reel_tensor_arena *arena,
                                     reel_tensor *embeds /* OUT: */, reel_error *err);

/* Arena bytes one reel_model_denoise() call takes for latent [C, F, H, W] x batch and text_len tokens. */
reel_status reel_model_denoise_arena_bytes(reel_model *m, int64_t batch, const int64_t latent[4], int64_t text_len,
                                           size_t *bytes /* OUT: */, reel_error *err);

/*
 * The denoiser's prediction for a batch:
 *   latents   [B, latent_channels, F, H, W]
 *   timesteps [B] on the host, one per sample
 *   context   [B, L, text_dim]
 *   out       [B, out_channels, F, H, W] (must not overlap the inputs)
 * Temporaries come from `arena` and are released before the call returns.
 */
reel_status reel_model_denoise(reel_model *m, const reel_tensor *latents, const float *timesteps,
                               const reel_tensor *context, reel_tensor_arena *arena, reel_tensor *out, reel_error *err);

/* Nonzero when the family can prepare a context once for many denoiser calls. */
int reel_model_can_prepare_context(const reel_model *m);
/* Arena bytes reel_model_prepare_context() takes (its result included). */
reel_status reel_model_prepare_context_arena_bytes(reel_model *m, int64_t batch, int64_t text_len,
                                                   size_t *bytes /* OUT: */, reel_error *err);
/*
 * context [B, L, text_dim] -> *prepared, an arena tensor in the family's own
 * layout, for reel_model_denoise_prepared() with batches of B. Valid until the
 * arena is released below it. REEL_EUNSUPPORTED when the family cannot.
 */
reel_status reel_model_prepare_context(reel_model *m, const reel_tensor *context, reel_tensor_arena *arena,
                                       reel_tensor *prepared /* OUT: */, reel_error *err);
/* reel_model_denoise() with a prepared context: the same result, without the per-call text work. */
reel_status reel_model_denoise_prepared(reel_model *m, const reel_tensor *latents, const float *timesteps,
                                        const reel_tensor *prepared, reel_tensor_arena *arena, reel_tensor *out,
                                        reel_error *err);

/*
 * Decodes latents [B, C, F, H, W] into frames [B, 3, F', H', W'] (f32 in [-1, 1]
 * as the VAE gives them). REEL_EUNSUPPORTED when the model has no VAE.
 */
reel_status reel_model_decode(reel_model *m, const reel_tensor *latents, reel_tensor_arena *arena, reel_tensor *frames,
                              reel_error *err);

/*
 * Decodes one sample's latents [C, F, H, W] (as the denoiser produces them: the
 * family un-normalises them) group of frames by group of frames into fn, in
 * memory that does not grow with F. REEL_EUNSUPPORTED when the model has no VAE.
 */
reel_status reel_model_decode_stream(reel_model *m, const reel_tensor *latents, reel_model_frames_fn fn, void *user,
                                     reel_error *err);

#ifdef __cplusplus
}
#endif
#endif
